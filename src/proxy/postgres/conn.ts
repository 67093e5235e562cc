/**
 * One side of a tunnel session: a socket (plain or TLS) with the codec's framer in front of it.
 * Frames are pulled with `next()`, which is what gives the tunnel backpressure: while a frame is being
 * decided (a durable audit write, a pending approval) nothing more is read from that side; the socket is
 * paused once more than `highWaterMark` bytes wait in the framer and nobody waits for a frame. A `next()`
 * caller waiting means no complete frame is buffered: the bytes are the head of one message, which must be
 * read whole to make progress, so the socket is never left paused under a waiter (memory stays bounded by
 * the framer's message size cap, checked as soon as a length word arrives). Writes wait for 'drain'.
 */
import type net from 'node:net';
import { coalesceWrites } from '../coalesce-writes.js';
import { Framer, type Frame, type FramerMode } from './framer.js';

export class ConnectionClosed extends Error {
  readonly side: string;
  constructor(side: string) {
    super(`${side} closed the connection`);
    this.side = side;
    this.name = 'ConnectionClosed';
  }
}

export class PgConn {
  readonly framer: Framer;
  socket: net.Socket;
  private readonly side: string;
  private waiter: { resolve: (f: Frame) => void; reject: (e: unknown) => void } | null = null;
  private failure: unknown = null;
  private readonly highWaterMark: number;
  private paused = false;
  /** Sees every frame of one type as it is taken from the framer (the session tracks ParameterStatus). */
  private watcher: { type: number; fn: (f: Frame) => void } | null = null;
  private readonly onData = (chunk: Buffer) => this.push(chunk);
  private readonly onEnd = () => this.fail(new ConnectionClosed(this.side));
  private readonly onError = (err: Error) => this.fail(err);
  private closedResolve: (() => void) | null = null;
  /** Settles when the peer closes, the socket fails or the framer rejects the stream, waiter or not. */
  readonly whenClosed: Promise<void> = new Promise<void>((resolve) => (this.closedResolve = resolve));

  constructor(socket: net.Socket, opts: { side: string; mode?: FramerMode; maxMessageSize?: number; highWaterMark?: number }) {
    this.socket = socket;
    this.side = opts.side;
    this.framer = new Framer({ mode: opts.mode ?? 'typed', ...(opts.maxMessageSize ? { maxMessageSize: opts.maxMessageSize } : {}) });
    this.highWaterMark = opts.highWaterMark ?? 1 << 20;
    this.attach(socket);
  }

  private attach(socket: net.Socket): void {
    // the messages relayed in one turn leave in one write (see coalesce-writes.ts)
    coalesceWrites(socket);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  private detach(socket: net.Socket): void {
    socket.off('data', this.onData);
    socket.off('end', this.onEnd);
    socket.off('close', this.onEnd);
    socket.off('error', this.onError);
  }

  /** Replace the socket (after a TLS upgrade); bytes already framed stay. */
  rebind(socket: net.Socket): void {
    this.detach(this.socket);
    this.socket = socket;
    this.attach(socket);
  }

  /** Stop reading from the raw socket before handing it to tls (the TLS socket takes over its bytes). */
  release(): net.Socket {
    this.detach(this.socket);
    return this.socket;
  }

  private push(chunk: Buffer): void {
    try {
      this.framer.push(chunk);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.deliver();
    if (!this.paused && !this.waiter && this.framer.pendingBytes > this.highWaterMark) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private fail(err: unknown): void {
    if (this.failure) return;
    this.failure = err;
    this.closedResolve?.();
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }

  private deliver(): void {
    if (!this.waiter) return;
    let frame: Frame | null;
    try {
      frame = this.framer.next();
    } catch (err) {
      this.fail(err);
      return;
    }
    if (frame) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve(this.seen(frame));
    }
  }

  /** The next complete frame; only one caller at a time. Rejects when the peer closes or sends garbage. */
  next(): Promise<Frame> {
    const frame = this.framer.next(); // throws ProtocolError on malformed framing
    if (this.paused && this.framer.pendingBytes <= this.highWaterMark / 2) {
      this.paused = false;
      this.socket.resume();
    }
    if (frame) return Promise.resolve(this.seen(frame));
    if (this.failure) return Promise.reject(this.failure);
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** A frame already received, without waiting (null when none is complete). */
  tryNext(): Frame | null {
    return this.seen(this.framer.next());
  }

  /** Calls `fn` with every frame of type `type` taken from now on, before its caller gets it. */
  watch(type: number, fn: (f: Frame) => void): void {
    this.watcher = { type, fn };
  }

  private seen<F extends Frame | null>(frame: F): F {
    if (frame && this.watcher && frame.type === this.watcher.type) this.watcher.fn(frame);
    return frame;
  }

  write(buf: Buffer): Promise<void> | void {
    if (this.socket.destroyed) throw new ConnectionClosed(this.side);
    if (this.socket.write(buf)) return;
    return new Promise((resolve, reject) => {
      const onDrain = () => {
        this.socket.off('close', onClose);
        resolve();
      };
      const onClose = () => {
        this.socket.off('drain', onDrain);
        reject(new ConnectionClosed(this.side));
      };
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
  }

  /** Reading is paused for backpressure: a peer closing now goes unseen until it resumes. */
  get stalled(): boolean {
    return this.paused && !this.failure;
  }

  get closed(): boolean {
    return this.failure !== null || this.socket.destroyed;
  }

  destroy(): void {
    this.socket.destroy();
    this.fail(new ConnectionClosed(this.side));
  }

  /** Flush what is written, then close. */
  end(buf?: Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.end(buf ?? Buffer.alloc(0), () => resolve());
      setTimeout(resolve, 1000).unref();
    });
  }
}
