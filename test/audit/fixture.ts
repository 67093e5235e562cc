/** A store with three recorded sessions (PostgreSQL, HTTP, SSH) at fixed times, for the audit tests. */
import type { Identity, SessionStore } from '../../src/store/types.js';

export const T0 = Date.parse('2030-03-04T10:00:00.000Z');
export const at = (s: number) => new Date(T0 + s * 1000).toISOString();

export const AGENT: Identity = { issuer: 'https://idp.test', subject: 'agent-7', email: 'agent7@example.test', groups: ['agents'], kind: 'machine', verified: true };
export const HUMAN: Identity = { issuer: 'local:host', subject: 'alice', groups: [], kind: 'human', verified: false };

export interface Seeded {
  pg: string;
  http: string;
  ssh: string;
}

/** The store must be opened with `now: clock.now` so session ends get fixture times too. */
export const clock = { ms: T0, now: () => new Date(clock.ms) };

export async function seed(store: SessionStore): Promise<Seeded> {
  const pg = await store.createSession({ resource: 'shop-db', kind: 'postgres', identity: AGENT, clientAddr: '127.0.0.1:50001', reason: 'weekly report', startedAt: at(0) });
  await store.appendMany(pg.id, [
    { type: 'query', sql: 'SELECT email, phone FROM customers WHERE id = ?', decision: 'allow', kinds: ['select'], tables: ['public.customers'], time: at(1) },
    { type: 'mask.summary', entities: { email: 3, phone: 2 }, rule: 'pii/contact', time: at(1.2) },
    { type: 'result', rows: 3, bytes: 420, durationMs: 4, time: at(1.3) },
    { type: 'query', sql: 'DROP TABLE customers', decision: 'deny', rule: 'recommended/no-drop', kinds: ['drop'], tables: ['public.customers'], time: at(2) },
    { type: 'query', sql: 'UPDATE orders SET status = ? WHERE id = ?', decision: 'approve', rule: 'gate/updates', kinds: ['update'], tables: ['public.orders'], time: at(3) },
    { type: 'approval.requested', approvalId: 'K7QF2M', rule: 'gate/updates', time: at(3.1) },
    { type: 'approval.decided', approvalId: 'K7QF2M', state: 'approved', by: 'bob', time: at(20) },
    { type: 'result', rows: 1, bytes: 0, durationMs: 2, time: at(20.1) },
  ]);
  clock.ms = Date.parse(at(21));
  await store.endSession(pg.id, 'ok', { statements: 3, denied: 1, masked: 5, rows: 4, bytesIn: 300, bytesOut: 420 });

  const http = await store.createSession({ resource: 'crm-api', kind: 'http', identity: AGENT, clientAddr: '127.0.0.1:50002', startedAt: at(100) });
  await store.appendMany(http.id, [
    { type: 'http.request', method: 'GET', path: '/v1/customers?email=<EMAIL>', decision: 'allow', status: 200, time: at(101) },
    { type: 'http.request', method: 'DELETE', path: '/v1/customers/42', decision: 'deny', rule: 'api/no-delete', time: at(102) },
  ]);
  clock.ms = Date.parse(at(103));
  await store.endSession(http.id, 'ok', { statements: 2, denied: 1, masked: 0, rows: 0, bytesIn: 10, bytesOut: 20 });

  const ssh = await store.createSession({ resource: 'bastion', kind: 'ssh', identity: HUMAN, clientAddr: '127.0.0.1:50003', startedAt: at(200) });
  await store.appendMany(ssh.id, [
    { type: 'ssh.channel', channel: 'shell', decision: 'allow', time: at(200.5) },
    { type: 'terminal.output', t: 0.5, data: '$ ', time: at(200.5) },
    { type: 'terminal.output', t: 1.5, data: 'ls\r\n', stream: 'i', time: at(201.5) },
    { type: 'terminal.output', t: 1.75, data: 'customers.csv\r\n$ ', time: at(201.75) },
    { type: 'terminal.output', t: 9.75, data: 'exit\r\n', time: at(209.75) },
  ]);
  clock.ms = Date.parse(at(210));
  await store.endSession(ssh.id, 'ok', { statements: 1, denied: 0, masked: 0, rows: 0, bytesIn: 5, bytesOut: 30 });
  return { pg: pg.id, http: http.id, ssh: ssh.id };
}
