/**
 * The lifecycle every tunnel shares, whatever protocol it speaks:
 *
 *   open   → check the bind address (non-loopback needs TLS toward clients), listen, make the per-tunnel secret
 *   accept → one session per client connection, handed to the protocol engine; a failure in one session
 *            ends that session only
 *   close  → stop accepting, ask every session to finish (the engine tells its client why), then force
 *            after a grace period
 *
 * The engine (postgres/, http/, ssh/) owns the protocol; this file owns sockets, the secret and the list of
 * live sessions. Events go to `onEvent` (the CLI prints them, `--json` as NDJSON).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { DlpctlError } from '../errors.js';

export interface TunnelAddress {
  host: string;
  port: number;
}

export type TunnelEvent =
  /** `token`: the HTTP tunnel's credential, which its URL cannot carry (the other kinds' URLs hold theirs). */
  | { type: 'listening'; resource: string; kind: string; host: string; port: number; url: string; token?: string }
  | { type: 'session_start'; resource: string; sessionId: string; client: string }
  | { type: 'decision'; resource: string; sessionId: string; action: string; rule: string | null; kinds?: string[]; summary: string }
  | { type: 'session_end'; resource: string; sessionId: string; outcome: string; error?: string }
  | { type: 'error'; resource: string; sessionId?: string; message: string };

/** A live client session, as the tunnel sees it. */
export interface TunnelSession {
  readonly id: string;
  /** Ask the session to end: the engine tells the client `reason` in its own protocol, then closes. */
  terminate(reason: string): Promise<void>;
  /** Resolves when the session has ended, whatever the cause. */
  readonly done: Promise<void>;
}

export interface TunnelEngine {
  /** Handle one accepted client connection; return the session (its `done` settles when it ends). */
  accept(socket: net.Socket, ctx: { secret: string; emit: (e: TunnelEvent) => void }): TunnelSession;
  /** The client-facing URL (with the per-tunnel secret when the protocol carries one). */
  url(address: TunnelAddress, secret: string): string;
}

export interface TunnelOptions {
  resource: string;
  kind: string;
  host?: string;
  port?: number;
  /** Whether TLS toward local clients is configured (required to bind a non-loopback address). */
  clientTls: boolean;
  engine: TunnelEngine;
  /** Milliseconds sessions get to finish on close before their sockets are destroyed. */
  graceMs?: number;
  /** A session is ended after this long, whatever it is doing (identity.maxSessionDuration). */
  maxSessionMs?: number;
}

/**
 * How long a client of any tunnel may take from connecting to logged in (PostgreSQL's own
 * authentication_timeout; OpenSSH's LoginGraceTime is 120 s). A client that connects and says nothing, or
 * half of it, is disconnected then: otherwise enough of them exhaust the process's file descriptors and
 * every other session with them.
 */
export const LOGIN_GRACE_MS = 60_000;

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function newTunnelSecret(): string {
  return randomBytes(24).toString('base64url');
}

export class Tunnel extends EventEmitter<{ event: [TunnelEvent] }> {
  readonly secret = newTunnelSecret();
  readonly resource: string;
  private readonly opts: TunnelOptions;
  private server: net.Server | null = null;
  private readonly sessions = new Set<TunnelSession>();
  private readonly sockets = new Set<net.Socket>();
  private addr: TunnelAddress | null = null;
  private closing: Promise<void> | null = null;
  private refusal: string | null = null;

  constructor(opts: TunnelOptions) {
    super();
    this.opts = opts;
    this.resource = opts.resource;
  }

  get address(): TunnelAddress {
    if (!this.addr) throw new Error('tunnel is not listening');
    return this.addr;
  }

  get url(): string {
    return this.opts.engine.url(this.address, this.secret);
  }

  get activeSessions(): number {
    return this.sessions.size;
  }

  private emitEvent(e: TunnelEvent): void {
    this.emit('event', e);
  }

  async open(): Promise<TunnelAddress> {
    const host = this.opts.host ?? '127.0.0.1';
    if (!isLoopback(host) && !this.opts.clientTls) {
      throw new DlpctlError(
        'USAGE',
        `refusing to listen on ${host}: a non-loopback address needs TLS toward clients; configure serverTls (cert and key) for resource ${this.resource} or bind 127.0.0.1`,
      );
    }
    const server = net.createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const why =
          err.code === 'EADDRINUSE'
            ? `port ${this.opts.port} is already in use; choose another with --port or omit it for a free port`
            : err.code === 'EACCES'
              ? `permission denied for port ${this.opts.port}; use a port above 1024`
              : err.code === 'EADDRNOTAVAIL'
                ? `${host} is not an address of this machine`
                : err.message;
        reject(new DlpctlError('USAGE', `cannot listen on ${host}:${this.opts.port ?? 0}: ${why}`, { cause: err }));
      };
      server.once('error', onError);
      server.listen({ host, port: this.opts.port ?? 0 }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    const a = server.address() as net.AddressInfo;
    this.addr = { host, port: a.port };
    this.emitEvent({ type: 'listening', resource: this.resource, kind: this.opts.kind, host, port: a.port, url: this.url, ...(this.opts.kind === 'http' ? { token: this.secret } : {}) });
    return this.addr;
  }

  private onConnection(socket: net.Socket): void {
    if (this.closing || this.refusal) {
      if (this.refusal) this.emitEvent({ type: 'error', resource: this.resource, message: `refused a new session: ${this.refusal}` });
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => {
      /* the engine sees the close; a reset client must not crash the tunnel */
    });
    let session: TunnelSession;
    try {
      session = this.opts.engine.accept(socket, { secret: this.secret, emit: (e) => this.emitEvent(e) });
    } catch (err) {
      this.emitEvent({ type: 'error', resource: this.resource, message: err instanceof Error ? err.message : String(err) });
      socket.destroy();
      return;
    }
    this.sessions.add(session);
    const max = this.opts.maxSessionMs;
    const timer = max ? setTimeout(() => void session.terminate('the session reached its maximum duration (identity.maxSessionDuration)'), max) : null;
    timer?.unref();
    session.done
      .catch((err: unknown) => {
        this.emitEvent({ type: 'error', resource: this.resource, sessionId: session.id, message: err instanceof Error ? err.message : String(err) });
      })
      .finally(() => {
        if (timer) clearTimeout(timer);
        this.sessions.delete(session);
        if (!socket.destroyed) socket.destroy();
      });
  }

  /** Resolves once no session is live, or after `ms`, whichever comes first. */
  async settle(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.sessions.size > 0 && Date.now() < deadline) {
      const left = deadline - Date.now();
      await Promise.race([Promise.allSettled([...this.sessions].map((s) => s.done)), new Promise<void>((r) => setTimeout(r, left).unref())]);
    }
  }

  /** From now on, new connections are closed at once (the identity behind the tunnel is no longer valid). */
  refuseNew(reason: string): void {
    this.refusal = reason;
  }

  /** Terminate every live session with `reason` (used when the identity is revoked or a grant expires). */
  async terminateAll(reason: string): Promise<void> {
    await Promise.allSettled([...this.sessions].map((s) => s.terminate(reason)));
  }

  close(reason = 'the tunnel is shutting down'): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      const server = this.server;
      const stopped = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
      const graceful = Promise.allSettled([...this.sessions].map((s) => s.terminate(reason).then(() => s.done)));
      const timer = new Promise<void>((r) => setTimeout(r, this.opts.graceMs ?? 5000).unref());
      await Promise.race([graceful, timer]);
      for (const s of this.sockets) s.destroy();
      await stopped;
    })();
    return this.closing;
  }
}
