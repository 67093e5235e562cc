/**
 * Every execution is an event, and the masked response is recorded: pgbench -M prepared and node-postgres named
 * statements leave one `execute` event per execution (rows in the target = events in the store), with their
 * parameters masked; results keep their first rows as the client saw them; COPY results are counted and kept.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { StoreEvent } from '../../../src/store/types.js';
import { runAuditShow } from '../../../src/cli/commands/audit.js';
import { testContext } from '../../audit/ctx.js';
import { pgClient, psql, run, startFixture, type Fixture, type TestTunnel } from './fixture.js';

let fx: Fixture;
let t: TestTunnel;
let direct: pg.Client;

const POLICIES = `  pii:
    - name: ssn-column
      action: mask
      columns: [public.customers.ssn]
      with: redact
    - name: values
      action: mask
      entities: [us_ssn, email]
      with: redact`;

beforeAll(async () => {
  fx = await startFixture();
  t = await fx.tunnel({ use: ['pii'], policies: POLICIES, resource: '    record: { rows: 3, bytes: 4KiB }' });
  direct = await pgClient(fx.dbUrl);
  await direct.query('CREATE TABLE log (id serial, v text)');
});
afterAll(async () => {
  await direct?.end();
  await fx?.stop();
});

async function eventsOf(sessionId: string): Promise<StoreEvent[]> {
  for (let i = 0; i < 100; i++) {
    const s = await fx.store.getSession(sessionId);
    if (s?.endedAt) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return fx.store.listEvents(sessionId);
}

function newSessions(before: Set<string>): string[] {
  return t.events.flatMap((e) => (e.type === 'session_start' && !before.has(e.sessionId) ? [e.sessionId] : []));
}

describe('executions', () => {
  it('node-postgres named statements: one execute event per execution, parameters masked, counted', async () => {
    const before = new Set(newSessions(new Set()));
    const c = await pgClient(t.url);
    for (let i = 0; i < 5; i++) await c.query({ name: 'ins', text: 'INSERT INTO log (v) VALUES ($1)', values: [`row ${i} 536-22-1234 ann${i}@example.com`] });
    await c.end();
    const [id] = newSessions(before);
    const events = await eventsOf(id!);
    const query = events.filter((e) => e.type === 'query');
    const executes = events.filter((e): e is Extract<StoreEvent, { type: 'execute' }> => e.type === 'execute');
    expect(query).toHaveLength(1); // the text once
    expect(executes).toHaveLength(5);
    const stmtId = (query[0] as Extract<StoreEvent, { type: 'query' }>).id;
    for (const e of executes) {
      expect(e.statement).toBe(stmtId);
      expect(e.params).toHaveLength(1);
      expect(e.params![0]).toMatch(/^row \d /);
    }
    const text = JSON.stringify(events);
    expect(text).not.toContain('536-22-1234');
    expect(text).not.toMatch(/ann\d@example\.com/);
    const session = (await fx.store.getSession(id!))!;
    expect(session.counters.statements).toBe(5);
  });

  it('pgbench -M prepared: rows inserted = execute events of the INSERT', async () => {
    const u = new URL(t.url);
    const env = { ...process.env, PGPASSWORD: decodeURIComponent(u.password), PGCONNECT_TIMEOUT: '10' };
    const base = ['-h', u.hostname, '-p', u.port, '-U', decodeURIComponent(u.username), fx.database];
    // initialise directly (fast), then run the workload through the tunnel
    const direct2 = await run('pgbench', ['-i', '-s', '1', '-q', '-h', fx.pg.host, '-p', String(fx.pg.port), '-U', fx.pg.user, fx.database], {
      env: { ...process.env, PGPASSWORD: fx.pg.password },
      timeoutMs: 120_000,
    });
    expect(direct2.code, direct2.stderr).toBe(0);
    const before = new Set(newSessions(new Set()));
    const r = await run('pgbench', ['-n', '-M', 'prepared', '-c', '2', '-t', '40', ...base], { env, timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const inserted = Number((await direct.query('SELECT count(*) AS n FROM pgbench_history')).rows[0].n);
    expect(inserted).toBe(80);
    let insertExecutions = 0;
    for (const id of newSessions(before)) {
      const events = await eventsOf(id);
      const inserts = new Set(events.flatMap((e) => (e.type === 'query' && /insert into pgbench_history/i.test(e.sql) ? [e.id] : [])));
      insertExecutions += events.filter((e) => e.type === 'execute' && inserts.has(e.statement)).length;
    }
    expect(insertExecutions).toBe(inserted);
  });
});

describe('the masked response', () => {
  it('keeps the first rows as the client saw them, within the record limits', async () => {
    const before = new Set(newSessions(new Set()));
    const c = await pgClient(t.url);
    const r = await c.query('SELECT id, name, ssn, email FROM customers ORDER BY id');
    await c.end();
    const [id] = newSessions(before);
    const events = await eventsOf(id!);
    const result = events.find((e): e is Extract<StoreEvent, { type: 'result' }> => e.type === 'result')!;
    expect(result.rows).toBe(r.rows.length);
    expect(result.columns).toEqual(['id', 'name', 'ssn', 'email']);
    expect(result.sample).toHaveLength(3);
    expect(result.truncated).toBe(true);
    expect(result.sample![0]![1]).toBe(r.rows[0].name);
    expect(result.sample![0]![2]).toBe('[REDACTED:ssn]');
    expect(result.sample![0]![3]).toMatch(/REDACTED/);
    const shown = testContext({ store: fx.storeUrl });
    expect(await runAuditShow(shown.ctx, { session: id! })).toBe(0);
    expect(shown.out()).toContain('id | name | ssn | email');
    expect(shown.out()).toContain(`1 | ${r.rows[0].name} | [REDACTED:ssn] |`);
    expect(shown.out()).toMatch(/more rows not recorded/);
    const raw = (await direct.query('SELECT ssn, email FROM customers')).rows as { ssn: string; email: string }[];
    const text = JSON.stringify(events) + shown.out();
    for (const row of raw) {
      expect(text).not.toContain(row.ssn);
      expect(text).not.toContain(row.email);
    }
  });

  it('a COPY result is counted and its rows kept, masked', async () => {
    const before = new Set(newSessions(new Set()));
    const out = await psql(t.url, ['-c', 'COPY (SELECT id, ssn FROM customers ORDER BY id LIMIT 4) TO STDOUT']);
    expect(out.code, out.stderr).toBe(0);
    const [id] = newSessions(before);
    const events = await eventsOf(id!);
    const result = events.find((e): e is Extract<StoreEvent, { type: 'result' }> => e.type === 'result')!;
    expect(result.rows).toBe(4);
    expect(result.bytes).toBeGreaterThan(0);
    expect(result.sample).toHaveLength(3);
    expect(result.sample![0]![0]).toMatch(/^1\t\[REDACTED:ssn\]$/);
  });

  it('`record: { parameters: false }` keeps no parameters', async () => {
    const t2 = await fx.tunnel({ use: ['pii'], policies: POLICIES, resource: '    record: { parameters: false, rows: 0 }' });
    const before = new Set(t2.events.flatMap((e) => (e.type === 'session_start' ? [e.sessionId] : [])));
    const c = await pgClient(t2.url);
    await c.query('SELECT $1::text AS v', ['secret-ish value']);
    await c.end();
    const id = t2.events.flatMap((e) => (e.type === 'session_start' && !before.has(e.sessionId) ? [e.sessionId] : []))[0]!;
    const events = await eventsOf(id);
    const exec = events.find((e): e is Extract<StoreEvent, { type: 'execute' }> => e.type === 'execute')!;
    expect(exec.params).toBeUndefined();
    const result = events.find((e): e is Extract<StoreEvent, { type: 'result' }> => e.type === 'result')!;
    expect(result.sample).toBeUndefined();
    expect(JSON.stringify(events)).not.toContain('secret-ish value');
  });
});
