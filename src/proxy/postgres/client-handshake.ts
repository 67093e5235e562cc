/**
 * The client half of start-up: a local client (psql, node-postgres, pgbench, the agent) meeting dlpctl.
 *
 *   SSLRequest    → 'S' and TLS when the resource has serverTls, else 'N' (the client retries in clear);
 *                   with serverTls a start-up message in clear is refused (28000)
 *   GSSENCRequest → 'N'
 *   CancelRequest → handed back to the engine, which maps the key to the upstream backend's key
 *   StartupMessage(user, database, …): a newer minor version or `_pq_.` options get NegotiateProtocolVersion
 *                   3.0 (196608); another database than the target's 3D000 (one database per tunnel); any
 *                   user name logs in as the target user; `role` / `session_authorization` (also inside
 *                   `options`) and replication are refused; the rest reaches the server (upstream.ts)
 *   a bad start-up packet: as PostgreSQL 18, an impossible length closes silently, an unknown protocol
 *                   version gets 0A000, a bad layout 08P01
 *   AuthenticationSASL[SCRAM-SHA-256] ⇄ SASLInitialResponse / SASLContinue / SASLResponse / SASLFinal,
 *   checked against the per-tunnel random password; then AuthenticationOk.
 *
 * The client never learns the upstream credential. A wrong password gets FATAL 28P01, as from PostgreSQL.
 */
import tls from 'node:tls';
import type net from 'node:net';
import { LOGIN_GRACE_MS } from '../tunnel.js';
import { PgConn } from './conn.js';
import {
  decodeFrontend,
  decodeStartupPacket,
  encodeAuthenticationOk,
  encodeAuthenticationSASL,
  encodeAuthenticationSASLContinue,
  encodeAuthenticationSASLFinal,
  encodeBackend,
  encodeErrorResponse,
  isProtocolError,
  PROTOCOL_3_0,
  ScramServer,
  SCRAM_SHA_256,
  type ScramSecret,
} from './protocol.js';

export type ClientHello =
  | { kind: 'session'; conn: PgConn; params: Map<string, string>; tls: boolean }
  | { kind: 'cancel'; processId: number; secretKey: Buffer };

export interface ClientHandshakeOptions {
  scramSecret: ScramSecret;
  /** TLS toward clients; absent → SSLRequest is answered 'N'. */
  serverTls?: { cert: string; key: string };
  /** The database this tunnel serves: another name is refused. */
  database: string;
  /** Start-up and authentication must be complete within this (default LOGIN_GRACE_MS). */
  timeoutMs?: number;
}

export class ClientRejected extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClientRejected';
  }
}

async function fatal(conn: PgConn, code: string, message: string, hint?: string): Promise<never> {
  await conn.end(encodeErrorResponse({ severity: 'FATAL', code, message, ...(hint ? { hint } : {}) })).catch(() => {});
  throw new ClientRejected(message);
}

