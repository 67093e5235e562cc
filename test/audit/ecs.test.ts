/**
 * `audit export --format ecs` and `audit tail --format ecs`: Elastic Common Schema documents, one per line,
 * with the fields a SIEM maps without a custom parser (`@timestamp`, `event.*`, `user.*`, `source.*`), for the
 * seeded PostgreSQL / HTTP / SSH sessions, and for a session recorded through a real PostgreSQL tunnel whose
 * statements carried secrets and personal data: none of those values reaches the export.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAuditTail } from '../../src/cli/commands/audit.js';
import { ECS_VERSION, sourceFields } from '../../src/audit/ecs.js';
import { openStore } from '../../src/store/index.js';
import type { SessionStore } from '../../src/store/types.js';
import { runCli, testEnv } from '../helpers/cli.js';
import { pgClient, queryError, startFixture, type Fixture, type TestTunnel } from '../proxy/pg-tunnel/fixture.js';
import { testContext } from './ctx.js';
import { AGENT, at, clock, seed, type Seeded } from './fixture.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed JSON documents, asserted field by field
type Doc = Record<string, any>;

const ECS_EVENT_CATEGORIES = new Set(['api', 'authentication', 'configuration', 'database', 'driver', 'email', 'file', 'host', 'iam', 'intrusion_detection', 'library', 'malware', 'network', 'package', 'process', 'registry', 'session', 'threat', 'vulnerability', 'web']);
const ECS_EVENT_TYPES = new Set(['access', 'admin', 'allowed', 'change', 'connection', 'creation', 'deletion', 'denied', 'end', 'error', 'group', 'indicator', 'info', 'installation', 'protocol', 'start', 'user']);
const ECS_OUTCOMES = new Set(['success', 'failure', 'unknown']);

/** What every document must have for a SIEM's ECS mapping. */
function expectEcsShape(d: Doc): void {
  expect(Date.parse(d['@timestamp'])).not.toBeNaN();
  expect(d['@timestamp']).toMatch(/Z$/);
  expect(d.ecs).toEqual({ version: ECS_VERSION });
  expect(typeof d.message).toBe('string');
  expect(d.event).toMatchObject({ kind: 'event', module: 'dlpctl', dataset: 'dlpctl.audit' });
  expect(d.event.id).toMatch(/^[^:]+:\d+$/);
  expect(d.event.hash).toMatch(/^[0-9a-f]{64}$/);
  for (const c of d.event.category) expect(ECS_EVENT_CATEGORIES.has(c), `event.category ${c}`).toBe(true);
  for (const t of d.event.type) expect(ECS_EVENT_TYPES.has(t), `event.type ${t}`).toBe(true);
  expect(ECS_OUTCOMES.has(d.event.outcome), `event.outcome ${d.event.outcome}`).toBe(true);
  expect(typeof d.user.id).toBe('string');
  expect(Array.isArray(d.user.roles)).toBe(true);
  expect(d.source).toMatchObject({ ip: '127.0.0.1', port: expect.any(Number) });
  expect(d.service.target).toMatchObject({ name: expect.any(String), type: expect.stringMatching(/^(postgres|http|ssh)$/) });
}

const lines = (text: string): Doc[] => text.trim().split('\n').map((l) => JSON.parse(l) as Doc);

