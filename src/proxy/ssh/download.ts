/**
 * Downloads through the SSH tunnel get the output masking of `cat`: a file read with sftp (the `sftp` client and
 * modern `scp`) or with legacy `scp -O` (an exec of `scp -f`) reaches the client with the resource's mask rules
 * applied to its text, and each file read is decided by the `ssh.paths` rules first. Sans-I/O: both filters take
 * bytes and hand bytes out through callbacks; the engine wires them to the channels.
 *
 * Masking changes lengths, and both protocols state lengths ahead of the data, so a file that is masked is read
 * whole by dlpctl first (up to `MAX_MASKED_FILE`), masked, and then served:
 *
 *   sftp  client OPEN(read) ─► target; target HANDLE ─► held; dlpctl READs the file to EOF with its own request
 *         ids (answers consumed here), masks it, then lets the HANDLE through; the client's READs on that handle
 *         are answered from the masked copy (never forwarded); CLOSE is forwarded and drops the copy.
 *   scp   target `C<mode> <size> <name>\n` ─► held, acknowledged to the target by dlpctl; the data and the
 *   -f    target's status byte ─► collected; masked; `C<mode> <new size> <name>\n` ─► client; the client's ack is
 *         consumed, the masked data and a status byte ─► client; the client's next ack goes to the target.
 *         `D`/`E` (directories, -r) and `T` (times, -p) pass through; directories give the paths of the files.
 *
 * A file is text when it is valid UTF-8 with no NUL byte in its first block. A binary file cannot be masked as
 * text: it passes unchanged when no mask rule applies, and is refused (with a message) when one does. A denied
 * file is refused in the protocol's own way (sftp STATUS permission denied; scp an error line), the session goes on.
 */
import { isUtf8 } from 'node:buffer';
import type { DlpEngine } from '../../dlp/index.js';
import { incompleteTail } from './output.js';

/** Largest file masked in transit; a bigger one is refused while a mask rule applies. */
export const MAX_MASKED_FILE = 64 * 1024 * 1024;
/** The block looked at for NUL bytes. */
const FIRST_BLOCK = 8192;

export type MaskedFile = { kind: 'text'; data: Buffer; counts: Record<string, number> } | { kind: 'binary' };

/** Masks a whole file's bytes as text, or says it is binary. */
export function maskFile(engine: DlpEngine, bytes: Buffer): MaskedFile {
  const head = bytes.subarray(0, FIRST_BLOCK);
  if (head.includes(0) || !isUtf8(head.subarray(0, incompleteTail(head))) || !isUtf8(bytes)) return { kind: 'binary' };
  const r = engine.maskText(bytes.toString('utf8'));
  return { kind: 'text', data: r.changed ? Buffer.from(r.text, 'utf8') : bytes, counts: r.counts };
}

/** Decides one file read: null to allow, else the message the client is shown. */
export type PathCheck = (path: string) => Promise<string | null>;

export interface DownloadFilterOptions {
  /** The channel's mask rules as an engine; null: no mask rule applies (files pass unchanged). */
  mask: DlpEngine | null;
  check: PathCheck;
  toClient: (b: Buffer) => void;
  toServer: (b: Buffer) => void;
  /** Values masked, per entity. */
  masked: (counts: Record<string, number>) => void;
  maxFile?: number;
  /**
   * sftp: a refusal's message for the channel's stderr as well (OpenSSH's sftp client shows only the status
   * code, "Permission denied"; the ssh process under it prints the channel's stderr).
   */
  notice?: (message: string) => void;
}

function binaryMessage(path: string): string {
  return `dlpctl: ${path}: a binary file cannot be masked, and a mask rule applies to this resource; download denied`;
}

function tooLargeMessage(path: string, size: number, max: number): string {
  return `dlpctl: ${path}: ${size} bytes is more than dlpctl masks in transit (${max}); download denied while a mask rule applies`;
}

// ───────────────────────────── sftp ─────────────────────────────

const SSH_FXP = { OPEN: 3, CLOSE: 4, READ: 5, WRITE: 6, FSTAT: 8, STATUS: 101, HANDLE: 102, DATA: 103 } as const;
const SSH_FX = { EOF: 1, PERMISSION_DENIED: 3, FAILURE: 4 } as const;
const PF_READ = 1;
const PF_WRITE = 2;
/** Request ids dlpctl uses for its own reads; OpenSSH's client counts up from small numbers. */
const OWN_ID_BASE = 0xd1c00000;
const READ_CHUNK = 32768;

function u32(b: Buffer, off: number): number {
  return b.readUInt32BE(off);
}

