/**
 * Streaming counterparts of `PseudonymVault.restore` and a literal scrubber for the injected credentials.
 *
 * StreamRestorer: a placeholder (`<EMAIL_1>`) may arrive split across chunks (`<EMA` + `IL_1>`); the tail
 * that could still become one is held (at most MAX_PLACEHOLDER characters) and everything before it is
 * restored and released at once.
 *
 * SecretScrubber: the resolved credentials dlpctl injects upstream must never reach the client, even when
 * an upstream echoes them. Only a tail that is a prefix of a secret is held, so ordinary chunks (an SSE
 * event ending in a blank line) are not delayed.
 */
import type { PseudonymVault } from '../../dlp/index.js';

const MAX_PLACEHOLDER = 64;
const PARTIAL = /^<[A-Z0-9_]*$/;

export class StreamRestorer {
  private held = '';
  private readonly vault: PseudonymVault;

  constructor(vault: PseudonymVault) {
    this.vault = vault;
  }

  push(chunk: string): string {
    const text = this.held + chunk;
    const lt = text.lastIndexOf('<');
    if (lt !== -1 && text.length - lt <= MAX_PLACEHOLDER && PARTIAL.test(text.slice(lt))) {
      this.held = text.slice(lt);
      return this.vault.restore(text.slice(0, lt));
    }
    this.held = '';
    return this.vault.restore(text);
  }

  end(): string {
    const t = this.held;
    this.held = '';
    return this.vault.restore(t);
  }
}

export const CREDENTIAL_PLACEHOLDER = '[REDACTED:dlpctl-credential]';

/** The values to scrub from an injected header value: the whole value and, for `Bearer x`/`Basic x`, `x`. */
export function secretValues(injected: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const v of injected) {
    if (v.length >= 8) out.add(v);
    const m = /^\s*(?:Bearer|Basic|Token|Bot)\s+(\S{8,})\s*$/i.exec(v);
    if (m) out.add(m[1]!);
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/** Replaces every secret in a string (one-shot). */
export function scrubText(text: string, secrets: readonly string[]): string {
  for (const s of secrets) if (text.includes(s)) text = text.split(s).join(CREDENTIAL_PLACEHOLDER);
  return text;
}

/** Streaming scrubber over bytes. */
export class SecretScrubber {
  private readonly secrets: Buffer[];
  private carry: Buffer = Buffer.alloc(0);
  private readonly replacement = Buffer.from(CREDENTIAL_PLACEHOLDER);

  constructor(secrets: readonly string[]) {
    this.secrets = secrets.map((s) => Buffer.from(s));
  }

  get active(): boolean {
    return this.secrets.length > 0;
  }

  push(chunk: Buffer): Buffer {
    if (this.secrets.length === 0) return chunk;
    let buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    for (const s of this.secrets) {
      if (buf.indexOf(s) === -1) continue;
      const parts: Buffer[] = [];
      let from = 0;
      for (let at = buf.indexOf(s); at !== -1; at = buf.indexOf(s, from)) {
        parts.push(buf.subarray(from, at), this.replacement);
        from = at + s.length;
      }
      parts.push(buf.subarray(from));
      buf = Buffer.concat(parts);
    }
    // Hold the longest tail that is a proper prefix of a secret (compared in place: this runs per chunk).
    let hold = 0;
    for (const s of this.secrets) {
      for (let k = Math.min(s.length - 1, buf.length); k > hold; k--) {
        const at = buf.length - k;
        if (buf[at] === s[0] && buf.compare(s, 0, k, at) === 0) {
          hold = k;
          break;
        }
      }
    }
    this.carry = hold ? Buffer.from(buf.subarray(buf.length - hold)) : Buffer.alloc(0);
    return hold ? buf.subarray(0, buf.length - hold) : buf;
  }

  end(): Buffer {
    const c = this.carry;
    this.carry = Buffer.alloc(0);
    return c;
  }
}