export async function clientHandshake(socket: net.Socket, opts: ClientHandshakeOptions): Promise<ClientHello> {
  const conn = new PgConn(socket, { side: 'the client', mode: 'startup' });
  const limit = opts.timeoutMs ?? LOGIN_GRACE_MS;
  const why = `the client did not complete start-up and authentication within ${limit / 1000} s`;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    // The pending read (or TLS handshake) then fails, which is reported below as this rejection.
    try {
      void conn.end(encodeErrorResponse({ severity: 'FATAL', code: '08P01', message: why })).catch(() => {});
    } catch {
      // mid-TLS-handshake the connection has no socket to write to: just close
    }
    setTimeout(() => socket.destroy(), 1000).unref();
  }, limit);
  try {
    return await handshake(conn, opts);
  } catch (err) {
    if (timedOut && !(err instanceof ClientRejected)) throw new ClientRejected(why);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

async function handshake(conn: PgConn, opts: ClientHandshakeOptions): Promise<ClientHello> {
  let secured = false;
  let params: Map<string, string> | null = null;
  while (!params) {
    let packet;
    try {
      packet = decodeStartupPacket(await conn.next());
    } catch (err) {
      if (!isProtocolError(err)) throw err;
      // As PostgreSQL 18: a packet of impossible length is closed on without a word (it is not a client
      // speaking the protocol), an unknown protocol version gets 0A000, a bad layout 08P01.
      if (err.code === 'PG_STARTUP_LENGTH' || err.code === 'PG_STARTUP_TOO_LARGE') {
        conn.destroy();
        throw new ClientRejected(`invalid start-up packet: ${err.message}`);
      }
      if (err.code === 'PG_STARTUP_CODE') {
        const code = err.value ?? 0;
        return fatal(conn, '0A000', `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: server supports 3.0 to 3.0`);
      }
      return fatal(conn, '08P01', `invalid start-up packet: ${err.message}`);
    }
    switch (packet.kind) {
      case 'SSLRequest':
        if (opts.serverTls && !secured) {
          await conn.write(Buffer.from('S'));
          const raw = conn.release();
          const secure = new tls.TLSSocket(raw, { isServer: true, cert: opts.serverTls.cert, key: opts.serverTls.key });
          await new Promise<void>((resolve, reject) => {
            secure.once('secure', () => resolve());
            secure.once('error', reject);
          });
          conn.rebind(secure);
          secured = true;
        } else {
          await conn.write(Buffer.from('N'));
        }
        break;
      case 'GSSENCRequest':
        await conn.write(Buffer.from('N'));
        break;
      case 'CancelRequest':
        conn.destroy();
        return { kind: 'cancel', processId: packet.processId, secretKey: packet.secretKey };
      case 'StartupMessage': {
        // serverTls is what makes a non-loopback listener safe: no session starts in clear next to it.
        if (opts.serverTls && !secured) {
          return fatal(conn, '28000', 'this tunnel accepts TLS connections only', 'connect with sslmode=require (or verify-full with the tunnel certificate), as in the URL dlpctl printed');
        }
        if (packet.protocolVersion !== PROTOCOL_3_0 || [...packet.params.keys()].some((k) => k.startsWith('_pq_.'))) {
          // We speak 3.0 to both sides: tell a newer client so, as PostgreSQL itself does. The field is the
          // newest version we support as a whole protocol number (3.0 = 196608), not its minor part.
          await conn.write(
            encodeBackend({
              kind: 'NegotiateProtocolVersion',
              newestMinorVersion: PROTOCOL_3_0,
              unrecognizedOptions: [...packet.params.keys()].filter((k) => k.startsWith('_pq_.')),
            }),
          );
        }
        if (packet.params.get('replication') && packet.params.get('replication') !== 'false') {
          return fatal(conn, '28000', 'replication connections are not allowed through dlpctl');
        }
        const refused = refusedStartupParameter(packet.params);
        if (refused) return fatal(conn, '42501', refused, 'connect as the tunnel\'s user; the database role is the one the resource names');
        params = packet.params;
        break;
      }
    }
  }
  const user = params.get('user') ?? '';
  const database = params.get('database') || user;
  if (database !== opts.database) {
    return fatal(conn, '3D000', `this tunnel serves database "${opts.database}" only, not "${database}"`, 'use the connection URL dlpctl printed');
  }

  await conn.write(encodeAuthenticationSASL([SCRAM_SHA_256]));
  try {
    const first = decodeFrontend(await conn.next(), { authPhase: 'sasl-initial' });
    if (first.kind !== 'SASLInitialResponse' || first.mechanism !== SCRAM_SHA_256 || !first.data) {
      return fatal(conn, '28000', 'the tunnel accepts SCRAM-SHA-256 authentication only');
    }
    const server = new ScramServer(opts.scramSecret);
    await conn.write(encodeAuthenticationSASLContinue(server.handleClientFirst(first.data)));
    const final = decodeFrontend(await conn.next(), { authPhase: 'sasl-continue' });
    if (final.kind !== 'SASLResponse') return fatal(conn, '08P01', 'expected a SASL response');
    const serverFinal = server.handleClientFinal(final.data);
    await conn.write(Buffer.concat([encodeAuthenticationSASLFinal(serverFinal), encodeAuthenticationOk()]));
  } catch (err) {
    if (err instanceof ClientRejected) throw err;
    if (isProtocolError(err)) {
      if (err.code === 'SCRAM_INVALID_PROOF') {
        return fatal(conn, '28P01', `password authentication failed for user "${user}"`, 'use the password of the connection URL dlpctl printed for this tunnel');
      }
      return fatal(conn, '28000', `authentication failed: ${err.message}`);
    }
    throw err;
  }
  return { kind: 'session', conn, params, tls: secured };
}

/**
 * Start-up parameters that would change who the session runs as: `role` and `session_authorization`,
 * directly or in `options` (`-c role=x`, `--role=x`). Refused with a FATAL rather than dropped, so the
 * client never believes it runs as a role it does not. (`user` is not one of them: any user name logs in
 * as the resource's target user, the one the tunnel holds a credential for.)
 */
export function refusedStartupParameter(params: ReadonlyMap<string, string>): string | null {
  const identity = (name: string): boolean => ['role', 'session_authorization'].includes(name.toLowerCase().replace(/-/g, '_'));
  for (const [k, v] of params) {
    if (identity(k)) return `start-up parameter "${k}" is not allowed through dlpctl: the session runs as the resource's target user`;
    if (k === 'options') {
      for (const name of optionSettings(v)) {
        if (identity(name)) return `setting "${name}" in the options start-up parameter is not allowed through dlpctl: the session runs as the resource's target user`;
      }
    }
  }
  return null;
}

/**
 * The setting names in an `options` value, read as the server reads it: words split on unescaped white
 * space (a backslash escapes the next character), `-c name=value` / `-cname=value` / `--name=value`.
 */
export function optionSettings(options: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < options.length; i++) {
    const ch = options[i]!;
    if (ch === '\\' && i + 1 < options.length) {
      word += options[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  const names: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    let setting: string | undefined;
    if (w === '-c') setting = words[++i];
    else if (w.startsWith('-c')) setting = w.slice(2);
    else if (w.startsWith('--')) setting = w.slice(2);
    if (setting !== undefined) names.push(setting.split('=')[0] ?? '');
  }
  return names;
}
