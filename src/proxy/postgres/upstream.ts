/**
 * The upstream half: dlpctl connecting to the real PostgreSQL with the injected credential.
 *
 *   TCP connect
 *   [SSLRequest → 'S' → TLS handshake]        per tls.mode; 'N' under require/verify-full is an error,
 *                                              never a silent downgrade
 *   StartupMessage(user, database, the client's other parameters)
 *   Authentication*: SCRAM-SHA-256 (no -PLUS: the client's TLS ends here) | md5 | cleartext
 *   ParameterStatus*, BackendKeyData, ReadyForQuery
 *
 * Every failure becomes a DlpctlError whose message names the target (never the password) and says what
 * to check.
 */
import net from 'node:net';
import tls from 'node:tls';
import { DlpctlError } from '../../errors.js';
import { PgConn } from './conn.js';
import {
  decodeBackend,
  encodeCancelRequest,
  encodePasswordMessage,
  encodeSASLInitialResponse,
  encodeSASLResponse,
  encodeSSLRequest,
  encodeStartupMessage,
  md5PasswordHash,
  ScramClient,
  SCRAM_SHA_256,
  type TransactionStatus,
} from './protocol.js';

export interface UpstreamTarget {
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
  tls: { mode: 'disable' | 'require' | 'verify-full'; ca?: string };
  connectTimeoutMs?: number;
}

export interface Upstream {
  conn: PgConn;
  parameters: Map<string, string>;
  processId: number;
  secretKey: Buffer;
  status: TransactionStatus;
  tls: boolean;
}

/** Parses `postgres://user@host:port/db` (no password: the config loader refuses one there). */
export function parseTargetUrl(url: string): { host: string; port: number; user: string; database: string } {
  const u = new URL(url);
  const user = decodeURIComponent(u.username);
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || user;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return { host, port: u.port ? Number(u.port) : 5432, user, database };
}

function where(t: Pick<UpstreamTarget, 'host' | 'port'>): string {
  return `${t.host}:${t.port}`;
}

export function tcpConnect(t: Pick<UpstreamTarget, 'host' | 'port' | 'connectTimeoutMs'>): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: t.host, port: t.port, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DlpctlError('INTERNAL', `cannot reach the database at ${where(t)}: no answer within ${(t.connectTimeoutMs ?? 10_000) / 1000}s; check the target and the network`));
    }, t.connectTimeoutMs ?? 10_000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.setKeepAlive(true, 30_000);
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = err.code === 'ECONNREFUSED' ? 'connection refused' : err.code === 'ENOTFOUND' ? 'unknown host' : (err.code ?? err.message);
      reject(new DlpctlError('INTERNAL', `cannot reach the database at ${where(t)} (${why}); check the resource's target and that the server is up`, { cause: err }));
    });
  });
}

async function startTls(conn: PgConn, t: UpstreamTarget): Promise<void> {
  await conn.write(encodeSSLRequest());
  conn.framer.setMode('single-byte');
  const answer = await conn.next();
  if (answer.type === 0x4e /* N */) {
    throw new DlpctlError(
      'INTERNAL',
      `the database at ${where(t)} does not offer TLS, and tls.mode is ${t.tls.mode}; dlpctl never downgrades: enable ssl on the server or set tls.mode: disable for this resource`,
    );
  }
  if (answer.type !== 0x53 /* S */) throw new DlpctlError('INTERNAL', `the database at ${where(t)} answered the TLS request with an unexpected byte`);
  const raw = conn.release();
  const verify = t.tls.mode === 'verify-full';
  const secure = tls.connect({
    socket: raw,
    // `host` is the name the certificate is checked against (without it Node checks "localhost");
    // SNI (`servername`) cannot carry an IP address.
    host: t.host,
    servername: net.isIP(t.host) ? undefined : t.host,
    rejectUnauthorized: verify,
    ...(t.tls.ca ? { ca: t.tls.ca } : {}),
    ...(verify ? {} : { checkServerIdentity: () => undefined }),
  });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', () => resolve());
    secure.once('error', (err) =>
      reject(new DlpctlError('INTERNAL', `TLS with the database at ${where(t)} failed: ${err.message}${verify ? ' (tls.mode verify-full: check tls.ca and the host name)' : ''}`, { cause: err })),
    );
  });
  conn.rebind(secure);
}

/**
 * Start-up parameters dlpctl decides itself (`user`, `database`: the target's; `replication`: refused) or
 * that are protocol options for dlpctl, not settings for the server (`_pq_.*`). Everything else the client
 * sent (options, application_name, statement_timeout and any other setting) reaches the server as sent:
 * the server applies its own rules to them, for the target user. The parameters that would change who the
 * session runs as are refused at the client's start-up (client-handshake.ts, `refusedStartupParameter`).
 */
const NOT_FORWARDED = new Set(['user', 'database', 'replication']);

export function forwardedClientParameters(params: ReadonlyMap<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of params) if (!NOT_FORWARDED.has(k.toLowerCase()) && !k.startsWith('_pq_.')) out.set(k, v);
  return out;
}

