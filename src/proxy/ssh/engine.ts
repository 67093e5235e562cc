/**
 * The SSH tunnel engine. dlpctl terminates SSH on the local port (ssh2 `Server`, the tunnel's own host key)
 * and logs in to the target with the injected key or password and the pinned host key (ssh2 `Client`).
 * Upstream connections are shared: each relayed channel runs on one with a free slot, up to `shareUpstream`
 * channels per connection (upstream-pool.ts). Channels are relayed one to one, each decided first:
 *
 *   1. client handshake + authentication: the per-tunnel password or the tunnel's generated client key
 *   2. the session record opens (durable) and an upstream log-in is ready (shared or new); either failing
 *      ends every channel with a message on stderr (exit status 255)
 *   3. session channel requests:
 *        pty, window-change, signal → remembered / forwarded
 *        env                        → only allowlisted names (LANG, LC_*, TZ, GIT_PROTOCOL, COLORTERM)
 *        auth-agent, x11            → refused (recorded)
 *        exec CMD                   → policy (channel exec, the command line), recorded durably, approval
 *                                     held; denied: stderr line + exit status 126; allowed: upstream exec,
 *                                     output masked and recorded
 *        shell                      → policy (channel shell); allowed: upstream shell, each entered line
 *                                     checked before its Enter (line.ts, best effort), output masked,
 *                                     recorded as asciicast frames
 *        subsystem sftp             → policy (channel sftp); allowed: relay, file operations recorded
 *                                     (sftp.ts); files opened for reading decided by `ssh.paths` rules and
 *                                     masked like `cat` output (download.ts)
 *   4. direct-tcpip (ssh -L)        → denied unless a rule allows it (channel forward, target host:port; the
 *                                     target is also the command text, so `ssh.command` can match it)
 *      tcpip-forward (ssh -R), streamlocal → refused
 *   5. on any end, the record closes with its outcome and counters
 *
 * File transfer commands (scp, rsync --server, git-upload-pack/-receive-pack) are decided and recorded like
 * any exec, but their data is binary and length-framed: it is not recorded as frames. `scp -f` (the target side
 * of a legacy `scp -O` download) is decided per source by `ssh.paths` rules and its files are masked like `cat`
 * output (download.ts); the other transfer commands' data passes unmasked.
 */
import { approvalRequest, auditLabel, decide, denialText, ruleNameOf, tunnelPolicyOf, type EngineBaseOptions, type TunnelPolicy } from '../decide.js';
import { timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import type * as Ssh2 from 'ssh2';
import { requestApproval } from '../../approvals/request.js';
import type { SshResource } from '../../config/types.js';
import { createDlpEngine, type DlpEngine } from '../../dlp/index.js';
import { DlpctlError } from '../../errors.js';
import { MaskEngineCache, type MaskDirective } from '../../policy/index.js';
import type { Decision, EventBody, TerminalOutputBody } from '../../store/types.js';
import { coalesceWrites } from '../coalesce-writes.js';
import { SessionRecorder } from '../recorder.js';
import { LOGIN_GRACE_MS, type TunnelAddress, type TunnelEngine, type TunnelEvent, type TunnelSession } from '../tunnel.js';
import { fingerprint, hostKeyMatches, type ClientKey, type LocalHostKey, type PinnedHostKey } from './keys.js';
import { LineTracker, looksLikeSecretPrompt } from './line.js';
import { OutputMasker } from './output.js';
import { describeSftpPacket, formatSftpOp, SftpFramer } from './sftp.js';
import { ScpDownloads, scpSources, SftpDownloads, type DownloadFilterOptions } from './download.js';
import { analyzeShell } from '../../policy/ssh/index.js';
import { UpstreamPool } from './upstream-pool.js';

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  privateKey?: string;
  passphrase?: string;
  password?: string;
}

export interface SshEngineOptions extends EngineBaseOptions {
  ssh2: typeof Ssh2;
  resource: SshResource;
  target: SshTarget;
  /** The pinned upstream host key; null refuses every connection (with the presented fingerprint). */
  pin: PinnedHostKey | null;
  hostKey: LocalHostKey;
  /** The key `DLPCTL_SSH` uses; clients may also log in with the tunnel password. */
  clientKey: ClientKey;
  /** Environment variable names (or `PREFIX*`) a client may set. */
  envAllow?: readonly string[];
  /** Idle time after which held output of non-pty channels is flushed (ms, default 200). */
  execIdleFlushMs?: number;
  /** Open channels per client connection (default 64); more are refused. */
  maxChannels?: number;
  /** A client must log in within this (default 60 s). */
  loginGraceMs?: number;
  /** Terminal output recorded per session (bytes, default 8 MiB); beyond it frames are dropped (noted once). */
  recordLimit?: number;
  /** Upstream connect timeout (ms, default 20000). */
  connectTimeoutMs?: number;
  /** How long an upstream connection without channels is kept for the next one (ms, default 60000; 0: no spare). */
  spareIdleMs?: number;
  /** Channels that share one upstream connection (default 8, under OpenSSH's MaxSessions of 10; 1: none). */
  shareUpstream?: number;
}

export const DEFAULT_SHARE_UPSTREAM = 8;

export const DEFAULT_ENV_ALLOW = ['LANG', 'LC_*', 'TZ', 'GIT_PROTOCOL', 'COLORTERM'] as const;

const FILE_TRANSFER = /^\s*(?:\S*\/)?(scp|rsync|git-upload-pack|git-receive-pack|git-upload-archive|sftp-server)(\s|$)/;

type Emit = (e: TunnelEvent) => void;

interface Verdict {
  allow: boolean;
  label: Decision;
  rule?: string;
  message: string;
  masks: readonly MaskDirective[];
}

let nextConn = 0;

export class SshEngine implements TunnelEngine {
  readonly o: SshEngineOptions;
  private readonly server: Ssh2.Server;
  private readonly waiting = new Map<string, SshConnection>();
  readonly auditDlp: DlpEngine;
  readonly masks: MaskEngineCache;
  readonly tunnelPolicy: TunnelPolicy;
  private readonly clientKeyWire: Buffer;
  private readonly envAllow: readonly string[];
  /** The upstream connections the sessions' channels run on. */
  readonly upstreams: UpstreamPool;
  /** Some rule has an `ssh.paths` condition: downloads are decided file by file. */
  readonly pathRules: boolean;