function str(b: Buffer, off: number): { v: Buffer; next: number } {
  const n = u32(b, off);
  if (off + 4 + n > b.length) throw new RangeError('short');
  return { v: b.subarray(off + 4, off + 4 + n), next: off + 4 + n };
}

function packet(type: number, id: number, ...fields: Buffer[]): Buffer {
  const body = Buffer.concat(fields);
  const b = Buffer.alloc(9);
  b.writeUInt32BE(5 + body.length, 0);
  b[4] = type;
  b.writeUInt32BE(id >>> 0, 5);
  return Buffer.concat([b, body]);
}

function sshString(v: Buffer | string): Buffer {
  const data = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length, 0);
  return Buffer.concat([len, data]);
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

function uint64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n), 0);
  return b;
}

export function sftpStatus(id: number, code: number, message: string): Buffer {
  return packet(SSH_FXP.STATUS, id, uint32(code), sshString(message), sshString('en'));
}

interface Loading {
  clientId: number;
  path: string;
  handle: Buffer;
  handlePacket: Buffer;
  parts: Buffer[];
  size: number;
  offset: number;
}

/**
 * The sftp side: whole packets in (SftpFramer), both directions. `fromClient` is async (a path decision may
 * wait for the store); the engine awaits it before the next client packet, as it does for recording.
 */
export class SftpDownloads {
  private readonly o: DownloadFilterOptions;
  /** Client OPEN requests for reading that the target has not answered yet: id → path. */
  private readonly opening = new Map<number, string>();
  /** Files being read by dlpctl, by dlpctl's request id. */
  private readonly loading = new Map<number, Loading>();
  /** Masked copies by handle (latin1 of the handle bytes). */
  private readonly served = new Map<string, Buffer>();
  /** dlpctl's own CLOSE requests, whose answers are consumed. */
  private readonly ownCloses = new Set<number>();
  private nextId = OWN_ID_BASE;

  constructor(o: DownloadFilterOptions) {
    this.o = o;
  }

  /** Whether `fromClient` must see this client packet (the rest go straight on). */
  wants(p: Buffer): boolean {
    const type = p[4];
    return type === SSH_FXP.OPEN || (this.served.size > 0 && (type === SSH_FXP.READ || type === SSH_FXP.CLOSE || type === SSH_FXP.WRITE));
  }

  /** A client packet: true when it goes on to the target, false when it was answered here. */
  async fromClient(p: Buffer): Promise<boolean> {
    if (p.length < 9) return true;
    const type = p[4]!;
    const id = u32(p, 5);
    try {
      if (type === SSH_FXP.OPEN) {
        const name = str(p, 9);
        const flags = u32(p, name.next);
        if (!(flags & PF_READ)) return true;
        const path = name.v.toString('utf8');
        const denied = await this.o.check(path);
        if (denied !== null) {
          this.deny(id, denied);
          return false;
        }
        if (!this.o.mask) return true;
        if (flags & PF_WRITE) {
          this.deny(id, `dlpctl: ${path}: a file opened for reading and writing cannot be masked; open it for reading only`);
          return false;
        }
        this.opening.set(id, path);
        return true;
      }
      if (this.served.size === 0) return true;
      if (type === SSH_FXP.READ) {
        const h = str(p, 9);
        const data = this.served.get(h.v.toString('latin1'));
        if (!data) return true;
        const offset = Number(p.readBigUInt64BE(h.next));
        const len = u32(p, h.next + 8);
        if (offset >= data.length) this.o.toClient(sftpStatus(id, SSH_FX.EOF, 'End of file'));
        else this.o.toClient(packet(SSH_FXP.DATA, id, sshString(data.subarray(offset, Math.min(data.length, offset + len)))));
        return false;
      }
      if (type === SSH_FXP.CLOSE) this.served.delete(str(p, 9).v.toString('latin1'));
      else if (type === SSH_FXP.WRITE && this.served.has(str(p, 9).v.toString('latin1'))) {
        this.deny(id, 'dlpctl: this file is open for reading');
        return false;
      }
    } catch {
      return true; // malformed: the target answers it
    }
    return true;
  }

  /** A target packet: passed on, held, or consumed. */
  fromServer(p: Buffer): void {
    if (p.length < 9 || (this.opening.size === 0 && this.loading.size === 0 && this.ownCloses.size === 0)) return this.o.toClient(p);
    const type = p[4]!;
    const id = u32(p, 5);
    if (this.ownCloses.delete(id)) return;
    const l = this.loading.get(id);
    if (l) return this.onRead(id, l, type, p);
    const path = this.opening.get(id);
    if (path === undefined) return this.o.toClient(p);
    this.opening.delete(id);
    if (type !== SSH_FXP.HANDLE) return this.o.toClient(p);
    const handle = Buffer.from(str(p, 9).v);
    this.read({ clientId: id, path, handle, handlePacket: Buffer.from(p), parts: [], size: 0, offset: 0 });
  }

