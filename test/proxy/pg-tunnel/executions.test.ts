/**
 * Every execution is an event, and the masked response is recorded: pgbench -M prepared and node-postgres named
 * statements leave one `execute` event per execution (rows in the target = events in the store), with their
 * parameters masked; results keep their first rows as the client saw them; COPY results are counted and kept.
 */
import { spawn } from 'node:child_process';
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

describe('the extended protocol upstream', () => {
  it("a Bind (and libpq's Describe) leaves with its Execute, after the execution is recorded: one write, one wake-up of the backend", async () => {
    // A relay between the tunnel and the server, in a process of its own (in this one it would read only after
    // the tunnel's turn, both writes at once), keeping each read of what the tunnel wrote.
    const relay = spawn(process.execPath, ['-e', RELAY, String(fx.pg.port)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    relay.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      const poll = setInterval(() => {
        const m = /^port (\d+)\n/.exec(out);
        if (m) {
          clearInterval(poll);
          resolve(Number(m[1]));
        }
      }, 10);
      relay.on('exit', () => reject(new Error('the relay exited')));
    });
    const chunks = async (): Promise<Buffer[]> => {
      const done = new Promise<void>((r) => relay.on('exit', () => r()));
      relay.stdin!.end();
      await done;
      return (JSON.parse(out.slice(out.indexOf('\n') + 1)) as string[]).map((b) => Buffer.from(b, 'base64'));
    };
    const relayed = await fx.tunnel({ port });
    try {
      const c = await pgClient(relayed.url);
      for (let i = 0; i < 20; i++) await c.query({ name: 'one', text: 'SELECT $1::int AS n', values: [i] });
      await c.end();
      await relayed.close();
      // The messages after the start-up packet, each with the read it began in.
      const reads = await chunks();
      const all = Buffer.concat(reads);
      const chunkOf: number[] = [];
      reads.forEach((ch, i) => {
        for (let k = 0; k < ch.length; k++) chunkOf.push(i);
      });
      const messages: { type: string; chunk: number }[] = [];
      for (let at = all.readInt32BE(0); at < all.length; at += 1 + all.readInt32BE(at + 1)) messages.push({ type: String.fromCharCode(all[at]!), chunk: chunkOf[at]! });
      const binds = messages.flatMap((m, i) => (m.type === 'B' ? [i] : []));
      expect(binds).toHaveLength(20);
      for (const i of binds) {
        const execute = messages.findIndex((m, j) => j > i && m.type === 'E');
        expect(execute).toBeGreaterThan(i);
        // everything from the Bind to its Execute went out in one write
        expect(new Set(messages.slice(i, execute + 1).map((m) => m.chunk)).size).toBe(1);
      }
    } finally {
      await relayed.close();
      relay.kill();
    }
  });
});

/** A TCP relay to 127.0.0.1:argv[1]; prints its port, and when stdin ends, every read from its client (base64, JSON). */
const RELAY = `
const net = require('node:net');
const reads = [];
const server = net.createServer((from) => {
  from.setNoDelay(true);
  const to = net.connect(Number(process.argv[1]), '127.0.0.1');
  to.setNoDelay(true);
  from.on('data', (d) => { reads.push(d.toString('base64')); to.write(d); });
  to.on('data', (d) => from.write(d));
  const end = () => { from.destroy(); to.destroy(); };
  from.on('close', end); to.on('close', end); from.on('error', end); to.on('error', end);
});
server.listen(0, '127.0.0.1', () => process.stdout.write('port ' + server.address().port + '\\n'));
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.stdout.write(JSON.stringify(reads), () => process.exit(0)));
`;

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
