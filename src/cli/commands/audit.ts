/**
 * `dlpctl audit search | show | verify | export | tail | replay`: reading the shared session store. Text in
 * the store is masked when recorded; these commands print it as stored and never see original values.
 */
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { DlpctlError, ExitCode } from '../../errors.js';
import type { Decision, SessionKind, SessionStore, StoreEvent } from '../../store/types.js';
import type { CommandContext } from '../context.js';
import { printJson, renderTable } from '../io.js';
import { openCliStore } from './approvals.js';

const DECISIONS: readonly Decision[] = ['allow', 'deny', 'approve', 'observe'];
const KINDS: readonly SessionKind[] = ['postgres', 'http', 'ssh'];

async function withStore<T>(ctx: CommandContext, f: (store: SessionStore) => Promise<T>): Promise<T> {
  const store = await openCliStore(ctx);
  try {
    return await f(store);
  } finally {
    await store.close();
  }
}

function localTime(iso: string): string {
  // 2025-01-02 15:04:05 in UTC: stable across machines, sortable.
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function clip(s: string, n: number): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > n ? `${flat.slice(0, n - 1)}…` : flat;
}

// ── search ─────────────────────────────────────────────────────────────────

export interface AuditSearchCliOptions {
  text?: string;
  resource?: string;
  identity?: string;
  since?: string;
  until?: string;
  decision?: string;
  kind?: string;
  limit?: string;
  now?: () => Date;
}

