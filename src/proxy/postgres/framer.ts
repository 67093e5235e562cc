/**
 * Incremental framer: Buffer chunks in, complete messages out. It only finds message boundaries and
 * checks lengths; decoding is a separate step (frontend.ts, backend.ts) so that messages the proxy does
 * not act on are forwarded as their original bytes (`raw`) without being decoded.
 *
 * Wire layouts:
 *   startup phase (frontend only, untyped):  int32 length (incl. itself) | int32 code | body
 *     code 196608 (3.0) / 196610 (3.2) StartupMessage, 80877103 SSLRequest, 80877104 GSSENCRequest,
 *     80877102 CancelRequest. After a StartupMessage the framer switches itself to typed mode (the next
 *     bytes in the same chunk are typed messages); after SSLRequest/GSSENCRequest it stays in startup mode.
 *   typed:  byte type | int32 length (incl. itself, not the type) | payload
 *   single-byte: one byte, the server's answer to SSLRequest/GSSENCRequest ('S', 'N', 'G'); then typed.
 *
 * Partial messages are kept as a list of chunks and joined once, when complete, so a large message
 * arriving in many small chunks costs O(size), not O(size²). A message that lies inside one chunk is
 * returned as a view of that chunk (no copy): callers must not reuse chunk buffers (socket chunks are not
 * reused by Node).
 */
import { ProtocolError } from './errors.js';

export const PROTOCOL_3_0 = 196608; // 3 << 16
export const PROTOCOL_3_2 = 196610; // 3 << 16 | 2
export const CANCEL_REQUEST_CODE = 80877102; // 1234 << 16 | 5678
export const SSL_REQUEST_CODE = 80877103; // 1234 << 16 | 5679
export const GSSENC_REQUEST_CODE = 80877104; // 1234 << 16 | 5680

export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;
export const DEFAULT_MAX_STARTUP_SIZE = 10 * 1024;
/** A CancelRequest carries a 4-byte key (3.0) or up to 256 bytes (3.2). */
export const MIN_CANCEL_KEY_LENGTH = 4;
export const MAX_CANCEL_KEY_LENGTH = 256;

export interface Frame {
  /** The type byte of a typed message; null for startup-phase packets. */
  readonly type: number | null;
  /** Everything after the length word (for a startup packet this starts with the int32 code). */
  readonly payload: Buffer;
  /** The exact original bytes, header included, for pass-through. */
  readonly raw: Buffer;
}

/**
 * A frame as the framer returns it: the payload view is made when asked for, because most frames (the
 * rows of a result) are forwarded as `raw` and never decoded.
 */
class RawFrame implements Frame {
  readonly type: number | null;
  readonly raw: Buffer;
  private readonly header: number;

  constructor(type: number | null, raw: Buffer, header: number) {
    this.type = type;
    this.raw = raw;
    this.header = header;
  }

  get payload(): Buffer {
    return this.raw.subarray(this.header);
  }
}

export type FramerMode = 'startup' | 'typed' | 'single-byte';

export interface FramerOptions {
  /** 'startup' for the client→server direction of a new connection, 'typed' (the default) otherwise. */
  readonly mode?: FramerMode;
  /** Largest accepted length word of a typed message. Default 64 MiB. */
  readonly maxMessageSize?: number;
  /** Largest accepted startup packet. Default 10 KiB. */
  readonly maxStartupSize?: number;
}

export class Framer {
  private modeValue: FramerMode;
  private readonly maxMessageSize: number;
  private readonly maxStartupSize: number;
  /** Buffered chunks; the first one is read from `headOffset`. */
  private chunks: Buffer[] = [];
  private headOffset = 0;
  private buffered = 0;
  private failed: ProtocolError | null = null;
  private readonly header = Buffer.alloc(8);

  constructor(options: FramerOptions = {}) {
    this.modeValue = options.mode ?? 'typed';
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.maxStartupSize = options.maxStartupSize ?? DEFAULT_MAX_STARTUP_SIZE;
  }

  get mode(): FramerMode {
    return this.modeValue;
  }

  /** Switch mode between messages, e.g. to 'single-byte' after forwarding an SSLRequest upstream. */
  setMode(mode: FramerMode): void {
    this.modeValue = mode;
  }

  /** Bytes received but not yet returned as a message (a partial message when the stream ends). */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next complete message, or null when more bytes are needed. Throws a `ProtocolError` on a bad
   * length or startup code; after that the framer stays failed and rethrows the same error.
   */
  next(): Frame | null {
    if (this.failed) throw this.failed;
    try {
      return this.nextFrame();
    } catch (err) {
      if (err instanceof ProtocolError) this.failed = err;
      throw err;
    }
  }

  /** Push `chunk` (if any) and yield every complete message. Mode changes made between yields apply. */
  *frames(chunk?: Buffer): Generator<Frame, void, undefined> {
    if (chunk) this.push(chunk);
    for (let f = this.next(); f; f = this.next()) yield f;
  }

