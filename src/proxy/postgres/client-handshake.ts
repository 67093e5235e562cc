/**
 * The client half of start-up: a local client (psql, node-postgres, pgbench, the agent) meeting dlpctl.
 *
 *   SSLRequest    → 'S' and TLS when the resource has serverTls, else 'N' (the client retries in clear);
 *                   with serverTls a start-up message in clear is refused (28000)
 *   GSSENCRequest → 'N'
 *   CancelRequest → handed back to the engine, which maps the key to the upstream backend's key
 *   StartupMessage(user, database, …)
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
      if (isProtocolError(err)) return fatal(conn, '08P01', `invalid start-up packet: ${err.message}`);
      throw err;
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