describe('ECS export of the seeded sessions', () => {
  let dir: string;
  let url: string;
  let store: SessionStore;
  let ids: Seeded;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-ecs-'));
    url = `sqlite:${path.join(dir, 'audit.db')}`;
    clock.ms = Date.parse(at(0));
    store = await openStore(url, { now: clock.now, sqliteSynchronous: 'normal' });
    ids = await seed(store);
  });
  afterAll(async () => {
    await store?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('one ECS document per event, terminal frames left out; decisions, rules, users and sources mapped', async () => {
    const r = await runCli(['audit', 'export', '--format', 'ecs', '--store', url], { env: testEnv(dir) });
    expect(r.code, r.stderr).toBe(0);
    const docs = lines(r.stdout);
    expect(docs).toHaveLength(21 - 4); // 21 stored events, 4 terminal.output frames
    for (const d of docs) expectEcsShape(d);
    expect(docs.some((d) => d.event.action === 'terminal.output')).toBe(false);

    const pgDocs = docs.filter((d) => d.dlpctl.session_id === ids.pg);
    const start = pgDocs[0]!;
    expect(start.event).toMatchObject({ action: 'session.start', category: ['session'], type: ['start'], outcome: 'success', reason: 'weekly report', sequence: 1 });
    expect(start.user).toEqual({ id: AGENT.subject, name: AGENT.email, email: AGENT.email, domain: AGENT.issuer, roles: AGENT.groups });
    expect(start.source).toEqual({ address: '127.0.0.1', ip: '127.0.0.1', port: 50001 });
    expect(start.dlpctl.identity).toEqual({ kind: 'machine', verified: true });

    const drop = pgDocs.find((d) => d.dlpctl.statement === 'DROP TABLE customers')!;
    expect(drop.event).toMatchObject({ action: 'query', category: ['database'], type: ['denied'], outcome: 'failure' });
    expect(drop.rule).toEqual({ name: 'recommended/no-drop', ruleset: 'recommended' });
    expect(drop.dlpctl).toMatchObject({ decision: 'deny', statement_kinds: ['drop'], tables: ['public.customers'] });
    const read = pgDocs.find((d) => d.dlpctl.statement?.startsWith('SELECT email'))!;
    expect(read.event).toMatchObject({ type: ['allowed', 'access'], outcome: 'success' });
    expect(pgDocs.find((d) => d.event.action === 'mask.summary')!.dlpctl.masked).toEqual({ email: 3, phone: 2 });
    expect(pgDocs.find((d) => d.event.action === 'approval.decided')!.event).toMatchObject({ category: ['iam'], type: ['allowed'], outcome: 'success' });
    expect(pgDocs.find((d) => d.event.action === 'result')!.event.duration).toBe(4_000_000);
    const end = pgDocs.at(-1)!;
    expect(end.event).toMatchObject({ action: 'session.end', type: ['end'], outcome: 'success', duration: 21_000_000_000 });

    const httpDocs = docs.filter((d) => d.dlpctl.session_id === ids.http);
    const get = httpDocs.find((d) => d.http?.request.method === 'GET')!;
    expect(get.url).toEqual({ path: '/v1/customers', query: 'email=<EMAIL>' });
    expect(get.http.response.status_code).toBe(200);
    expect(get.event.category).toEqual(['web']);
    const del = httpDocs.find((d) => d.http?.request.method === 'DELETE')!;
    expect(del.event.outcome).toBe('failure');

    const sshDocs = docs.filter((d) => d.dlpctl.session_id === ids.ssh);
    expect(sshDocs.map((d) => d.event.action)).toEqual(['session.start', 'ssh.channel', 'session.end']);
    expect(sshDocs[0]!.user).toMatchObject({ id: 'alice', name: 'alice', roles: [] });
    expect(sshDocs[0]!.dlpctl.identity.verified).toBe(false);
  });

  it('tail --format ecs prints what another connection appends, as ECS', async () => {
    const ac = new AbortController();
    const { ctx, out } = testContext({ store: url, signal: ac.signal });
    let ready!: () => void;
    const isReady = new Promise<void>((r) => (ready = r));
    const running = runAuditTail(ctx, { format: 'ecs', interval: '20', now: () => new Date(Date.parse(at(300))), onReady: () => ready() });
    await isReady;
    const writer = await openStore(url, { sqliteSynchronous: 'normal' });
    const s = await writer.createSession({ resource: 'shop-db', kind: 'postgres', identity: AGENT, clientAddr: '[::1]:6000', startedAt: at(301) });
    await writer.append(s.id, { type: 'query', sql: 'SELECT 1', decision: 'allow', kinds: ['select'], tables: [], time: at(302) });
    for (let i = 0; i < 750 && !out().includes('SELECT 1'); i++) await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    await running;
    await writer.close();
    const docs = lines(out());
    expect(docs.map((d) => d.event.action)).toEqual(['session.start', 'query']);
    expect(docs[1]!.source).toEqual({ address: '::1', ip: '::1', port: 6000 });
    expect(docs[1]!['@timestamp']).toBe(at(302));
  });

  it('an unknown format is a usage error', async () => {
    const r = await runCli(['audit', 'export', '--format', 'ocsf', '--store', url], { env: testEnv(dir) });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('expected jsonl, ecs or asciicast');
  });

  it('source addresses: IPv4, IPv6, and anything else as address only', () => {
    expect(sourceFields('10.1.2.3:443')).toEqual({ address: '10.1.2.3', ip: '10.1.2.3', port: 443 });
    expect(sourceFields('[fe80::1]:22')).toEqual({ address: 'fe80::1', ip: 'fe80::1', port: 22 });
    expect(sourceFields('unix-socket')).toEqual({ address: 'unix-socket' });
    expect(sourceFields('')).toBeUndefined();
  });
});