  constructor(o: SshEngineOptions) {
    this.o = o;
    this.auditDlp = createDlpEngine({ masker: 'redact', customDetectors: o.customDetectors ?? [] });
    this.masks = new MaskEngineCache({ customDetectors: o.customDetectors ?? [] });
    this.tunnelPolicy = tunnelPolicyOf(o, this.auditDlp);
    this.clientKeyWire = o.clientKey.parsed.getPublicSSH();
    this.envAllow = o.envAllow ?? DEFAULT_ENV_ALLOW;
    this.pathRules = o.policies.some((p) => p.rules.some((r) => r.when?.ssh?.paths !== undefined));
    this.upstreams = new UpstreamPool({ connect: () => this.connectUpstream(), perConnection: o.shareUpstream ?? DEFAULT_SHARE_UPSTREAM, idleMs: o.spareIdleMs ?? 60_000 });
    this.server = new o.ssh2.Server({ hostKeys: [o.hostKey.privateKey], ident: 'dlpctl' }, (client, info) => {
      const key = `${info.ip}:${info.port}`;
      const conn = this.waiting.get(key);
      if (!conn) {
        client.end();
        return;
      }
      this.waiting.delete(key);
      conn.attach(client);
    });
    this.server.on('error', () => {
      /* per-connection errors are handled by each connection */
    });
  }

  url(a: TunnelAddress, secret: string): string {
    const host = a.host.includes(':') ? `[${a.host}]` : a.host;
    return `ssh://dlpctl:${secret}@${host}:${a.port}`;
  }

  accept(socket: net.Socket, ctx: { secret: string; emit: Emit }): TunnelSession {
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    const conn = new SshConnection(this, socket, ctx, `ssh-${process.pid}-${++nextConn}`);
    this.waiting.set(key, conn);
    socket.once('close', () => {
      if (this.waiting.get(key) === conn) this.waiting.delete(key);
    });
    this.server.injectSocket(coalesceWrites(socket));
    return { id: conn.id, done: conn.done, terminate: (reason) => conn.terminate(reason) };
  }

