/**
 * Write coalescing for sockets written to piecemeal. ssh2 writes every packet as two or three separate
 * `socket.write` calls (length, ciphertext, MAC), and the PostgreSQL relay forwards an extended-protocol
 * batch (Parse, Bind, Describe, Execute, Sync) one message at a time. With TCP_NODELAY on, each write
 * becomes its own system call and its own TCP segment, and a loopback write costs tens of microseconds on
 * a small VM. Corking the socket at the first write of a turn and uncorking it on the next tick turns all
 * the writes of one turn (one packet, or every packet a relayed chunk produced) into a single `writev`:
 * the same bytes in the same order, no added wait beyond the current turn.
 */
import type { Socket } from 'node:net';

const wrapped = new WeakSet<Socket>();

/** Makes `sock` coalesce its writes (idempotent: a socket is wrapped once). Returns the socket. */
export function coalesceWrites(sock: Socket): Socket {
  if (wrapped.has(sock)) return sock;
  wrapped.add(sock);
  const write = sock.write;
  let corked = false;
  const flush = (): void => {
    corked = false;
    // end() and destroy() uncork on their own; uncork() on an uncorked socket is a no-op.
    sock.uncork();
  };
  sock.write = function coalescedWrite(this: Socket, ...args: Parameters<Socket['write']>): boolean {
    if (!corked && !this.writableEnded) {
      corked = true;
      this.cork();
      process.nextTick(flush);
    }
    return write.apply(this, args);
  } as Socket['write'];
  return sock;
}
