/**
 * Masking of one output stream of a channel (stdout or stderr) with the DLP streaming scanner.
 *
 * Bytes in, masked bytes out through `emit`, in order:
 *  - valid UTF-8 runs go through the stream masker, which holds back a window at the end so a value split
 *    across packets is decided whole (never leaked in part) and ANSI sequences are kept intact;
 *  - a UTF-8 sequence cut at the end of a packet waits for its next byte;
 *  - bytes that are not UTF-8 (binary output) pass unchanged; the text around them is masked on each side.
 *    Binary output is not special-cased otherwise: a run of bytes in it that happens to read as an email
 *    or card number is masked like text (file transfers — scp, sftp, git — are not masked at all).
 *
 * Idle flush: what the masker holds is released when no more output comes for a while — on the next turn
 * of the event loop for interactive (pty) channels, so echo is not delayed, and after `idleMs` otherwise.
 * A value the remote side prints in two parts separated by a longer pause than that is not recognised:
 * masking protects against accidental leaks, it cannot stop a remote program that wants to leak.
 */
import { isUtf8 } from 'node:buffer';
import type { DlpEngine, StreamMasker } from '../../dlp/index.js';

export interface OutputMaskerOptions {
  /** null: no masking (bytes pass through unchanged). */
  engine: DlpEngine | null;
  /** `immediate`: flush what is held on the next event-loop turn; a number: after that many idle ms. */
  idle: 'immediate' | number;
  emit: (masked: Buffer) => void;
}

export class OutputMasker {
  private readonly o: OutputMaskerOptions;
  private sm: StreamMasker | null;
  /** Bytes of a UTF-8 sequence cut at the end of the last chunk. */
  private partial: Buffer | null = null;
  private readonly totals: Record<string, number> = {};
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private ended = false;

  constructor(o: OutputMaskerOptions) {
    this.o = o;
    this.sm = o.engine ? o.engine.stream() : null;
  }

  get masking(): boolean {
    return this.o.engine !== null;
  }

  push(chunk: Buffer): void {
    if (this.ended) return;
    if (!this.sm) {
      if (chunk.length) this.o.emit(chunk);
      return;
    }
    let data = this.partial ? Buffer.concat([this.partial, chunk]) : chunk;
    this.partial = null;
    const cut = incompleteTail(data);
    if (cut < data.length) {
      this.partial = Buffer.from(data.subarray(cut));
      data = data.subarray(0, cut);
    }
    let out = '';
    if (isUtf8(data)) out = this.sm.push(data.toString('utf8'));
    else {
      // Binary: mask each valid run, pass the rest unchanged.
      const parts: Buffer[] = [];
      let i = 0;
      while (i < data.length) {
        const end = validRunEnd(data, i);
        if (end > i) {
          const s = this.sm.push(data.subarray(i, end).toString('utf8'));
          if (s) parts.push(Buffer.from(s, 'utf8'));
        }
        if (end >= data.length) break;
        const tail = this.restart();
        if (tail) parts.push(Buffer.from(tail, 'utf8'));
        parts.push(data.subarray(end, end + 1));
        i = end + 1;
      }
      const b = Buffer.concat(parts);
      if (b.length) this.o.emit(b);
      this.arm();
      return;
    }
    if (out) this.o.emit(Buffer.from(out, 'utf8'));
    this.arm();
  }

  /** Flushes everything (end of the stream). */
  end(): void {
    if (this.ended) return;
    this.disarm();
    let s = '';
    // A UTF-8 sequence still cut at the very end is not text: it passes as the bytes it is.
    const partial = this.partial;
    this.partial = null;
    if (this.sm) {
      s = this.sm.end();
      this.addCounts(this.sm.counts());
      this.sm = null;
    }
    this.ended = true;
    const out = partial ? Buffer.concat([Buffer.from(s, 'utf8'), partial]) : Buffer.from(s, 'utf8');
    if (out.length) this.o.emit(out);
  }

  /** Masked values so far, per entity. */
  counts(): Record<string, number> {
    const c = { ...this.totals };
    if (this.sm) for (const [k, v] of Object.entries(this.sm.counts())) c[k] = (c[k] ?? 0) + v;
    return c;
  }

  private restart(): string {
    if (!this.sm) return '';
    const s = this.sm.end();
    this.addCounts(this.sm.counts());
    this.sm = this.o.engine!.stream();
    return s;
  }

  private addCounts(c: Record<string, number>): void {
    for (const [k, v] of Object.entries(c)) this.totals[k] = (this.totals[k] ?? 0) + v;
  }

  private arm(): void {
    this.disarm();
    if (!this.sm || this.sm.held === 0) return;
    const fire = () => {
      this.timer = null;
      if (this.ended) return;
      const s = this.restart();
      if (s) this.o.emit(Buffer.from(s, 'utf8'));
    };
    this.timer = this.o.idle === 'immediate' ? setImmediate(fire) : setTimeout(fire, this.o.idle);
  }

  private disarm(): void {
    if (!this.timer) return;
    if (this.o.idle === 'immediate') clearImmediate(this.timer as NodeJS.Immediate);
    else clearTimeout(this.timer as NodeJS.Timeout);
    this.timer = null;
  }
}

/** Index where an incomplete (but so far valid) UTF-8 sequence starts at the end of `b`, else b.length. */
export function incompleteTail(b: Buffer): number {
  const n = b.length;
  for (let k = 1; k <= 3 && k <= n; k++) {
    const c = b[n - k]!;
    if ((c & 0xc0) === 0x80) continue; // continuation byte: look further back
    const need = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 1;
    return need > k ? n - k : n;
  }
  return n;
}

/** End of the run of valid UTF-8 starting at `i` (the index of the first byte that is not part of it). */
export function validRunEnd(b: Buffer, i: number): number {
  const n = b.length;
  while (i < n) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (c >= 0xc2 && c <= 0xdf) (need = 1), (min = 0x80);
    else if (c >= 0xe0 && c <= 0xef) (need = 2), (min = 0x800);
    else if (c >= 0xf0 && c <= 0xf4) (need = 3), (min = 0x10000);
    else return i;
    if (i + need >= n) return i;
    let cp = c & (need === 1 ? 0x1f : need === 2 ? 0x0f : 0x07);
    for (let k = 1; k <= need; k++) {
      const d = b[i + k];
      if (d === undefined || (d & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return n;
}
