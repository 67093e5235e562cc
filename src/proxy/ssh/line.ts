/**
 * What the user is typing into an interactive shell, reconstructed from the keystrokes (best effort).
 *
 * The tunnel checks each entered command line before its Enter is forwarded. It only sees keystrokes, not the
 * shell's line editor, so the line is exact only while the user types, erases (Backspace, Ctrl-U, Ctrl-W)
 * and pastes (bracketed paste). Cursor movement, history, completion and other editing keys make the line
 * "uncertain": it is still checked and recorded, marked as such. A shell can always be tricked (aliases,
 * scripts, `eval`); exec channels are the strict path.
 *
 * Sans-I/O: `feed(bytes)` returns the pieces in order — bytes to forward now, and each Enter with the line
 * it completes (the caller decides, then forwards that Enter or clears the line).
 */

export type LinePiece = { kind: 'bytes'; data: Buffer } | { kind: 'enter'; line: string; certain: boolean; data: Buffer };

const MAX_LINE = 16 * 1024;

export class LineTracker {
  private line: number[] = [];
  private certain = true;
  /** Escape-sequence state: 0 none, 1 after ESC, 2 in CSI, 3 in a string sequence (OSC…). */
  private esc = 0;
  private csi: number[] = [];

  feed(data: Buffer): LinePiece[] {
    const out: LinePiece[] = [];
    let from = 0;
    for (let i = 0; i < data.length; i++) {
      const c = data[i]!;
      if (this.esc !== 0) {
        this.escape(c);
        continue;
      }
      if (c === 0x0d || c === 0x0a) {
        if (i > from) out.push({ kind: 'bytes', data: data.subarray(from, i) });
        out.push({ kind: 'enter', line: this.text(), certain: this.certain, data: data.subarray(i, i + 1) });
        this.reset();
        from = i + 1;
        continue;
      }
      if (c === 0x1b) {
        this.esc = 1;
        this.csi = [];
      } else if (c === 0x7f || c === 0x08) this.erase();
      else if (c === 0x15 || c === 0x03) this.reset(); // Ctrl-U kills the line; Ctrl-C abandons it
      else if (c === 0x17) this.eraseWord();
      else if (c < 0x20) this.certain = false; // Tab, Ctrl-A/E/R/…: the editor changes the line
      else if (this.line.length < MAX_LINE) this.line.push(c);
      else this.certain = false;
    }
    if (from < data.length) out.push({ kind: 'bytes', data: data.subarray(from) });
    return out;
  }

  private escape(c: number): void {
    if (this.esc === 1) {
      if (c === 0x5b) this.esc = 2;
      else if (c === 0x5d || c === 0x50) this.esc = 3;
      else {
        this.esc = 0;
        this.certain = false; // Alt-key or a two-byte sequence
      }
      return;
    }
    if (this.esc === 2) {
      if (c >= 0x40 && c <= 0x7e) {
        this.esc = 0;
        const params = String.fromCharCode(...this.csi);
        // Bracketed paste markers leave the line as typed; anything else (arrows, Home, Delete) edits it.
        if (!(c === 0x7e && (params === '200' || params === '201'))) this.certain = false;
      } else if (this.csi.length < 32) this.csi.push(c);
      return;
    }
    // String sequence: ends at BEL or ESC (the following '\' is then taken as a two-byte sequence).
    if (c === 0x07) this.esc = 0;
    else if (c === 0x1b) this.esc = 1;
  }

  private erase(): void {
    // Remove one character (a UTF-8 sequence: continuation bytes, then the lead byte).
    while (this.line.length > 0 && (this.line[this.line.length - 1]! & 0xc0) === 0x80) this.line.pop();
    this.line.pop();
  }

  private eraseWord(): void {
    while (this.line.length > 0 && this.line[this.line.length - 1] === 0x20) this.line.pop();
    while (this.line.length > 0 && this.line[this.line.length - 1] !== 0x20) this.line.pop();
  }

  private reset(): void {
    this.line = [];
    this.certain = true;
  }

  private text(): string {
    return Buffer.from(this.line).toString('utf8');
  }
}

/** Whether recent output ends with a prompt for a secret (the next line must not be recorded or checked). */
export function looksLikeSecretPrompt(recentOutput: string): boolean {
  const tail = recentOutput.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '').slice(-160).trimEnd();
  return /(pass(word|phrase)|passcode|pin|token|secret|otp|verification code)[^\n]{0,60}:$/i.test(tail);
}