  private nextFrame(): Frame | null {
    switch (this.modeValue) {
      case 'single-byte': {
        if (this.buffered < 1) return null;
        const raw = this.take(1);
        this.modeValue = 'typed';
        return new RawFrame(raw[0] as number, raw, 1);
      }
      case 'typed': {
        if (this.buffered < 5) return null;
        const h = this.peek(5);
        const length = h.readInt32BE(1);
        if (length < 4) {
          throw new ProtocolError('PG_LENGTH_INVALID', `message of type ${describeType(h[0] as number)} has invalid length ${length}`);
        }
        if (length > this.maxMessageSize) {
          throw new ProtocolError(
            'PG_MESSAGE_TOO_LARGE',
            `message of type ${describeType(h[0] as number)} is ${length} bytes, over the ${this.maxMessageSize}-byte limit`,
          );
        }
        if (this.buffered < length + 1) return null;
        const raw = this.take(length + 1);
        return new RawFrame(raw[0] as number, raw, 5);
      }
      case 'startup': {
        if (this.buffered < 4) return null;
        const length = this.peek(4).readInt32BE(0);
        if (length < 8) throw new ProtocolError('PG_STARTUP_LENGTH', `startup packet has invalid length ${length}`);
        if (length > this.maxStartupSize) {
          throw new ProtocolError('PG_STARTUP_TOO_LARGE', `startup packet is ${length} bytes, over the ${this.maxStartupSize}-byte limit`);
        }
        if (this.buffered < 8) return null;
        const code = this.peek(8).readInt32BE(4);
        checkStartupCode(code, length);
        if (this.buffered < length) return null;
        const raw = this.take(length);
        if (code >>> 16 === 3) this.modeValue = 'typed';
        return new RawFrame(null, raw, 4);
      }
    }
  }

  /** The first `n` (≤ 8) buffered bytes, without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length - this.headOffset >= n) return first.subarray(this.headOffset, this.headOffset + n);
    let filled = 0;
    for (let i = 0; filled < n; i++) {
      const c = this.chunks[i] as Buffer;
      const start = i === 0 ? this.headOffset : 0;
      filled += c.copy(this.header, filled, start, Math.min(c.length, start + n - filled));
    }
    return this.header.subarray(0, n);
  }

  /** Consume `n` buffered bytes: a view when they lie in one chunk, else one join. */
  private take(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    const inFirst = first.length - this.headOffset;
    let out: Buffer;
    if (inFirst >= n) {
      out = first.subarray(this.headOffset, this.headOffset + n);
      this.headOffset += n;
      if (this.headOffset === first.length) {
        this.chunks.shift();
        this.headOffset = 0;
      }
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      let used = 0; // chunks fully consumed
      while (filled < n) {
        const c = this.chunks[used] as Buffer;
        const start = used === 0 ? this.headOffset : 0;
        const want = n - filled;
        const have = c.length - start;
        if (have <= want) {
          c.copy(out, filled, start);
          filled += have;
          used++;
          this.headOffset = 0;
        } else {
          c.copy(out, filled, start, start + want);
          filled += want;
          this.headOffset = start + want;
        }
      }
      this.chunks.splice(0, used);
    }
    this.buffered -= n;
    return out;
  }
}

function checkStartupCode(code: number, length: number): void {
  if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
    if (length !== 8) throw new ProtocolError('PG_STARTUP_LENGTH', `SSL/GSSENC request must be 8 bytes, got ${length}`);
    return;
  }
  if (code === CANCEL_REQUEST_CODE) {
    const keyLength = length - 12;
    if (keyLength < MIN_CANCEL_KEY_LENGTH || keyLength > MAX_CANCEL_KEY_LENGTH) {
      throw new ProtocolError('PG_STARTUP_LENGTH', `CancelRequest has invalid length ${length}`);
    }
    return;
  }
  if (code >>> 16 === 3) return; // protocol 3.x StartupMessage; the minor version is negotiated later
  throw new ProtocolError('PG_STARTUP_CODE', `unsupported protocol version or request code ${code} (${code >>> 16}.${code & 0xffff})`, { value: code });
}

function describeType(t: number): string {
  return t >= 0x20 && t < 0x7f ? `'${String.fromCharCode(t)}'` : `0x${t.toString(16).padStart(2, '0')}`;
}

/** A framer for the client→server direction of a new connection. */
export function frontendFramer(options: Omit<FramerOptions, 'mode'> = {}): Framer {
  return new Framer({ ...options, mode: 'startup' });
}

/** A framer for the server→client direction. */
export function backendFramer(options: Omit<FramerOptions, 'mode'> = {}): Framer {
  return new Framer({ ...options, mode: 'typed' });
}
