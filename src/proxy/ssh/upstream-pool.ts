/**
 * The tunnel's upstream SSH connections, shared by the channels of its sessions.
 *
 * Each channel a client opens (exec, shell, sftp, a forward) runs on an upstream connection with a free
 * slot: up to `perConnection` channels share one log-in to the target, as OpenSSH's ControlMaster does.
 * One SSH log-in costs both ends a key exchange and signatures; on this project's benchmark machine, 50
 * sessions at once each with a log-in of its own spent 17 ms of the tunnel's CPU per session and made sshd
 * fork 50 times, which put 300 ms on the slowest session. Shared, they log in 7 times.
 *
 * - A connection still logging in takes channels too (a burst waits for one log-in, not one each).
 * - When no connection has a free slot after a channel took one, the next connection is opened in the
 *   background (the "spare"), so the next channel does not wait for a log-in. A failed log-in is not
 *   retried in the background: only a channel or session asking again opens another.
 * - A connection without channels is ended after `idleMs`; with `perConnection` 1 (no sharing) it is ended
 *   as soon as its channel closes, so each connection carries one channel of one session.
 * - A connection the target closes, or that fails, leaves the pool; its channels close with it (and only
 *   those: each session's other channels and its client connection go on).
 * - A target that refuses a channel on a shared connection (its `MaxSessions` is lower than
 *   `perConnection`) has that connection capped at what it carries, and the channel is retried on
 *   another connection (engine.ts).
 */
import type Ssh2 from 'ssh2';

export interface UpstreamPoolOptions {
  /** Logs in to the target (the injected credential, the pinned host key). */
  connect: () => Promise<Ssh2.Client>;
  /** Channels per connection (≥ 1; 1: one connection per channel). */
  perConnection: number;
  /** How long a connection without channels is kept for the next one (ms; 0: ended at once). */
  idleMs: number;
}

interface Entry {
  client: Promise<Ssh2.Client>;
  /** Set once logged in. */
  ready: Ssh2.Client | null;
  channels: number;
  /** Channels this connection may carry (lowered when the target refuses one). */
  cap: number;
  dead: boolean;
  /** Has carried a channel. */
  used: boolean;
  /** Opened for a session's first channel (ensure), not as a spare. */
  forSession: boolean;
  idle: NodeJS.Timeout | null;
}

/** How long a connection that has carried no channel yet waits for its first (ms). */
const FRESH_MS = 30_000;

/** A slot on a connection: the channel opened on `client` gives it back with `release` when it closes. */
export interface UpstreamLease {
  client: Ssh2.Client;
  /** Channels the connection carried before this one. */
  shared: number;
  release(): void;
  /** The target refused a channel here: carry no more than now. */
  full(): void;
}

export class UpstreamPool {
  readonly #o: UpstreamPoolOptions;
  readonly #entries = new Set<Entry>();
  #closed = false;
  #refilling = false;
  /** Log-ins started so far (spares included). */
  connects = 0;

  constructor(o: UpstreamPoolOptions) {
    this.#o = { ...o, perConnection: Math.max(1, Math.floor(o.perConnection)) };
  }

  /** A connection for one more channel, logging in when none has a free slot. Rejects when the log-in fails. */
  async acquire(): Promise<UpstreamLease> {
    if (this.#closed) throw new Error('the tunnel is closing');
    const e = this.#free() ?? this.#open();
    e.channels++;
    e.used = true;
    this.#stopIdle(e);
    let client: Ssh2.Client;
    try {
      client = await e.client;
    } catch (err) {
      e.channels--;
      throw err;
    }
    this.#refill();
    let released = false;
    return {
      client,
      shared: e.channels - 1,
      release: () => {
        if (released) return;
        released = true;
        e.channels--;
        if (e.channels > 0) return;
        if (this.#o.perConnection === 1) this.#end(e);
        else this.#whenUnused(e);
      },
      full: () => {
        e.cap = Math.max(1, e.channels - 1);
      },
    };
  }

  /** Resolves when a connection is logged in or rejects with why it cannot be (a session's set-up). */
  async ensure(): Promise<void> {
    if (this.#closed) throw new Error('the tunnel is closing');
    const e = this.#free() ?? this.#open(true);
    await e.client;
  }

  /** A logged-in connection has a free slot for the next channel. */
  get hasSpare(): boolean {
    for (const e of this.#entries) if (e.ready !== null && !e.dead && e.channels < e.cap) return true;
    return false;
  }

  /** Channels open on the connections. */
  get channels(): number {
    let n = 0;
    for (const e of this.#entries) n += e.channels;
    return n;
  }

  /** Connections open or logging in. */
  get size(): number {
    return this.#entries.size;
  }

  /** Ends every connection without channels and opens no more; the others end with their last channel. */
  close(): void {
    this.#closed = true;
    for (const e of this.#entries) if (e.channels === 0) this.#end(e);
  }

  /** The fullest connection with a free slot (packing leaves the others idle, to be ended). */
  #free(): Entry | null {
    let best: Entry | null = null;
    for (const e of this.#entries) {
      if (e.dead || e.channels >= e.cap) continue;
      if (best === null || e.channels > best.channels) best = e;
    }
    return best;
  }

  #open(forSession = false): Entry {
    this.connects++;
    const e: Entry = { client: this.#o.connect(), ready: null, channels: 0, cap: this.#o.perConnection, dead: false, used: false, forSession, idle: null };
    this.#entries.add(e);
    e.client.then(
      (c) => {
        e.ready = c;
        const gone = () => this.#remove(e);
        c.on('error', gone);
        c.once('close', gone);
        if (this.#closed && e.channels === 0) this.#end(e);
        else if (e.channels === 0) this.#whenUnused(e);
      },
      () => this.#remove(e),
    );
    return e;
  }

  /** After a channel took a slot: open the next connection in the background when none has a free one. */
  #refill(): void {
    if (this.#closed || this.#refilling || this.#o.idleMs <= 0 || this.#free() !== null) return;
    this.#refilling = true;
    const e = this.#open();
    e.client.then(
      () => (this.#refilling = false),
      () => (this.#refilling = false),
    );
  }

  /**
   * A logged-in connection without channels: kept for `idleMs`, then ended. One that a session's set-up
   * opened and that has carried no channel yet waits at least FRESH_MS for that session's first channel.
   */
  #whenUnused(e: Entry): void {
    const keep = e.forSession && !e.used ? Math.max(this.#o.idleMs, FRESH_MS) : this.#o.idleMs;
    if (this.#closed || keep <= 0) {
      this.#end(e);
      return;
    }
    this.#stopIdle(e);
    e.idle = setTimeout(() => this.#end(e), keep);
    e.idle.unref();
  }

  #stopIdle(e: Entry): void {
    if (e.idle) clearTimeout(e.idle);
    e.idle = null;
  }

  #end(e: Entry): void {
    this.#remove(e);
    e.ready?.end();
  }

  #remove(e: Entry): void {
    e.dead = true;
    if (e.idle) clearTimeout(e.idle);
    e.idle = null;
    this.#entries.delete(e);
  }
}