describe('ECS export of a session recorded through a real PostgreSQL tunnel', () => {
  let fx: Fixture;
  let t: TestTunnel;
  beforeAll(async () => {
    fx = await startFixture();
    t = await fx.tunnel({
      use: ['recommended', 'pii'],
      policies: `  pii:
    - name: ssn-column
      action: mask
      columns: [public.customers.ssn]
    - name: contact
      action: mask
      entities: [email, phone]`,
    });
  });
  afterAll(async () => fx?.stop());

  it('has the required fields and no secret, literal or masked value', async () => {
    const direct = await pgClient(fx.dbUrl);
    const rows = (await direct.query<{ ssn: string; email: string; phone: string }>('select ssn, email, phone from customers order by id limit 5')).rows;
    await direct.end();
    const c = await pgClient(t.url);
    await c.query(`select id from customers where ssn = '536-22-1234' or email = 'leak.me@example.com'`);
    await c.query(`select id from payments where card_number = '4111111111111111'`);
    await c.query('select id, ssn, email, phone from customers order by id limit 5');
    await queryError(c, 'drop table orders');
    await c.end();
    const sessionId = t.events.flatMap((e) => (e.type === 'session_start' ? [e.sessionId] : [])).at(-1)!;
    for (let i = 0; i < 200 && !(await fx.store.getSession(sessionId))?.endedAt; i++) await new Promise((r) => setTimeout(r, 50));

    const r = await runCli(['audit', 'export', '--format', 'ecs', '--session', sessionId, '--store', fx.storeUrl], { env: testEnv(fx.dir) });
    expect(r.code, r.stderr).toBe(0);
    const docs = lines(r.stdout);
    for (const d of docs) expectEcsShape(d);
    expect(docs[0]!.event.action).toBe('session.start');
    expect(docs.at(-1)!.event.action).toBe('session.end');
    const queries = docs.filter((d) => d.event.action === 'query');
    expect(queries).toHaveLength(4);
    expect(queries.at(-1)!.event).toMatchObject({ type: ['denied'], outcome: 'failure' });
    expect(queries.at(-1)!.rule.ruleset).toBe('recommended');
    expect(docs.some((d) => d.event.action === 'mask.summary' && d.dlpctl.masked)).toBe(true);

    const secrets = ['536-22-1234', 'leak.me@example.com', '4111111111111111', t.secret, new URL(fx.dbUrl).password, ...rows.flatMap((row) => [row.ssn, row.email, row.phone])];
    for (const s of secrets) {
      expect(s.length).toBeGreaterThan(5);
      expect(r.stdout, 'a secret or masked value in the ECS export').not.toContain(s);
    }
    // The masked statement text is there, so the test would see a value if one leaked through it.
    expect(queries[0]!.dlpctl.statement).toMatch(/^select id from customers where ssn = '.+' or email = '.+'$/);
  });
});
