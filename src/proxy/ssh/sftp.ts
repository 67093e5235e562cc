/**
 * SFTP (draft-ietf-secsh-filexfer-02, version 3 as OpenSSH speaks it), client → server direction only:
 * enough to record the file operations of an allowed sftp channel. The bytes themselves pass unchanged.
 *
 * Packet: uint32 length | byte type | uint32 request-id (not for INIT) | fields
 * Fields of the recorded requests (strings are uint32 length + bytes):
 *   OPEN(3)     filename, uint32 pflags, attrs        OPENDIR(11)  path
 *   SETSTAT(9)  path, attrs                           REMOVE(13)   filename
 *   MKDIR(14)   path, attrs                           RMDIR(15)    path
 *   RENAME(18)  oldpath, newpath                      SYMLINK(20)  two paths (OpenSSH sends target first)
 *   EXTENDED(200) request name, then per extension (posix-rename@openssh.com, hardlink@openssh.com: two paths;
 *                 lsetstat@openssh.com: path)
 * READ, WRITE, STAT and the rest are not recorded one by one (their bytes count in the channel totals).
 */

/** Largest packet accepted (OpenSSH's limit is 256 KiB). A bigger length is a protocol error. */
export const SFTP_MAX_PACKET = 1024 * 1024;

export class SftpFramer {
  /** The start of a packet that spans chunks: its pieces, how many bytes they hold, its whole size (-1: not known yet). */
  private parts: Buffer[] = [];
  private have = 0;
  private need = -1;

  /**
   * Splits the stream into whole packets (length prefix included). Packets inside one chunk are views of
   * it (no copy); only a packet that spans chunks is copied, once. Throws on an oversized length.
   */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let off = 0;
    if (this.have > 0) {
      if (this.need < 0) {
        // Fewer than 4 bytes held: complete the length prefix first.
        const head = Buffer.concat([...this.parts, chunk.subarray(0, 4 - this.have)]);
        if (head.length < 4) {
          this.parts = [head];
          this.have = head.length;
          return out;
        }
        this.need = 4 + packetLength(head, 0);
      }
      const take = Math.min(this.need - this.have, chunk.length);
      this.parts.push(chunk.subarray(0, take));
      this.have += take;
      off = take;
      if (this.have < this.need) return out;
      out.push(Buffer.concat(this.parts, this.need));
      this.parts = [];
      this.have = 0;
      this.need = -1;
    }
    while (chunk.length - off >= 4) {
      const total = 4 + packetLength(chunk, off);
      if (chunk.length - off < total) break;
      out.push(chunk.subarray(off, off + total));
      off += total;
    }
    if (off < chunk.length) {
      const rest = chunk.subarray(off);
      this.parts = [rest];
      this.have = rest.length;
      this.need = rest.length >= 4 ? 4 + packetLength(rest, 0) : -1;
    }
    return out;
  }
}

function packetLength(b: Buffer, off: number): number {
  const len = b.readUInt32BE(off);
  if (len > SFTP_MAX_PACKET || len === 0) throw new Error(`sftp packet of ${len} bytes`);
  return len;
}

const PFLAG = { read: 1, write: 2, append: 4, create: 8, truncate: 0x10, exclusive: 0x20 } as const;

class Reader {
  off: number;
  readonly b: Buffer;
  constructor(b: Buffer, off: number) {
    this.b = b;
    this.off = off;
  }
  u32(): number {
    if (this.off + 4 > this.b.length) throw new RangeError('short');
    const v = this.b.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  str(): string {
    const n = this.u32();
    if (this.off + n > this.b.length) throw new RangeError('short');
    const s = this.b.toString('utf8', this.off, this.off + n);
    this.off += n;
    return s;
  }
}

/** One recorded operation, e.g. `{ op: 'open', paths: ['/etc/hosts'], mode: 'read' }`, or null. */
export interface SftpOp {
  op: string;
  paths: string[];
  mode?: string;
}

export function describeSftpPacket(packet: Buffer): SftpOp | null {
  if (packet.length < 9) return null;
  const type = packet[4]!;
  const r = new Reader(packet, 9);
  try {
    switch (type) {
      case 3: {
        const path = r.str();
        const f = r.u32();
        const mode = (Object.keys(PFLAG) as (keyof typeof PFLAG)[]).filter((k) => f & PFLAG[k]).join(',');
        return { op: 'open', paths: [path], mode: mode || 'none' };
      }
      case 9:
        return { op: 'setstat', paths: [r.str()] };
      case 11:
        return { op: 'opendir', paths: [r.str()] };
      case 13:
        return { op: 'remove', paths: [r.str()] };
      case 14:
        return { op: 'mkdir', paths: [r.str()] };
      case 15:
        return { op: 'rmdir', paths: [r.str()] };
      case 18:
        return { op: 'rename', paths: [r.str(), r.str()] };
      case 20:
        return { op: 'symlink', paths: [r.str(), r.str()] };
      case 200: {
        const name = r.str();
        if (name === 'posix-rename@openssh.com') return { op: 'rename', paths: [r.str(), r.str()] };
        if (name === 'hardlink@openssh.com') return { op: 'hardlink', paths: [r.str(), r.str()] };
        if (name === 'lsetstat@openssh.com') return { op: 'setstat', paths: [r.str()] };
        if (name === 'copy-data') return { op: 'copy-data', paths: [] };
        return null;
      }
      default:
        return null;
    }
  } catch {
    return { op: `malformed request type ${type}`, paths: [] };
  }
}

export function formatSftpOp(op: SftpOp): string {
  return `sftp ${op.op}${op.mode ? `(${op.mode})` : ''} ${op.paths.map((p) => JSON.stringify(p)).join(' ')}`.trimEnd();
}