  envAllowed(name: string): boolean {
    return this.envAllow.some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : name === p));
  }

  /** Client authentication: the tunnel password, or the tunnel's client key (signature checked). */
  authenticate(c: Ssh2.AuthContext, secret: string): 'accept' | 'reject' {
    if (c.method === 'password') {
      const a = Buffer.from(c.password, 'utf8');
      const b = Buffer.from(secret, 'utf8');
      return a.length === b.length && timingSafeEqual(a, b) ? 'accept' : 'reject';
    }
    if (c.method === 'publickey') {
      if (!c.key.data.equals(this.clientKeyWire)) return 'reject';
      if (!c.signature || !c.blob) return 'accept'; // the client asks whether this key would do
      return this.o.clientKey.parsed.verify(c.blob, c.signature, c.hashAlgo) ? 'accept' : 'reject';
    }
    return 'reject';
  }

  /**
   * Whether a logged-in upstream connection has a free slot for the next channel. A session's own log-in
   * would sit on its critical path (measured: +70 ms per `ssh box cmd`, about one sshd log-in): once a
   * channel has taken the last free slot, the pool logs in the next connection in the background.
   */
  get hasSpare(): boolean {
    return this.upstreams.hasSpare;
  }

  /** Upstream log-ins so far, spares included. */
  get upstreamConnects(): number {
    return this.upstreams.connects;
  }

  /** Ends the upstream connections without channels; no more are opened. */
  close(): void {
    this.upstreams.close();
  }

  /** Opens the upstream connection with the injected credential and the pinned host key. */
  connectUpstream(): Promise<Ssh2.Client> {
    const t = this.o.target;
    const pin = this.o.pin;
    const name = this.o.resource.name;
    return new Promise((resolve, reject) => {
      const c = new this.o.ssh2.Client();
      let presented: Buffer | null = null;
      let settled = false;
      c.on('ready', () => {
        settled = true;
        // A relay: every packet goes out as soon as it is ready (the client side already has TCP_NODELAY).
        // Without it Nagle holds small packets for the upstream's delayed ACK: measured +44 ms per pty
        // keystroke and +85 ms per exec round trip through the tunnel, against +0.5 ms and +4 ms with it.
        c.setNoDelay(true);
        resolve(c);
      });
      c.on('error', (err) => {
        if (settled) return;
        settled = true;
        c.end();
        if (presented && !(pin && hostKeyMatches(pin, presented))) {
          const got = fingerprint(presented);
          reject(
            new DlpctlError(
              'AUTH_FAILED',
              pin
                ? `host key mismatch for ${t.host}:${t.port}: resource ${name} pins ${pin.fingerprint}, the target presented ${got}; refusing to connect (if the key changed on purpose, update hostKey)`
                : `resource ${name} pins no hostKey; the target ${t.host}:${t.port} presented ${got}; refusing to connect (check it and set hostKey: ${got})`,
            ),
          );
          return;
        }
        const level = (err as { level?: string }).level;
        const why = level === 'client-authentication' ? `the target refused the injected credential for ${t.user}` : err.message;
        reject(new DlpctlError('INTERNAL', `cannot connect to ${t.host}:${t.port}: ${why}`, { cause: err }));
      });
      // Our own socket, so that its writes coalesce (see coalesce-writes.ts); ssh2 waits for its 'connect'.
      const sock = coalesceWrites(net.connect({ host: t.host, port: t.port }));
      // Only the methods we hold a credential for: ssh2 would otherwise open with a 'none' attempt, one
      // more round trip to the target on every session's critical path.
      const methods = [...(t.privateKey !== undefined ? ['publickey'] : []), ...(t.password !== undefined ? ['password'] : [])];
      c.connect({
        sock,
        ...(methods.length > 0 ? { authHandler: methods as Ssh2.AuthenticationType[] } : {}),
        host: t.host,
        port: t.port,
        username: t.user,
        ...(t.privateKey !== undefined ? { privateKey: t.privateKey } : {}),
        ...(t.passphrase !== undefined ? { passphrase: t.passphrase } : {}),
        ...(t.password !== undefined ? { password: t.password } : {}),
        readyTimeout: this.o.connectTimeoutMs ?? 20_000,
        hostVerifier: (key: Buffer) => {
          presented = Buffer.from(key);
          return pin !== null && hostKeyMatches(pin, key);
        },
      });
    });
  }

  /** Decides one SSH action: evaluate, record durably, hold for approval. Never throws (fails closed). */
  async decide(
    conn: SshConnection,
    action: { channel: 'exec' | 'shell' | 'sftp' | 'forward'; command?: string; target?: string },
    rec: (v: { label: Decision; rule?: string; text?: string }) => EventBody,
    hooks: { notify?: (text: string) => void; requireRule?: boolean } = {},
  ): Promise<Verdict> {
    const resource = this.o.resource;
    const recorder = conn.recorder!;
    const emit = conn.emit;
    let auditText = action.command;
    try {
      if (action.command !== undefined) auditText = this.auditDlp.maskText(action.command).text;
      const decision = decide(this.tunnelPolicy, { type: 'ssh', ...action });
      const ruleName = ruleNameOf(decision);
      let action2 = decision.action;
      let message = decision.message;
      if (hooks.requireRule && decision.basis !== 'rule' && decision.enforced) {
        action2 = 'deny';
        message = `forwarding to ${action.target} is denied unless a rule allows it`;
      }
      const label: Decision = auditLabel(decision, action2);
      await recorder.record(rec({ label, ...(ruleName ? { rule: ruleName } : {}), ...(auditText !== undefined ? { text: auditText } : {}) }));
      if (action.command !== undefined && action.channel !== 'forward') recorder.counters.statements += 1;
      const summary = (auditText ?? action.target ?? action.channel).slice(0, 200);
      if (action2 === 'approve') {
        const outcome = await requestApproval(
          this.o.store,
          approvalRequest(decision, {
            sessionId: recorder.id,
            resource: resource.name,
            exact: action.command ?? action.target ?? action.channel,
            maskedText: auditText ?? action.target ?? action.channel,
            requester: this.o.identity,
            reason: this.o.reason,
          }),
          {
            signal: conn.abort.signal,
            onPending: (a) => {
              emit({ type: 'decision', resource: resource.name, sessionId: recorder.id, action: 'approve', rule: ruleName ?? null, summary: `waiting for approval ${a.id}` });
              hooks.notify?.(`dlpctl: waiting for approval ${a.id} (rule ${ruleName ?? 'approve'}); an approver runs: dlpctl approve ${a.id}`);
              this.o.onApprovalPending?.(a.id, auditText ?? action.target ?? action.channel);
            },
          },
        );
        await recorder.record({ type: 'approval.decided', approvalId: outcome.approval?.id ?? '', state: outcome.approval?.state ?? 'expired' });
        action2 = outcome.approved ? 'allow' : 'deny';
        if (!outcome.approved) message = outcome.message;
      }
      emit({ type: 'decision', resource: resource.name, sessionId: recorder.id, action: label === 'observe' ? 'observe' : action2, rule: ruleName ?? null, kinds: [action.channel], summary });
      if (action2 === 'deny') {
        recorder.counters.denied += 1;
        const where = ruleName ? `policy ${decision.rule!.policy} rule ${decision.rule!.rule}` : decision.basis === 'fail_closed' ? 'fail-closed' : `resource ${resource.name} default`;
        return { allow: false, label: 'deny', ...(ruleName ? { rule: ruleName } : {}), message: denialText(where, message, decision.rule), masks: [] };
      }
      return { allow: true, label, ...(ruleName ? { rule: ruleName } : {}), message: '', masks: decision.masks };
    } catch (err) {
      const why = err instanceof DlpctlError ? err.message : `evaluation failed: ${err instanceof Error ? err.message : String(err)}`;
      recorder.counters.denied += 1;
      emit({ type: 'decision', resource: resource.name, sessionId: recorder.id, action: 'deny', rule: null, summary: why });
      return { allow: false, label: 'deny', message: `dlpctl: denied (fail closed): ${why}`, masks: [] };
    }
  }
}

interface PtyInfo {
  cols: number;
  rows: number;
  width: number;
  height: number;
  term: string;
  modes: Ssh2.TerminalModes;
}

/** One client connection: its authentication, its upstream connection, its channels, its record. */
class SshConnection {
  readonly id: string;
  readonly engine: SshEngine;
  readonly socket: net.Socket;
  readonly secret: string;
  readonly emit: Emit;
  readonly abort = new AbortController();
  readonly done: Promise<void>;
  recorder: SessionRecorder | null = null;
  /** An upstream log-in succeeded at set-up (channels then open on the shared connections). */
  private upstreamOk = false;
  private client: Ssh2.Connection | null = null;
  private ready: Promise<void> | null = null;
  private setupError: string | null = null;
  private openChannels = 0;
  private nextChannel = 0;
  private authFailures = 0;
  private terminated: string | null = null;
  private errored = false;
  private readonly startMs = Date.now();
  private readonly live = new Set<{ kill(reason: string | null): void }>();
  /** Channels still being accounted for (their close events), awaited before the record closes. */
  private readonly closing = new Set<Promise<void>>();
  // Terminal frames waiting to be written (batched: output is recorded after the fact, never ahead).
  private frames: TerminalOutputBody[] = [];
  private frameBytes = 0;
  private recordedBytes = 0;
  private truncatedNoted = false;
  private frameTimer: NodeJS.Timeout | null = null;
  private frameChain: Promise<void> = Promise.resolve();
  private resolveDone!: () => void;
  private finishing = false;

  constructor(engine: SshEngine, socket: net.Socket, ctx: { secret: string; emit: Emit }, id: string) {
    this.engine = engine;
    this.socket = socket;
    this.secret = ctx.secret;
    this.emit = ctx.emit;
    this.id = id;
    this.done = new Promise((r) => (this.resolveDone = r));
    // A client that does not log in within the limit is disconnected (LOGIN_GRACE_MS).
    const limit = engine.o.loginGraceMs ?? LOGIN_GRACE_MS;
    const grace = setTimeout(() => {
      if (this.ready !== null) return;
      this.emit({ type: 'error', resource: engine.o.resource.name, message: `client ${this.clientAddr} rejected: it did not log in within ${limit / 1000} s` });
      socket.destroy();
    }, limit);
    grace.unref();
    socket.once('close', () => {
      clearTimeout(grace);
      void this.finish();
    });
  }