export async function connectUpstream(t: UpstreamTarget, clientParams: ReadonlyMap<string, string> = new Map()): Promise<Upstream> {
  const socket = await tcpConnect(t);
  const conn = new PgConn(socket, { side: 'the database' });
  try {
    if (t.tls.mode !== 'disable') await startTls(conn, t);
    const params = new Map<string, string>([
      ['user', t.user],
      ['database', t.database],
      ...forwardedClientParameters(clientParams),
    ]);
    await conn.write(encodeStartupMessage(params));
    await authenticate(conn, t);
    const parameters = new Map<string, string>();
    let processId = 0;
    let secretKey = Buffer.alloc(0);
    for (;;) {
      const msg = decodeBackend(await conn.next());
      switch (msg.kind) {
        case 'ParameterStatus':
          parameters.set(msg.name, msg.value);
          break;
        case 'BackendKeyData':
          processId = msg.processId;
          secretKey = Buffer.from(msg.secretKey);
          break;
        case 'ReadyForQuery':
          return { conn, parameters, processId, secretKey, status: msg.status, tls: t.tls.mode !== 'disable' };
        case 'ErrorResponse':
          throw new DlpctlError('INTERNAL', `the database at ${where(t)} refused the session: ${msg.message} (${msg.code})`);
        case 'NoticeResponse':
        case 'NegotiateProtocolVersion':
          break;
        default:
          throw new DlpctlError('INTERNAL', `the database at ${where(t)} sent ${msg.kind} during start-up`);
      }
    }
  } catch (err) {
    conn.destroy();
    if (err instanceof DlpctlError) throw err;
    const m = err instanceof Error ? err.message : String(err);
    throw new DlpctlError('INTERNAL', `connecting to the database at ${where(t)} failed: ${m}`, { cause: err });
  }
}

async function authenticate(conn: PgConn, t: UpstreamTarget): Promise<void> {
  let scram: ScramClient | null = null;
  const needPassword = (): string => {
    if (t.password === undefined) {
      throw new DlpctlError('CONFIG_INVALID', `the database at ${where(t)} asks user ${t.user} for a password and the resource has none; set password: \${env:…} on the resource`);
    }
    return t.password;
  };
  for (;;) {
    const msg = decodeBackend(await conn.next());
    switch (msg.kind) {
      case 'AuthenticationOk':
        return;
      case 'AuthenticationCleartextPassword':
        await conn.write(encodePasswordMessage(needPassword()));
        break;
      case 'AuthenticationMD5Password':
        await conn.write(encodePasswordMessage(md5PasswordHash(t.user, needPassword(), msg.salt)));
        break;
      case 'AuthenticationSASL': {
        // Channel binding (-PLUS) binds to a TLS channel the client does not share with us: never offered.
        if (!msg.mechanisms.includes(SCRAM_SHA_256)) {
          throw new DlpctlError('INTERNAL', `the database at ${where(t)} offers only ${msg.mechanisms.join(', ')}; dlpctl needs SCRAM-SHA-256, md5 or password authentication`);
        }
        scram = new ScramClient({ password: needPassword() });
        await conn.write(encodeSASLInitialResponse(SCRAM_SHA_256, scram.clientFirstMessage()));
        break;
      }
      case 'AuthenticationSASLContinue':
        if (!scram) throw new DlpctlError('INTERNAL', 'SCRAM continue without a start');
        await conn.write(encodeSASLResponse(scram.handleServerFirst(msg.data)));
        break;
      case 'AuthenticationSASLFinal':
        if (!scram) throw new DlpctlError('INTERNAL', 'SCRAM final without a start');
        scram.handleServerFinal(msg.data);
        break;
      case 'ErrorResponse':
        // A server whose pg_hba.conf has only `hostssl` lines refuses a clear-text session before any
        // password is asked for ("no pg_hba.conf entry … no encryption"; "SSL off" before PostgreSQL 14).
        if (msg.code === '28000' && t.tls.mode === 'disable' && /no encryption|SSL off/i.test(msg.message)) {
          throw new DlpctlError('CONFIG_INVALID', `the database at ${where(t)} requires TLS and the resource has tls: disable; set tls: require (or verify-full with tls.ca) on the resource`);
        }
        if (msg.code === '28P01' || msg.code === '28000') {
          throw new DlpctlError('AUTH_FAILED', `the database at ${where(t)} rejected the injected credential for user ${t.user} (${msg.code}); check the resource's password reference`);
        }
        throw new DlpctlError('INTERNAL', `the database at ${where(t)} refused the session: ${msg.message} (${msg.code})`);
      case 'NegotiateProtocolVersion':
        break;
      default:
        throw new DlpctlError('INTERNAL', `the database at ${where(t)} asked for an authentication method dlpctl does not support (${msg.kind})`);
    }
  }
}

/** Sends a CancelRequest for the upstream backend on a new connection (how PostgreSQL cancels). */
export async function cancelUpstream(t: UpstreamTarget, processId: number, secretKey: Buffer): Promise<void> {
  const socket = await tcpConnect({ ...t, connectTimeoutMs: 5000 });
  const conn = new PgConn(socket, { side: 'the database' });
  try {
    if (t.tls.mode !== 'disable') await startTls(conn, t);
    await conn.end(encodeCancelRequest(processId, secretKey));
  } finally {
    conn.destroy();
  }
}