export async function runAuditSearch(ctx: CommandContext, o: AuditSearchCliOptions): Promise<number> {
  const [{ auditSearch, hitJson }, { parseTimeArg }] = await Promise.all([import('../../audit/search.js'), import('../../audit/time.js')]);
  const now = (o.now ?? (() => new Date()))();
  if (o.decision !== undefined && !DECISIONS.includes(o.decision as Decision)) {
    throw new DlpctlError('USAGE', `--decision ${o.decision}: expected one of ${DECISIONS.join(', ')}`);
  }
  if (o.kind !== undefined && !KINDS.includes(o.kind as SessionKind)) {
    throw new DlpctlError('USAGE', `--kind ${o.kind}: expected one of ${KINDS.join(', ')}`);
  }
  let limit = 100;
  if (o.limit !== undefined) {
    limit = Number(o.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new DlpctlError('USAGE', `--limit ${o.limit}: expected a whole number from 1 to 100000`);
  }
  const hits = await withStore(ctx, (store) =>
    auditSearch(store, {
      ...(o.text !== undefined ? { text: o.text } : {}),
      ...(o.resource !== undefined ? { resource: o.resource } : {}),
      ...(o.identity !== undefined ? { identity: o.identity } : {}),
      ...(o.since !== undefined ? { since: parseTimeArg(o.since, now, '--since') } : {}),
      ...(o.until !== undefined ? { until: parseTimeArg(o.until, now, '--until') } : {}),
      ...(o.decision !== undefined ? { decision: o.decision as Decision } : {}),
      ...(o.kind !== undefined ? { kind: o.kind as SessionKind } : {}),
      limit,
    }),
  );
  const rows = hits.map(hitJson);
  if (ctx.globals.json) {
    printJson(ctx.io, rows);
    return ExitCode.ok;
  }
  if (rows.length === 0) {
    ctx.io.err('no matching statements, requests or commands');
    return ExitCode.ok;
  }
  const c = ctx.io.color;
  const paint = (d: string) => (d === 'deny' ? c.red(d) : d === 'approve' ? c.yellow(d) : d === 'observe' ? c.cyan(d) : d);
  ctx.io.out(
    renderTable(
      ctx.io,
      ['time', 'session', 'resource', 'identity', 'decision', 'rule', 'text'],
      rows.map((r) => [localTime(r.time), `${r.sessionId}:${r.seq}`, r.resource, r.identity, paint(r.decision), r.rule ?? '', ctx.io.isTTY ? clip(r.text, 80) : r.text.replace(/\s+/g, ' ')]),
    ),
  );
  return ExitCode.ok;
}

// ── show ───────────────────────────────────────────────────────────────────

export async function runAuditShow(ctx: CommandContext, o: { session: string }): Promise<number> {
  const [{ allSessionEvents }, { describeEvent, decisionOf, sampleLines }] = await Promise.all([import('../../audit/events.js'), import('../../audit/describe.js')]);
  return withStore(ctx, async (store) => {
    const session = await store.getSession(o.session);
    if (!session) throw new DlpctlError('STORE_NOT_FOUND', `no session ${o.session}; find one with dlpctl audit search`);
    const events = await allSessionEvents(store, session.id);
    const approvals = (await store.listApprovals()).filter((a) => a.sessionId === session.id);
    if (ctx.globals.json) {
      printJson(ctx.io, { session, events, approvals: approvals.map((a) => ({ id: a.id, state: a.state, rule: a.rule, text: a.maskedText, decisions: a.decisions })) });
      return ExitCode.ok;
    }
    const c = ctx.io.color;
    const id = session.identity;
    ctx.io.out(`${c.bold(`session ${session.id}`)}  ${session.resource} (${session.kind})`);
    ctx.io.out(`identity  ${id.subject}${id.email ? ` <${id.email}>` : ''} ${id.verified ? c.green('verified') : c.yellow('unverified')}${id.groups.length ? ` groups ${id.groups.join(',')}` : ''} (${id.issuer})`);
    ctx.io.out(`client    ${session.clientAddr || '-'}${session.reason ? `   reason "${session.reason}"` : ''}`);
    ctx.io.out(`time      ${localTime(session.startedAt)} → ${session.endedAt ? localTime(session.endedAt) : c.cyan('open')}${session.outcome ? `   outcome ${session.outcome}` : ''}`);
    const k = session.counters;
    ctx.io.out(`counters  ${k.statements} statements, ${k.denied} denied, ${k.masked} masked, ${k.rows} rows, ${k.bytesIn} bytes in, ${k.bytesOut} bytes out\n`);
    const start = Date.parse(session.startedAt);
    const terminal = events.filter((e) => e.type === 'terminal.output');
    const shown = events.filter((e) => e.type !== 'terminal.output');
    ctx.io.out(
      renderTable(
        ctx.io,
        ['seq', 'at', 'event', 'decision', 'rule', 'detail'],
        shown.map((e) => {
          const { decision, rule } = decisionOf(e);
          const paint = decision === 'deny' ? c.red : decision === 'approve' ? c.yellow : (s: string) => s;
          return [String(e.seq), `+${((Date.parse(e.time) - start) / 1000).toFixed(3)}s`, e.type, paint(decision ?? ''), rule ?? '', ctx.io.isTTY ? clip(describeEvent(e), 100) : describeEvent(e).replace(/\s+/g, ' ')];
        }),
      ),
    );
    for (const e of shown) {
      const lines = sampleLines(e);
      if (lines.length === 0) continue;
      ctx.io.out(`\n${c.bold(`result rows (event ${e.seq}), as the client saw them`)}`);
      for (const l of lines) ctx.io.out(`  ${ctx.io.isTTY ? clip(l, 120) : l}`);
    }
    if (terminal.length) ctx.io.out(c.dim(`\n${terminal.length} terminal output frames: dlpctl audit replay ${session.id}`));
    for (const a of approvals) {
      ctx.io.out(`\napproval ${a.id}: ${a.state} [${a.rule}] ${clip(a.maskedText, 80)}`);
      for (const d of a.decisions) ctx.io.out(`  ${d.decision} by ${d.by} at ${localTime(d.at)}${d.comment ? `: ${d.comment}` : ''}`);
    }
    return ExitCode.ok;
  });
}

// ── verify ─────────────────────────────────────────────────────────────────

export interface AuditVerifyOptions {
  session?: string;
  /** PEM file of the Ed25519 public key the checkpoints are signed with. */
  publicKey?: string;
  /** A copy of the checkpoints kept outside the store (the JSON lines audit.checkpointFile receives). */
  checkpoints?: string;
}

function readArgFile(ctx: CommandContext, file: string, flag: string): string {
  try {
    return fs.readFileSync(path.resolve(ctx.cwd, file), 'utf8');
  } catch (err) {
    throw new DlpctlError('USAGE', `${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
}

export async function runAuditVerify(ctx: CommandContext, o: AuditVerifyOptions): Promise<number> {
  const { parseCheckpointLines } = await import('../../store/checkpoint.js');
  const publicKey = o.publicKey === undefined ? undefined : readArgFile(ctx, o.publicKey, '--public-key');
  const external = o.checkpoints === undefined ? undefined : parseCheckpointLines(readArgFile(ctx, o.checkpoints, '--checkpoints'), `--checkpoints ${o.checkpoints}`);
  const result = await withStore(ctx, (store) =>
    store.verify({
      ...(o.session !== undefined ? { sessionId: o.session } : {}),
      ...(publicKey !== undefined ? { publicKey } : {}),
      ...(external !== undefined ? { externalCheckpoints: external } : {}),
    }),
  );
  if (ctx.globals.json) printJson(ctx.io, result);
  const cp = result.checkpoints;
  if (!result.ok) {
    const bad = result.firstBad!;
    if (!ctx.globals.json) {
      const where =
        bad.sessionId === '(checkpoints)'
          ? bad.seq > 0
            ? `checkpoint ${bad.seq}`
            : 'checkpoints'
          : `session ${bad.sessionId}${bad.seq > 0 ? ` event ${bad.seq}` : ''}`;
      ctx.io.out(`${ctx.io.color.red('✗')} tampering or loss: ${where}: ${bad.reason}`);
      const next = bad.sessionId === '(checkpoints)' ? 'compare with the copies of the checkpoints kept outside the store' : `inspect it with dlpctl audit show ${bad.sessionId}`;
      ctx.io.err(`checked ${result.eventsChecked} events in ${result.sessionsChecked} sessions up to the first problem; ${next}`);
    }
    return ExitCode.error;
  }
  if (!ctx.globals.json) {
    ctx.io.out(
      `${ctx.io.color.green('✓')} verified ${result.eventsChecked} events in ${result.sessionsChecked} session${result.sessionsChecked === 1 ? '' : 's'}: every hash chain is intact, and every displayed column and session row matches it`,
    );
    if (cp) {
      if (cp.vouchedUntil !== undefined) {
        ctx.io.out(
          `  signed by key ${cp.keyId}: history up to checkpoint ${cp.vouchedCheckpoint} (${localTime(cp.vouchedUntil)}) cannot have been rewritten or cut${cp.external > 0 ? `; ${cp.external} checkpoint${cp.external === 1 ? '' : 's'} of the external copy found in the store` : ''}`,
        );
      } else if (cp.count > 0) {
        ctx.io.out(`  ${cp.count} checkpoint${cp.count === 1 ? '' : 's'} hold every session's head (unsigned check: add --public-key to rule out a consistent rewrite)`);
      } else {
        ctx.io.out('  no checkpoints yet: a deleted session or a consistent rewrite would not show (configure audit.signingKey)');
      }
      if (cp.eventsAfter > 0) ctx.io.out(`  ${cp.eventsAfter} event${cp.eventsAfter === 1 ? '' : 's'} after the newest checkpoint: covered by the hash chains only`);
    }
  }
  return ExitCode.ok;
}