  get clientAddr(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  attach(client: Ssh2.Connection): void {
    this.client = client;
    client.on('error', () => {
      /* a broken client ends its own connection only; `close` follows */
    });
    client.on('authentication', (c) => {
      if (this.engine.authenticate(c, this.secret) === 'accept') return c.accept();
      if (c.method !== 'none' && ++this.authFailures >= 6) {
        client.end();
        return;
      }
      c.reject(['publickey', 'password']);
    });
    client.on('ready', () => {
      this.ready = this.setUp();
      this.ready.catch(() => undefined);
    });
    client.on('session', (accept, reject) => {
      if (!this.ready || this.openChannels >= (this.engine.o.maxChannels ?? 64)) {
        reject();
        return;
      }
      this.onSession(accept());
    });
    client.on('tcpip', (accept, reject, info) => void this.onDirectTcpip(accept, reject, info));
    client.on('openssh.streamlocal', (_a, reject) => {
      reject();
      void this.note('unix socket forwarding refused');
    });
    client.on('request', (_accept, reject, name) => {
      reject?.();
      void this.note(`${name} (remote port forwarding) refused`);
    });
    client.on('close', () => void this.finish());
  }

  /**
   * After client authentication: open the record and the upstream connection, side by side (the log-in to
   * the target does not wait for the durable session record; nothing is forwarded before both are ready).
   */
  private async setUp(): Promise<void> {
    const o = this.engine.o;
    const resource = o.resource.name;
    const upstream = this.engine.upstreams.ensure();
    upstream.catch(() => undefined); // awaited below, once the session is recorded
    try {
      this.recorder = await SessionRecorder.start(o.store, {
        resource,
        kind: 'ssh',
        identity: o.identity,
        clientAddr: this.clientAddr,
        ...(o.reason ? { reason: o.reason } : {}),
      });
    } catch (err) {
      this.setupError = err instanceof Error ? err.message : String(err);
      this.errored = true;
      this.emit({ type: 'error', resource, message: this.setupError });
      throw err;
    }
    this.emit({ type: 'session_start', resource, sessionId: this.recorder.id, client: this.clientAddr });
    try {
      await upstream;
    } catch (err) {
      this.setupError = err instanceof Error ? err.message : String(err);
      this.errored = true;
      this.emit({ type: 'error', resource, sessionId: this.recorder.id, message: this.setupError });
      await this.recorder.record({ type: 'error', message: this.setupError, code: err instanceof DlpctlError ? err.code : 'INTERNAL' }).catch(() => undefined);
      throw err;
    }
    if (this.terminated) throw new Error(this.terminated);
    this.upstreamOk = true;
  }

  /**
   * Opens a channel upstream on a shared connection; its slot is given back when the channel closes. A
   * target that refuses a channel on a connection that carries others (its MaxSessions) has that
   * connection capped and the channel retried on another.
   */
  private async openUpstream(open: (c: Ssh2.Client, cb: (err: Error | undefined, ch: Ssh2.ClientChannel) => void) => void): Promise<Ssh2.ClientChannel> {
    let ch: Ssh2.ClientChannel | null = null;
    for (let attempt = 0; ch === null; attempt++) {
      const lease = await this.engine.upstreams.acquire();
      try {
        ch = await new Promise<Ssh2.ClientChannel>((resolve, reject) =>
          open(lease.client, (err, c) => {
            if (err) {
              reject(err);
              return;
            }
            // (in this callback, not after the await: see watchUpstream)
            watchUpstream(c);
            c.once('close', () => lease.release());
            resolve(c);
          }),
        );
      } catch (err) {
        lease.release();
        // refused on a connection that carries others: cap it there and try another (each refusal caps
        // one connection, so this ends); refused on a connection of its own: the target's answer
        if (lease.shared === 0 || attempt >= 16) throw err;
        lease.full();
      }
    }
    if (this.terminated !== null || this.finishing) {
      // the session ended while the channel opened: it must not hold a slot on the shared connection (its
      // 'close', which gives the slot back, comes only after its output is read to the end)
      ch.resume();
      ch.stderr.resume();
      ch.close();
      throw new Error(this.terminated ?? 'the session ended');
    }
    return ch;
  }


  private async note(message: string): Promise<void> {
    if (!this.recorder) return;
    await this.recorder.record({ type: 'error', message, code: 'SSH_REFUSED' }).catch(() => this.failClosed());
  }

  private failClosed(): void {
    void this.terminate('the session store cannot record this session; ending it to keep the audit trail complete');
  }

  // ───────────────────────────── session channels ─────────────────────────────

  private onSession(ch: Ssh2.Session): void {
    const id = ++this.nextChannel;
    this.openChannels++;
    let pty: PtyInfo | null = null;
    const env: Record<string, string> = {};
    let running: Ssh2.ClientChannel | null = null;
    let started = false;
    ch.once('close', () => this.openChannels--);
    ch.on('pty', (accept, _reject, info) => {
      pty = { cols: info.cols, rows: info.rows, width: info.width, height: info.height, term: info.term, modes: info.modes };
      accept?.();
    });
    ch.on('window-change', (accept, _reject, info) => {
      if (pty) Object.assign(pty, { cols: info.cols, rows: info.rows, width: info.width, height: info.height });
      running?.setWindow(info.rows, info.cols, info.height, info.width);
      accept?.();
    });
    ch.on('env', (accept, reject, info) => {
      if (!started && this.engine.envAllowed(info.key)) {
        env[info.key] = info.val;
        accept?.();
      } else reject?.();
    });
    ch.on('signal', (accept, _reject, info) => {
      running?.signal(info.name);
      accept?.();
    });
    ch.on('auth-agent', (_accept, reject) => {
      reject?.();
      void this.note('agent forwarding refused');
    });
    ch.on('x11', (_accept, reject) => {
      reject?.();
      void this.note('X11 forwarding refused');
    });
    const setRunning = (c: Ssh2.ClientChannel) => (running = c);
    ch.on('exec', (accept, reject, info) => {
      if (started) return reject?.();
      started = true;
      void this.runExec(accept(), id, info.command, pty, env, setRunning);
    });
    ch.on('shell', (accept, reject) => {
      if (started) return reject?.();
      started = true;
      void this.runShell(accept(), id, pty, env, setRunning);
    });
    ch.on('subsystem', (accept, reject, info) => {
      if (started || info.name !== 'sftp') {
        reject?.();
        if (info.name !== 'sftp') void this.note(`subsystem ${info.name} refused`);
        return;
      }
      started = true;
      void this.runSftp(accept(), id, setRunning);
    });
  }

  /** Waits for the set-up; on failure tells the client why and ends the channel. */
  private async setUpOk(ch: Ssh2.ServerChannel, nl: string): Promise<boolean> {
    try {
      await this.ready;
      return this.recorder !== null && this.upstreamOk;
    } catch {
      ch.stderr.write(`dlpctl: ${this.setupError ?? this.terminated ?? 'the tunnel cannot reach the target'}${nl}`);
      ch.exit(255);
      ch.end();
      return false;
    }
  }

  private refuse(ch: Ssh2.ServerChannel, message: string, nl: string, status: number): void {
    ch.stderr.write(`${message}${nl}`);
    ch.exit(status);
    ch.end();
  }

  private async runExec(ch: Ssh2.ServerChannel, id: number, command: string, pty: PtyInfo | null, env: Record<string, string>, setRunning: (c: Ssh2.ClientChannel) => void): Promise<void> {
    const nl = pty ? '\r\n' : '\n';
    if (!(await this.setUpOk(ch, nl))) return;
    const transfer = FILE_TRANSFER.test(command);
    // `scp -f SOURCE…`: the target side of a legacy download; its files are decided and masked one by one.
    const sources = transfer ? scpDownloadSources(command) : null;
    const v = await this.engine.decide(
      this,
      { channel: 'exec', command },
      (d) => ({ type: 'ssh.command', command: d.text ?? '', decision: d.label, ...(d.rule ? { rule: d.rule } : {}), channel: 'exec', channelId: id }),
      { notify: (t) => ch.stderr.write(`${t}${nl}`) },
    );
    if (!v.allow) {
      await this.recordClose({ channel: 'exec', decision: 'deny', ...(v.rule ? { rule: v.rule } : {}), channelId: id, exitStatus: 126, bytesIn: 0, bytesOut: 0 });
      this.refuse(ch, v.message, nl, 126);
      return;
    }
    const mask = this.engine.masks.for(v.masks);
    const downloads = sources !== null && (mask !== null || this.engine.pathRules);
    if (downloads) {
      // Sources named literally are decided before anything runs; globs and directories (-r) file by file.
      for (const src of sources.filter((x) => !/[*?[]/.test(x))) {
        const denied = await this.checkPath('exec', id, src);
        if (denied !== null) {
          await this.recordClose({ channel: 'exec', decision: 'deny', channelId: id, exitStatus: 126, bytesIn: 0, bytesOut: 0 });
          this.refuse(ch, denied, nl, 126);
          return;
        }
      }
    }
    const opts: Ssh2.ExecOptions = { env, ...(pty ? { pty: ptyOptions(pty) } : {}) };
    let stream: Ssh2.ClientChannel;
    try {
      stream = await this.openUpstream((c, cb) => c.exec(command, opts, cb));
    } catch (err) {
      void this.recordClose({ channel: 'exec', decision: v.label, channelId: id, exitStatus: 255 });
      this.refuse(ch, `dlpctl: the target refused the channel: ${(err as Error).message}`, nl, 255);
      return;
    }
    setRunning(stream);
    this.relay(ch, stream, {
      id,
      channel: 'exec',
      decision: v,
      mask: transfer ? null : mask,
      idle: pty ? 'immediate' : (this.engine.o.execIdleFlushMs ?? 200),
      record: !transfer,
      pty,
      ...(downloads ? { scp: { mask, sources } } : {}),
    });
  }

  private async runShell(ch: Ssh2.ServerChannel, id: number, pty: PtyInfo | null, env: Record<string, string>, setRunning: (c: Ssh2.ClientChannel) => void): Promise<void> {
    const nl = pty ? '\r\n' : '\n';
    if (!(await this.setUpOk(ch, nl))) return;
    const v = await this.engine.decide(
      this,
      { channel: 'shell' },
      (d) => ({
        type: 'ssh.channel',
        channel: 'shell',
        decision: d.label,
        ...(d.rule ? { rule: d.rule } : {}),
        phase: 'open',
        channelId: id,
        pty: pty !== null,
        ...(pty ? { cols: pty.cols, rows: pty.rows, term: pty.term } : {}),
        env: Object.keys(env),
      }),
      { notify: (t) => ch.stderr.write(`${t}${nl}`) },
    );
    if (!v.allow) {
      await this.recordClose({ channel: 'shell', decision: 'deny', ...(v.rule ? { rule: v.rule } : {}), channelId: id, exitStatus: 126 });
      this.refuse(ch, v.message, nl, 126);
      return;
    }
    let stream: Ssh2.ClientChannel;
    try {
      stream = await this.openUpstream((c, cb) => c.shell(pty ? ptyOptions(pty) : false, { env }, cb));
    } catch (err) {
      void this.recordClose({ channel: 'shell', decision: v.label, channelId: id, exitStatus: 255 });
      this.refuse(ch, `dlpctl: the target refused the shell: ${(err as Error).message}`, nl, 255);
      return;
    }
    setRunning(stream);
    this.relay(ch, stream, { id, channel: 'shell', decision: v, mask: this.engine.masks.for(v.masks), idle: 'immediate', record: true, pty, lines: true });
  }

  private async runSftp(ch: Ssh2.ServerChannel, id: number, setRunning: (c: Ssh2.ClientChannel) => void): Promise<void> {
    if (!(await this.setUpOk(ch, '\n'))) return;
    const v = await this.engine.decide(this, { channel: 'sftp' }, (d) => ({
      type: 'ssh.channel',
      channel: 'sftp',
      decision: d.label,
      ...(d.rule ? { rule: d.rule } : {}),
      phase: 'open',
      channelId: id,
    }));
    if (!v.allow) {
      await this.recordClose({ channel: 'sftp', decision: 'deny', ...(v.rule ? { rule: v.rule } : {}), channelId: id });
      // An sftp client reads stderr of a subsystem as diagnostics; it then sees the channel close.
      this.refuse(ch, v.message, '\n', 126);
      return;
    }
    let stream: Ssh2.ClientChannel;
    try {
      stream = await this.openUpstream((c, cb) => c.subsys('sftp', cb));
    } catch (err) {
      void this.recordClose({ channel: 'sftp', decision: v.label, channelId: id });
      this.refuse(ch, `dlpctl: the target refused the sftp subsystem: ${(err as Error).message}`, '\n', 255);
      return;
    }
    setRunning(stream);
    const mask = this.engine.masks.for(v.masks);
    this.relay(ch, stream, { id, channel: 'sftp', decision: v, mask: null, idle: 0, record: false, pty: null, sftp: { mask, downloads: mask !== null || this.engine.pathRules } });
  }

  // ───────────────────────────── direct-tcpip ─────────────────────────────

  private async onDirectTcpip(accept: () => Ssh2.ServerChannel, reject: () => void, info: Ssh2.TcpipRequestInfo): Promise<void> {
    try {
      await this.ready;
    } catch {
      return reject();
    }
    if (!this.recorder || !this.upstreamOk || this.openChannels >= (this.engine.o.maxChannels ?? 64)) return reject();
    const id = ++this.nextChannel;
    const target = `${info.destIP}:${info.destPort}`;
    const v = await this.engine.decide(
      this,
      { channel: 'forward', target, command: target },
      (d) => ({ type: 'ssh.channel', channel: 'forward', decision: d.label, ...(d.rule ? { rule: d.rule } : {}), target, phase: 'open', channelId: id }),
      { requireRule: true },
    );
    if (!v.allow) return reject();
    let up: Ssh2.ClientChannel;
    try {
      up = await this.openUpstream((c, cb) => c.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, cb));
    } catch {
      void this.recordClose({ channel: 'forward', decision: v.label, target, channelId: id });
      reject();
      return;
    }
    this.openChannels++;
    const ch = accept();
    ch.once('close', () => this.openChannels--);
    this.relay(ch, up, { id, channel: 'forward', decision: v, mask: null, idle: 0, record: false, pty: null, target });
  }

  // ───────────────────────────── the relay ─────────────────────────────

  private relay(
    ch: Ssh2.ServerChannel,
    up: Ssh2.ClientChannel,
    o: {
      id: number;
      channel: 'exec' | 'shell' | 'sftp' | 'forward';
      decision: Verdict;
      mask: DlpEngine | null;
      idle: 'immediate' | number;
      record: boolean;
      pty: PtyInfo | null;
      lines?: boolean;
      /** sftp: downloads decided by path rules and masked (mask null: only decided). */
      sftp?: { mask: DlpEngine | null; downloads: boolean };
      /** scp -f: the same for a legacy download. */
      scp?: { mask: DlpEngine | null; sources: string[] };
      target?: string;
    },
  ): void {
    const counters = this.recorder!.counters;
    let bytesIn = 0;
    let bytesOut = 0;
    let recent = '';
    const nl = o.pty ? '\r\n' : '\n';
    const frameDec = new StringDecoder('utf8');

    const toClient = (target: NodeJS.WritableStream, masked: Buffer) => {
      bytesOut += masked.length;
      counters.bytesOut += masked.length;
      if (o.record) this.frame(o.id, o.mask ? masked.toString('utf8') : frameDec.write(masked));
      if (o.lines) recent = (recent + masked.toString('utf8')).slice(-256);
      if (!target.write(masked)) {
        up.pause();
        ch.once('drain', () => up.resume());
      }
    };
    const out = new OutputMasker({ engine: o.mask, idle: o.idle, emit: (b) => toClient(ch, b) });
    const err = new OutputMasker({ engine: o.mask, idle: o.idle, emit: (b) => toClient(ch.stderr, b) });
    const fileOpts = (mask: DlpEngine | null, channel: 'exec' | 'sftp'): DownloadFilterOptions => ({
      mask,
      check: (path) => this.checkPath(channel, o.id, path),
      toClient: (b) => toClient(ch, b),
      toServer: (b) => write(b),
      masked: (counts) => {
        for (const [k, n] of Object.entries(counts)) fileCounts[k] = (fileCounts[k] ?? 0) + n;
      },
      notice: (m) => ch.stderr.write(`${m}\n`),
    });
    const fileCounts: Record<string, number> = {};
    const scp = o.scp ? new ScpDownloads(fileOpts(o.scp.mask, 'exec'), o.scp.sources) : null;
    const sftp = o.sftp?.downloads ? new SftpDownloads(fileOpts(o.sftp.mask, 'sftp')) : null;
    if (scp) {
      // Target data in order; a path decision holds the target until it is made.
      let upChain: Promise<void> = Promise.resolve();
      let held = 0;
      up.on('data', (d: Buffer) => {
        held++;
        up.pause();
        upChain = upChain
          .then(() => scp.fromServer(d))
          .then(
            () => {
              if (--held === 0) up.resume();
            },
            () => up.close(),
          );
      });
    } else if (sftp) {
      const framer = new SftpFramer();
      up.on('data', (d: Buffer) => {
        let packets: Buffer[];
        try {
          packets = framer.push(d);
        } catch (e) {
          void this.note(`sftp channel ${o.id} closed: the target sent ${(e as Error).message}`);
          up.close();
          return;
        }
        for (const p of packets) sftp.fromServer(p);
      });
    } else up.on('data', (d: Buffer) => out.push(d));
    up.stderr.on('data', (d: Buffer) => err.push(d));

    // client → target
    const write = (d: Buffer) => {
      bytesIn += d.length;
      counters.bytesIn += d.length;
      if (!up.write(d)) {
        ch.pause();
        up.once('drain', () => ch.resume());
      }
    };
    let input: (d: Buffer) => Promise<void> | void = write;
    if (o.lines && o.pty) input = this.lineGate(ch, o.id, write, nl, () => recent);
    if (o.sftp) input = this.sftpRecorder(ch, o.id, write, sftp);
    if (scp) input = (d) => scp.fromClient(d);
    let chain: Promise<void> = Promise.resolve();
    ch.on('data', (d: Buffer) => {
      const r = input(d);
      if (r) {
        ch.pause();
        chain = chain.then(() => r).then(
          () => {
            ch.resume();
          },
          () => {
            ch.close();
          },
        );
      }
    });
    ch.on('end', () => {
      void chain.then(() => up.end());
    });

    let closed = false;
    let accounted!: () => void;
    const settled = new Promise<void>((r) => (accounted = r));
    this.closing.add(settled);
    void settled.then(() => this.closing.delete(settled));
    const kill = {
      kill: (reason: string | null) => {
        if (reason && o.channel !== 'forward' && o.channel !== 'sftp') ch.stderr.write(`${nl}dlpctl: ${reason}${nl}`);
        up.close();
      },
    };
    this.live.add(kill);
    const finish = () => {
      if (closed) return;
      closed = true;
      this.live.delete(kill);
      out.end();
      err.end();
      scp?.end();
      for (const [k, n] of Object.entries(fileCounts)) this.recorder!.masked(k, n);
      const tail = frameDec.end();
      if (o.record && tail) this.frame(o.id, tail);
      const e = upstreamExits.get(up) ?? null;
      if (e && o.channel !== 'forward') {
        if (e.code !== null) ch.exit(e.code);
        else if (e.signal) ch.exit(e.signal.replace(/^SIG/, ''), e.dump ?? false, e.desc ?? '');
      }
      ch.end();
      const counts = out.counts();
      for (const [k, n] of Object.entries(err.counts())) counts[k] = (counts[k] ?? 0) + n;
      for (const [k, n] of Object.entries(counts)) this.recorder!.masked(k, n);
      const rule = o.decision.masks.find((m) => m.entities?.length);
      void this.flushFrames()
        .then(() => this.recorder!.flushMasks(rule ? `${rule.policy}/${rule.rule}` : undefined))
        .then(() =>
          this.recordClose({
            channel: o.channel,
            decision: o.decision.label,
            ...(o.decision.rule ? { rule: o.decision.rule } : {}),
            ...(o.target ? { target: o.target } : {}),
            channelId: o.id,
            ...(e?.code != null ? { exitStatus: e.code } : {}),
            ...(e?.signal ? { exitSignal: e.signal } : {}),
            bytesIn,
            bytesOut,
          }),
        )
        .catch(() => this.failClosed())
        .finally(accounted);
    };
    up.on('close', finish);
    ch.on('close', () => {
      up.close();
      // If the target never answers the close, still account for the channel.
      if (!closed) setTimeout(finish, 2000).unref();
    });
  }

  /** Shell input: forward keystrokes, but decide each entered line before its Enter goes upstream. */
  private lineGate(ch: Ssh2.ServerChannel, id: number, write: (d: Buffer) => void, nl: string, recent: () => string): (d: Buffer) => Promise<void> | void {
    const tracker = new LineTracker();
    return (d: Buffer) => {
      const pieces = tracker.feed(d);
      if (pieces.length === 1 && pieces[0]!.kind === 'bytes') return write(pieces[0]!.data);
      return (async () => {
        for (const p of pieces) {
          if (p.kind === 'bytes') {
            write(p.data);
            continue;
          }
          const line = p.line.trim();
          if (line === '' || looksLikeSecretPrompt(recent())) {
            write(p.data);
            continue;
          }
          const v = await this.engine.decide(
            this,
            { channel: 'shell', command: line },
            (r) => ({ type: 'ssh.command', command: r.text ?? '', decision: r.label, ...(r.rule ? { rule: r.rule } : {}), channel: 'shell', channelId: id, certain: p.certain }),
            { notify: (t) => ch.write(`${nl}${t}${nl}`) },
          );
          if (v.allow) write(p.data);
          else {
            // Clear the shell's line (Ctrl-E, Ctrl-U: end of line, kill to start), say why, ask for a new prompt.
            write(Buffer.from('\x05\x15'));
            ch.write(`${nl}${v.message}${nl}`);
            write(Buffer.from('\r'));
          }
        }
      })();
    };
  }

  /** sftp input: record each file operation durably before it goes upstream; everything else passes. */
  private sftpRecorder(ch: Ssh2.ServerChannel, id: number, write: (d: Buffer) => void, downloads: SftpDownloads | null): (d: Buffer) => Promise<void> | void {
    const framer = new SftpFramer();
    return (d: Buffer) => {
      let packets: Buffer[];
      try {
        packets = framer.push(d);
      } catch (e) {
        void this.note(`sftp channel ${id} closed: ${(e as Error).message}`);
        ch.close();
        return;
      }
      const ops = packets.map((p) => describeSftpPacket(p));
      if (ops.every((x) => x === null) && !(downloads && packets.some((p) => downloads.wants(p)))) {
        if (packets.length) write(packets.length === 1 ? packets[0]! : Buffer.concat(packets));
        return;
      }
      return (async () => {
        let run: Buffer[] = [];
        for (let i = 0; i < packets.length; i++) {
          const op = ops[i];
          if (downloads?.wants(packets[i]!) && !(await downloads.fromClient(packets[i]!))) continue; // answered by dlpctl
          if (op) {
            if (run.length) write(Buffer.concat(run));
            run = [];
            const text = this.engine.auditDlp.maskText(formatSftpOp(op)).text;
            await this.recorder!.record({ type: 'ssh.command', command: text, decision: 'allow', channel: 'sftp', channelId: id });
            this.recorder!.counters.statements += 1;
          }
          run.push(packets[i]!);
        }
        if (run.length) write(Buffer.concat(run));
      })();
    };
  }

  /**
   * Decides one file read by the `ssh.paths` rules: null to go on, else the message for the client. A denial is
   * recorded durably first (the command text is `read "PATH"`).
   */
  private async checkPath(channel: 'exec' | 'sftp', id: number, path: string): Promise<string | null> {
    const engine = this.engine;
    if (!engine.pathRules) return null;
    const d = decide(engine.tunnelPolicy, { type: 'ssh', channel, path });
    if (d.action === 'allow') return null;
    const rule = ruleNameOf(d);
    const text = engine.auditDlp.maskText(`read ${JSON.stringify(path)}`).text;
    await this.recorder!.record({ type: 'ssh.command', command: text, decision: 'deny', ...(rule ? { rule } : {}), channel, channelId: id });
    this.recorder!.counters.denied += 1;
    const where = d.rule ? `policy ${d.rule.policy} rule ${d.rule.rule}` : 'fail-closed';
    this.emit({ type: 'decision', resource: engine.o.resource.name, sessionId: this.recorder!.id, action: 'deny', rule: rule ?? null, kinds: [channel], summary: text.slice(0, 200) });
    // An approve rule cannot hold a file read mid-transfer: it denies, and says so.
    const why = d.action === 'approve' ? `${d.message} (a download cannot wait for approval; it is denied)` : d.message;
    const generated = d.rule !== null && d.message === `denied by policy ${d.rule.policy} rule ${d.rule.rule}`;
    return generated && d.action === 'deny' ? `dlpctl: denied by ${where}: ${path}` : `dlpctl: denied by ${where}: ${path}: ${why}`;
  }

  private async recordClose(b: Omit<Extract<EventBody, { type: 'ssh.channel' }>, 'type' | 'phase'>): Promise<void> {
    if (!this.recorder) return;
    await this.recorder.record({ type: 'ssh.channel', phase: 'close', ...b }, { defer: true }).catch(() => this.failClosed());
  }

  // ───────────────────────────── terminal frames ─────────────────────────────

  private frame(channelId: number, data: string): void {
    if (!data || !this.recorder) return;
    const limit = this.engine.o.recordLimit ?? 8 * 1024 * 1024;
    if (this.recordedBytes >= limit) {
      if (!this.truncatedNoted) {
        this.truncatedNoted = true;
        void this.note(`terminal output beyond ${limit} bytes is not recorded`);
      }
      return;
    }
    this.recordedBytes += data.length;
    this.frames.push({ type: 'terminal.output', t: Math.round(Date.now() - this.startMs) / 1000, data, stream: 'o', channelId });
    this.frameBytes += data.length;
    if (this.frameBytes >= 64 * 1024 || this.frames.length >= 256) void this.flushFrames();
    else if (!this.frameTimer) this.frameTimer = setTimeout(() => void this.flushFrames(), 50);
  }

  private flushFrames(): Promise<void> {
    if (this.frameTimer) clearTimeout(this.frameTimer);
    this.frameTimer = null;
    if (this.frames.length === 0) return this.frameChain;
    const batch = this.frames;
    this.frames = [];
    this.frameBytes = 0;
    const rec = this.recorder!;
    this.frameChain = this.frameChain.then(() =>
      this.engine.o.store.appendMany(rec.id, batch, { defer: true }).then(
        () => undefined,
        () => this.failClosed(),
      ),
    );
    return this.frameChain;
  }

  // ───────────────────────────── end ─────────────────────────────

  async terminate(reason: string): Promise<void> {
    // Already ending on its own (the client disconnected): the outcome is the client's, not a cut.
    if (this.terminated || this.finishing) return;
    this.terminated = reason;
    this.abort.abort(new Error(reason));
    for (const c of this.live) c.kill(reason);
    this.client?.end();
    if (!this.client) this.socket.destroy();
  }

  private async finish(): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    if (!this.abort.signal.aborted) this.abort.abort(new Error('the session ended'));
    for (const c of this.live) c.kill(null);
    if (!this.socket.destroyed) this.socket.destroy();
    try {
      await this.ready?.catch(() => undefined);
      for (const c of this.live) c.kill(null);
      if (this.closing.size) {
        const grace = new Promise<void>((r) => setTimeout(r, 3000).unref());
        await Promise.race([Promise.allSettled([...this.closing]), grace]);
      }
      const rec = this.recorder;
      if (rec) {
        await this.flushFrames();
        const outcome = this.terminated ? 'terminated' : this.errored ? 'error' : 'ok';
        await rec.end(outcome).catch((err: unknown) => this.emit({ type: 'error', resource: this.engine.o.resource.name, sessionId: rec.id, message: String(err) }));
        this.emit({ type: 'session_end', resource: this.engine.o.resource.name, sessionId: rec.id, outcome, ...(this.setupError ? { error: this.setupError } : {}) });
      }
    } finally {
      this.resolveDone();
    }
  }
}