  private read(l: Loading): void {
    const id = this.nextId++;
    this.loading.set(id, l);
    this.o.toServer(packet(SSH_FXP.READ, id, sshString(l.handle), uint64(l.offset), uint32(READ_CHUNK)));
  }

  private onRead(id: number, l: Loading, type: number, p: Buffer): void {
    this.loading.delete(id);
    const max = this.o.maxFile ?? MAX_MASKED_FILE;
    if (type === SSH_FXP.DATA) {
      const d = str(p, 9).v;
      l.parts.push(Buffer.from(d));
      l.size += d.length;
      l.offset += d.length;
      if (l.size > max) return this.refuse(l, tooLargeMessage(l.path, l.size, max));
      return this.read(l);
    }
    const code = type === SSH_FXP.STATUS && p.length >= 13 ? u32(p, 9) : SSH_FX.FAILURE;
    if (code !== SSH_FX.EOF) return this.refuse(l, `dlpctl: ${l.path}: reading the file failed on the target (status ${code})`);
    const m = maskFile(this.o.mask!, Buffer.concat(l.parts, l.size));
    if (m.kind === 'binary') return this.refuse(l, binaryMessage(l.path));
    this.o.masked(m.counts);
    this.served.set(l.handle.toString('latin1'), m.data);
    this.o.toClient(l.handlePacket);
  }

  private refuse(l: Loading, message: string): void {
    const id = this.nextId++;
    this.ownCloses.add(id);
    this.o.toServer(packet(SSH_FXP.CLOSE, id, sshString(l.handle)));
    this.deny(l.clientId, message);
  }

  private deny(id: number, message: string): void {
    this.o.toClient(sftpStatus(id, SSH_FX.PERMISSION_DENIED, message));
    this.o.notice?.(message);
  }
}

// ───────────────────────────── scp -f ─────────────────────────────

