/**
 * `dlpctl demo`: a real PostgreSQL (embedded) seeded with a fake shop, and a tunnel in front of it with a
 * sample policy — masking, a denied DROP, a row limit — recorded in a throwaway store. Without --script it
 * prints how to connect and runs until Ctrl-C; with --script it runs a short session that shows masked
 * rows, a denial, the limit and the audit trail, then exits.
 */
import os from 'node:os';
import path from 'node:path';
import { DlpctlError, ExitCode } from '../../errors.js';
import type { CommandContext } from '../context.js';
import { renderTable } from '../io.js';
import type { Io } from '../io.js';

const DEMO_POLICY = (target: string) => `
version: 1
resources:
  shop:
    kind: postgres
    target: ${target}
    password: \${env:DLPCTL_DEMO_PASSWORD}
    tls: { mode: disable }
    policies: [recommended, demo]
policies:
  demo:
    - name: hide-ssn
      action: mask
      columns: [public.customers.ssn]
      with: redact
    - name: cards-last-four
      action: mask
      columns: [public.payments.card_number]
      with: partial
    - name: small-results
      action: limit
      maxRows: 25
`;

export async function runDemo(ctx: CommandContext, opts: { script?: boolean; port?: string }): Promise<number> {
  const { io } = ctx;
  const port = opts.port === undefined ? undefined : Number(opts.port);
  if (port !== undefined && (!/^\d+$/.test(opts.port!) || port > 65535)) throw new DlpctlError('USAGE', `--port: "${opts.port}" is not a port number`);
  /** Every step checks: a signal during start-up or the script ends the demo (the finally removes its files). */
  const interrupted = () => {
    if (ctx.signal.aborted) throw ctx.signal.reason instanceof DlpctlError ? ctx.signal.reason : new DlpctlError('INTERNAL', 'interrupted');
  };
  const c = io.errColor;
  const progress = (text: string) => io.err(c.dim(`… ${text}`));
  const [{ startDemoPostgres }, { demoSeedSql }, config, policy, store, engineMod, tunnelMod, upstream, local] = await Promise.all([
    import('../../demo/postgres.js'),
    import('../../demo/seed.js'),
    import('../../config/index.js'),
    import('../../policy/index.js'),
    import('../../store/index.js'),
    import('../../proxy/postgres/engine.js'),
    import('../../proxy/tunnel.js'),
    import('../../proxy/postgres/upstream.js'),
    import('../../identity/local.js'),
  ]);
  progress('starting an embedded PostgreSQL');
  let server: Awaited<ReturnType<typeof startDemoPostgres>>;
  try {
    server = await startDemoPostgres();
  } catch (err) {
    interrupted(); // a Ctrl-C in a terminal also reaches initdb: report the interrupt, not its failure
    throw err;
  }
  const cleanup: (() => Promise<void>)[] = [() => server.stop()];
  try {
    interrupted();
    const pg = (await import('pg')).default;
    const direct = new pg.Client({ host: server.host, port: server.port, user: server.user, password: server.password, database: server.database });
    await direct.connect();
    await direct.query(demoSeedSql(50));
    await direct.end();
    progress('seeded customers, payments and orders (fake names, emails, phones, SSNs and card numbers)');

    const target = `postgres://${server.user}@${server.host}:${server.port}/${server.database}`;
    const cfg = config.parseConfig(DEMO_POLICY(target), '<demo>');
    const resource = cfg.resources.shop;
    if (!resource || resource.kind !== 'postgres') throw new DlpctlError('INTERNAL', 'demo configuration is broken');
    await policy.initSqlParser();
    const storeUrl = `sqlite:${path.join(server.dir, 'store.db')}`;
    const st = await store.openStore(storeUrl, { threads: 'tunnel' });
    cleanup.unshift(() => st.close());
    const identity = local.localIdentity(ctx.env);
    const engine = new engineMod.PostgresEngine({
      resource,
      target: { ...upstream.parseTargetUrl(target), password: server.password, tls: { mode: 'disable' } },
      policies: policy.resolvePolicies(resource.policies, cfg.policies),
      store: st,
      identity,
      reason: 'dlpctl demo',
    });
    const tunnel = new tunnelMod.Tunnel({ resource: 'shop', kind: 'postgres', clientTls: false, engine, ...(port !== undefined ? { port } : {}) });
    interrupted();
    await tunnel.open();
    cleanup.unshift(async () => {
      await tunnel.close();
      await engine.close();
    });
    io.err(`${c.green('✓')} tunnel "shop" → the demo database, with policies recommended + demo (masking, no DROP, at most 25 rows)`);

    if (!opts.script) {
      io.out(tunnel.url);
      io.err(`\ntry:  psql '${tunnel.url}'\n      select * from customers limit 5;   drop table orders;   select * from orders;`);
      io.err(c.dim(`audit store: ${storeUrl} (removed on exit) · Ctrl-C stops the demo`));
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) return resolve();
        ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      return ExitCode.ok;
    }

    const client = new pg.Client({ connectionString: tunnel.url });
    await client.connect();
    const show = async (title: string, sql: string) => {
      interrupted();
      io.out(`\n${io.color.bold(title)}\n${io.color.cyan(`> ${sql}`)}`);
      try {
        const r = await client.query<Record<string, unknown>>(sql);
        const cols = r.fields.map((f) => f.name);
        io.out(renderTable(io, cols, r.rows.map((row) => cols.map((k) => (row[k] === null ? 'NULL' : String(row[k]))))));
      } catch (err) {
        const e = err as { code?: string; message?: string };
        io.out(`${io.color.red(`ERROR ${e.code ?? ''}`)} ${e.message ?? String(err)}`);
      }
    };
    await show('1. Customers: the SSN column is masked by rule demo/hide-ssn; emails and phones by the detectors', 'SELECT id, name, email, phone, ssn FROM customers ORDER BY id LIMIT 5');
    await show('2. Payments: card numbers keep their last four digits (demo/cards-last-four)', 'SELECT customer_id, card_number, amount_cents FROM payments ORDER BY id LIMIT 3');
    await show('3. A DROP is denied by the built-in recommended policy; the session goes on', 'DROP TABLE customers');
    await show('4. More than 25 rows: the limit ends the result with SQLSTATE 54000', 'SELECT * FROM orders');
    await show('5. Free text is scanned too', "SELECT note FROM orders WHERE note LIKE 'call%' ORDER BY id LIMIT 2");
    await client.end();
    await new Promise((r) => setTimeout(r, 100));
    await printAudit(io, st);
    return ExitCode.ok;
  } finally {
    for (const f of cleanup) await f().catch(() => {});
  }
}