interface UpstreamExit {
  code: number | null;
  signal?: string;
  dump?: boolean;
  desc?: string;
}

/** Each upstream channel's exit status (see watchUpstream). */
const upstreamExits = new WeakMap<Ssh2.ClientChannel, UpstreamExit>();

/**
 * Catches an upstream channel's exit status from the moment it opens. A command that ends at once (`true`) can
 * send its status in the same read as the confirmation of the channel: ssh2 emits 'exit' while it handles that
 * read, before the code awaiting the channel runs and attaches the relay. The status was then lost and the
 * client, told of none, exited 255 (seen on a loaded machine). (Output waits in the channel until it is read, and
 * its 'close' comes only after that, so neither can be missed the same way; a test sends all of it at once.)
 */
function watchUpstream(c: Ssh2.ClientChannel): void {
  c.on('exit', (code: number | null, signal?: string, dump?: boolean, desc?: string) => {
    upstreamExits.set(c, { code, ...(signal ? { signal } : {}), ...(dump !== undefined ? { dump } : {}), ...(desc ? { desc } : {}) });
  });
}

function ptyOptions(p: PtyInfo): Ssh2.PseudoTtyOptions {
  return { rows: p.rows, cols: p.cols, height: p.height, width: p.width, term: p.term, modes: p.modes };
}


/** The sources of an `scp -f` command line (as the target's shell would split it), or null. */
function scpDownloadSources(command: string): string[] | null {
  const a = analyzeShell(command);
  const first = a.commands.length === 1 ? a.commands[0]! : null;
  return first ? scpSources(first.words) : null;
}