/** The sources of an `scp -f` (remote side of a legacy download) among a command's words, or null. */
export function scpSources(words: readonly string[]): string[] | null {
  if (words.length === 0 || words[0]!.replace(/^.*\//, '') !== 'scp') return null;
  let from = false;
  const out: string[] = [];
  let k = 1;
  for (; k < words.length; k++) {
    const w = words[k]!;
    if (w === '--') {
      k++;
      break;
    }
    if (!w.startsWith('-') || w === '-') break;
    if (w.slice(1).includes('f')) from = true;
  }
  for (; k < words.length; k++) out.push(words[k]!);
  return from ? out : null;
}

const Scp = { Line: 0, Pass: 1, Collect: 2, WaitClient: 3 } as const;
type ScpState = (typeof Scp)[keyof typeof Scp];

/**
 * The target → client direction of `scp -f`, plus the few client bytes it must see (the ack of a rewritten
 * header). Target data is processed in order; a path decision pauses it (`fromServer` returns a promise then).
 */
export class ScpDownloads {
  private readonly o: DownloadFilterOptions;
  private readonly sources: readonly string[];
  private state: ScpState = Scp.Line;
  private line: number[] = [];
  private dirs: string[] = [];
  /** Bytes left to pass through (Pass) or to collect (Collect, data and status byte). */
  private left = 0;
  private parts: Buffer[] = [];
  private header: { mode: string; name: string; path: string } | null = null;
  private pending: Buffer | null = null;
  /** Client bytes of an error line being forwarded (after a rewritten header). */
  private clientLine = false;

  constructor(o: DownloadFilterOptions, sources: readonly string[]) {
    this.o = o;
    this.sources = sources;
  }

  /** Client bytes: passed to the target, except the ack of a header dlpctl rewrote. */
  fromClient(d: Buffer): void {
    if (this.state !== Scp.WaitClient && !this.clientLine) return this.o.toServer(d);
    let i = 0;
    if (this.state === Scp.WaitClient && !this.clientLine) {
      const b = d[0]!;
      i = 1;
      if (b === 0) {
        const data = this.pending!;
        this.pending = null;
        this.state = Scp.Line;
        this.o.toClient(Buffer.concat([data, Buffer.from([0])]));
      } else {
        // The client cannot take the file: its error line answers the target's wait after the data.
        this.clientLine = true;
        this.pending = null;
        this.o.toServer(d.subarray(0, 1));
      }
    }
    if (this.clientLine) {
      const nl = d.indexOf(10, i);
      const end = nl < 0 ? d.length : nl + 1;
      this.o.toServer(d.subarray(i, end));
      i = end;
      if (nl >= 0) {
        this.clientLine = false;
        if (this.state === Scp.WaitClient) this.state = Scp.Line;
      }
    }
    if (i < d.length) this.o.toServer(d.subarray(i));
  }

  /** Target bytes. Returns a promise while a file's path is being decided (the caller pauses the target). */
  async fromServer(d: Buffer): Promise<void> {
    let i = 0;
    while (i < d.length) {
      if (this.state === Scp.Pass) {
        const n = Math.min(this.left, d.length - i);
        this.o.toClient(d.subarray(i, i + n));
        this.left -= n;
        i += n;
        if (this.left === 0) this.state = Scp.Line;
        continue;
      }
      if (this.state === Scp.Collect) {
        const n = Math.min(this.left, d.length - i);
        this.parts.push(Buffer.from(d.subarray(i, i + n)));
        this.left -= n;
        i += n;
        if (this.left === 0) this.collected();
        continue;
      }
      if (this.state === Scp.WaitClient) {
        // The target waits for the client's answer; anything else it sends is passed on.
        this.o.toClient(d.subarray(i));
        return;
      }
      const c = d[i++]!;
      this.line.push(c);
      if (c !== 10 && this.line.length < 8192) continue;
      const line = Buffer.from(this.line);
      this.line = [];
      await this.onLine(line);
    }
  }

  /** Everything still held (end of the channel) is dropped: a partial masked file never reaches the client. */
  end(): void {
    this.parts = [];
    this.pending = null;
  }

  private pathOf(name: string): string {
    if (this.dirs.length > 0) return `${this.dirs.join('/')}/${name}`;
    const exact = this.sources.find((s) => s.replace(/\/+$/, '').replace(/^.*\//, '') === name);
    if (exact !== undefined) return exact.replace(/\/+$/, '');
    const src = this.sources.find((s) => /[*?[]/.test(s) && s.includes('/'));
    return src ? `${src.slice(0, src.lastIndexOf('/'))}/${name}` : name;
  }

  private async onLine(line: Buffer): Promise<void> {
    const t = String.fromCharCode(line[0]!);
    const text = line.toString('utf8', 1).replace(/\n$/, '');
    if (t === 'D') {
      const m = /^\d+ \d+ (.*)$/.exec(text);
      this.dirs.push(m ? this.pathOf(m[1]!) : text);
      this.o.toClient(line);
      return;
    }
    if (t === 'E') {
      this.dirs.pop();
      this.o.toClient(line);
      return;
    }
    const m = t === 'C' ? /^(\d+) (\d+) (.*)$/.exec(text) : null;
    if (!m) {
      this.o.toClient(line); // T, warnings and errors
      return;
    }
    const size = Number(m[2]);
    const path = this.pathOf(m[3]!);
    const denied = await this.o.check(path);
    const max = this.o.maxFile ?? MAX_MASKED_FILE;
    const refusal = denied ?? (this.o.mask && size > max ? tooLargeMessage(path, size, max) : null);
    if (refusal !== null) {
      // The target skips a file whose header is answered with an error; the client shows the error line.
      this.o.toServer(Buffer.from(`\x01${refusal.replace(/\n/g, ' ')}\n`));
      this.o.toClient(Buffer.from(`\x01${refusal.replace(/\n/g, ' ')}\n`));
      return;
    }
    if (!this.o.mask) {
      this.o.toClient(line);
      this.state = Scp.Pass;
      this.left = size + 1;
      return;
    }
    this.header = { mode: m[1]!, name: m[3]!, path };
    this.o.toServer(Buffer.from([0]));
    this.state = Scp.Collect;
    this.parts = [];
    this.left = size + 1;
  }

  private collected(): void {
    const all = Buffer.concat(this.parts);
    this.parts = [];
    const h = this.header!;
    this.header = null;
    const status = all[all.length - 1];
    const data = all.subarray(0, all.length - 1);
    this.state = Scp.Line;
    if (status !== 0) {
      // The target could not read the file: it follows with an error line (read as a line next) and waits for
      // an answer, which dlpctl gives; the client never saw the header.
      this.line = status === undefined ? [] : [status];
      this.o.toServer(Buffer.from([0]));
      return;
    }
    const m = maskFile(this.o.mask!, data);
    if (m.kind === 'binary') {
      this.o.toServer(Buffer.from([0]));
      this.o.toClient(Buffer.from(`\x01${binaryMessage(h.path)}\n`));
      return;
    }
    this.o.masked(m.counts);
    this.pending = m.data;
    this.state = Scp.WaitClient;
    this.o.toClient(Buffer.from(`C${h.mode} ${m.data.length} ${h.name}\n`));
  }
}