// ── keygen ─────────────────────────────────────────────────────────────────

/** `dlpctl audit keygen --out FILE`: an Ed25519 key pair for signing checkpoints (FILE, 0600) and FILE.pub. */
export async function runAuditKeygen(ctx: CommandContext, o: { out: string; force?: boolean }): Promise<number> {
  const { generateSigningKeyPair } = await import('../../store/checkpoint.js');
  const file = path.resolve(ctx.cwd, o.out);
  const pub = `${file}.pub`;
  for (const f of [file, pub]) {
    if (!o.force && fs.existsSync(f)) throw new DlpctlError('USAGE', `${f} already exists; choose another --out or add --force to replace it`);
  }
  const k = generateSigningKeyPair();
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, k.privateKey, { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    fs.writeFileSync(pub, k.publicKey, { mode: 0o644 });
  } catch (err) {
    throw new DlpctlError('USAGE', `cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  if (ctx.globals.json) printJson(ctx.io, { privateKey: file, publicKey: pub, keyId: k.keyId });
  else {
    ctx.io.out(`private key ${file} (mode 0600), public key ${pub}, key id ${k.keyId}`);
    ctx.io.err(`set audit.signingKey: "\${file:${file}}" in the tunnels' dlpctl.yaml; keep ${path.basename(pub)} with the auditors: dlpctl audit verify --public-key ${pub}`);
  }
  return ExitCode.ok;
}

// ── export ─────────────────────────────────────────────────────────────────

export interface AuditExportOptions {
  format?: string;
  session?: string;
  output?: string;
  resource?: string;
  since?: string;
  until?: string;
  now?: () => Date;
}

export async function runAuditExport(ctx: CommandContext, o: AuditExportOptions): Promise<number> {
  const format = o.format ?? 'jsonl';
  if (format !== 'jsonl' && format !== 'ecs' && format !== 'asciicast') throw new DlpctlError('USAGE', `--format ${format}: expected jsonl, ecs or asciicast`);
  if (format === 'asciicast' && !o.session) throw new DlpctlError('USAGE', 'asciicast export is per SSH session: add --session ID');
  const [{ exportJsonl, exportEcs, exportAsciicast }, { findSessions, sessionEvents }, { parseTimeArg }] = await Promise.all([
    import('../../audit/export.js'),
    import('../../audit/events.js'),
    import('../../audit/time.js'),
  ]);
  const now = (o.now ?? (() => new Date()))();
  return withStore(ctx, async (store) => {
    let sessionIds: string[];
    if (o.session) {
      const s = await store.getSession(o.session);
      if (!s) throw new DlpctlError('STORE_NOT_FOUND', `no session ${o.session}; find one with dlpctl audit search`);
      sessionIds = [s.id];
    } else {
      const found = await findSessions(store, {
        ...(o.resource !== undefined ? { resource: o.resource } : {}),
        ...(o.since !== undefined ? { since: parseTimeArg(o.since, now, '--since') } : {}),
        ...(o.until !== undefined ? { until: parseTimeArg(o.until, now, '--until') } : {}),
      });
      sessionIds = found.map((s) => s.id);
    }
    const file = o.output ? fs.createWriteStream(o.output, { mode: 0o600 }) : undefined;
    const sink = (file ?? ctx.io.stdout) as NodeJS.WritableStream;
    const write = async (chunk: string) => {
      if (!sink.write(chunk)) await once(sink, 'drain');
    };
    let count: number;
    let what: string;
    try {
      if (format === 'jsonl' || format === 'ecs') {
        count = await (format === 'ecs' ? exportEcs : exportJsonl)(store, sessionIds, write);
        what = `${count} events from ${sessionIds.length} session${sessionIds.length === 1 ? '' : 's'}`;
      } else {
        const session = (await store.getSession(sessionIds[0]!))!;
        count = await exportAsciicast(session, sessionEvents(store, session.id), write);
        if (count === 0) ctx.io.err(`dlpctl: warning: session ${session.id} (${session.kind}) has no terminal output frames`);
        what = `${count} terminal frames`;
      }
    } finally {
      if (file) {
        file.end();
        await once(file, 'close');
      }
    }
    if (o.output) ctx.io.err(`wrote ${what} to ${o.output}`);
    return ExitCode.ok;
  });
}

// ── tail ───────────────────────────────────────────────────────────────────

export async function runAuditTail(
  ctx: CommandContext,
  o: { resource?: string; identity?: string; since?: string; interval?: string; format?: string; now?: () => Date; onReady?: () => void },
): Promise<number> {
  if (o.format !== undefined && o.format !== 'ecs') throw new DlpctlError('USAGE', `--format ${o.format}: expected ecs (or --json for stored events)`);
  const [{ tailEvents }, { describeEvent, decisionOf }, { parseTimeArg }, { toEcs }] = await Promise.all([
    import('../../audit/tail.js'),
    import('../../audit/describe.js'),
    import('../../audit/time.js'),
    import('../../audit/ecs.js'),
  ]);
  const now = o.now ?? (() => new Date());
  const intervalMs = o.interval === undefined ? 500 : Number(o.interval);
  if (!Number.isFinite(intervalMs) || intervalMs < 10) throw new DlpctlError('USAGE', `--interval ${o.interval}: milliseconds, at least 10`);
  const c = ctx.io.color;
  await withStore(ctx, (store) =>
    tailEvents(store, {
      filter: { ...(o.resource !== undefined ? { resource: o.resource } : {}), ...(o.identity !== undefined ? { identity: o.identity } : {}) },
      ...(o.since !== undefined ? { since: parseTimeArg(o.since, now(), '--since') } : {}),
      intervalMs,
      signal: ctx.signal,
      ...(o.onReady ? { onReady: o.onReady } : {}),
      now,
      onHit: (h) => {
        if (o.format === 'ecs') {
          const doc = toEcs(h.event, h.session);
          if (doc) ctx.io.out(JSON.stringify(doc));
          return;
        }
        if (ctx.globals.json) {
          ctx.io.out(JSON.stringify({ id: `${h.event.sessionId}:${h.event.seq}`, resource: h.session.resource, ...h.event }));
          return;
        }
        const { decision, rule } = decisionOf(h.event);
        const paint = decision === 'deny' ? c.red : decision === 'approve' ? c.yellow : (s: string) => s;
        ctx.io.out(
          `${c.dim(localTime(h.event.time))} ${h.session.resource} ${h.session.identity.subject} ${c.dim(`${h.event.sessionId}:${h.event.seq}`)} ${h.event.type}${decision ? ` ${paint(decision)}` : ''}${rule ? c.dim(` [${rule}]`) : ''} ${describeEvent(h.event).replace(/\s+/g, ' ')}`,
        );
      },
    }),
  );
  return ExitCode.ok;
}

// ── replay ─────────────────────────────────────────────────────────────────

export async function runAuditReplay(
  ctx: CommandContext,
  o: { session: string; speed?: string; maxIdle?: string; sleep?: (ms: number) => Promise<void> },
): Promise<number> {
  const speed = o.speed === undefined ? 1 : o.speed === 'max' ? Infinity : Number(o.speed);
  if (!(speed > 0)) throw new DlpctlError('USAGE', `--speed ${o.speed}: a positive number (2 = twice as fast) or max`);
  const [{ allSessionEvents }, { replaySession }, { tryParseDuration }, { sleep: storeSleep }] = await Promise.all([
    import('../../audit/events.js'),
    import('../../audit/replay.js'),
    import('../../config/units.js'),
    import('../../store/common.js'),
  ]);
  const maxIdleMs = o.maxIdle === undefined ? 2000 : tryParseDuration(o.maxIdle);
  if (maxIdleMs === null) throw new DlpctlError('USAGE', `--max-idle ${o.maxIdle}: a duration such as 2s or 500ms`);
  let events: StoreEvent[] = [];
  await withStore(ctx, async (store) => {
    const session = await store.getSession(o.session);
    if (!session) throw new DlpctlError('STORE_NOT_FOUND', `no session ${o.session}; find one with dlpctl audit search`);
    events = await allSessionEvents(store, session.id);
  });
  const c = ctx.io.color;
  const sleep = o.sleep ?? ((ms: number) => storeSleep(ms, ctx.signal));
  try {
    await replaySession(events, {
      speed,
      maxIdleMs,
      sleep,
      writeRaw: (d) => void ctx.io.stdout.write(d),
      writeLine: (l) => ctx.io.out(l),
      style: { dim: (s) => c.dim(s), red: (s) => c.red(s), green: (s) => c.green(s), yellow: (s) => c.yellow(s) },
    });
  } catch (err) {
    if (ctx.signal.aborted) return ExitCode.ok;
    throw err;
  }
  return ExitCode.ok;
}
