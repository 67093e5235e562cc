/**
 * Bytes to write, gathered from views that lie back to back in one buffer. The framer returns each message
 * of an upstream chunk as a view of that chunk, so the rows of a result forwarded unchanged are adjacent
 * views: written as one view, a chunk of small rows costs one socket write instead of one per row (each
 * write also queues an object in the socket until the corked batch goes out as a writev).
 */
export class ByteRun {
  private head: Buffer | null = null;
  private length = 0;

  /** Adds `b` when it continues the run (or the run is empty); false: flush first, then it starts the run. */
  extend(b: Buffer): boolean {
    const h = this.head;
    if (h === null) {
      this.head = b;
      this.length = b.length;
      return true;
    }
    if (b.buffer === h.buffer && b.byteOffset === h.byteOffset + this.length) {
      this.length += b.length;
      return true;
    }
    return false;
  }

  /** Writes the run (if any) and empties it; what `PgConn.write` returns. */
  flush(to: { write(b: Buffer): Promise<void> | void }): Promise<void> | void {
    const h = this.head;
    if (h === null) return;
    const out = this.length === h.length ? h : Buffer.from(h.buffer, h.byteOffset, this.length);
    this.head = null;
    this.length = 0;
    return to.write(out);
  }
}