async function printAudit(io: Io, st: import('../../store/types.js').SessionStore): Promise<void> {
  const hits = await st.search({ resource: 'shop', limit: 1 });
  const session = hits[0]?.session;
  if (!session) return;
  const events = await st.listEvents(session.id);
  io.out(`\n${io.color.bold(`6. The audit trail of session ${session.id}`)} (${session.identity.subject}, ${session.identity.verified ? 'verified' : 'unverified'}, reason "${session.reason ?? ''}")`);
  const rows = events.map((e) => {
    let what = '';
    if (e.type === 'query') what = `${e.decision}${e.rule ? ` [${e.rule}]` : ''}  ${e.sql}`;
    else if (e.type === 'result') what = `${e.rows} rows, ${e.bytes} bytes`;
    else if (e.type === 'mask.summary') what = Object.entries(e.entities).map(([k, v]) => `${k}×${v}`).join(' ');
    else if (e.type === 'error') what = `${e.code ?? ''} ${e.message}`;
    else if (e.type === 'session.start') what = `from ${e.clientAddr}`;
    else if (e.type === 'session.end') what = `${e.outcome}`;
    return [String(e.seq), e.type, what.length > 100 ? `${what.slice(0, 97)}...` : what, e.hash.slice(0, 12)];
  });
  io.out(renderTable(io, ['seq', 'event', 'what', 'hash'], rows));
  const v = await st.verify(session.id);
  io.out(`\nhash chain: ${v.ok ? io.color.green(`intact (${v.eventsChecked} events)`) : io.color.red(`broken at event ${v.firstBad?.seq}`)}`);
  io.out(io.color.dim(`(the demo database and store live in ${os.tmpdir()} and are removed now)`));
}
