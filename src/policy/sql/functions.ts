/**
 * What calling a function does, from its pg_proc rows (pure: the caller reads the catalogue).
 *
 * A function is *safe* to call when it cannot do more than the statement around it already says:
 *   - a built-in (schema pg_catalog or information_schema) that is immutable or stable, an aggregate or a window
 *     function: it reads its arguments (and, when stable, the catalogue) and changes nothing;
 *   - a volatile built-in not on UNSAFE_VOLATILE_BUILTINS (below, with the reasons);
 *   - any function whose `schema.name` matches a glob of the resource's `safeFunctions` (operators list their own).
 * Everything else is unsafe: a user function in any language until it is listed, and volatile built-ins not on the
 * list (pg_terminate_backend, pg_cancel_backend, pg_reload_conf, pg_rotate_logfile, lo_import/lo_export,
 * pg_read_file, dblink…). The body of a LANGUAGE sql or plpgsql user function is still analysed and its effects,
 * relations and functions folded into the calling statement, so a rule denying `drop` names the real reason.
 * A name visible with several overloads is safe only when every overload is (the catalogue cannot say which one a
 * call resolves to without the argument types).
 */
import type { SqlStatementKind } from '../../config/types.js';
import { storedBodySql } from './bodies.js';
import { classifySql, rankEffects, type SqlClassification, type SqlStatement } from './classify.js';

export interface ProcRow {
  schema: string;
  name: string;
  language: string;
  volatility: 'i' | 's' | 'v';
  kind: 'f' | 'p' | 'a' | 'w';
  body: string | null;
  /** pg_get_function_arguments(oid), when known: lets a PL/pgSQL body compile with its parameters. */
  args?: string;
  /** pg_get_function_result(oid), when known: lets a PL/pgSQL body compile with its own return type. */
  result?: string;
}

export interface FunctionAnalysis {
  name: string; // schema.name
  safe: boolean; // known safe to call
  why: string; // why not safe / why safe, for messages and `policy explain`
  effects: SqlStatementKind[];
  reads: string[];
  writes: string[];
  functions: string[];
  /** The SQL statements of the body, for lineage; null when the body cannot be analysed (dynamic SQL, other language). */
  bodyStatements: string[] | null;
  /** Why the body cannot be analysed (set when effects include `unknown`). */
  opaque?: string;
}

/**
 * Volatile built-ins that act beyond the statement's own data, and so are not safe to call through the proxy:
 * they end or signal other sessions, change or reload the server's configuration, read or write server files,
 * drive backups, WAL and replication slots, reset or overwrite planner and activity statistics, rewind a sequence
 * (setval: later inserts collide with existing keys), or run maintenance that rewrites indexes. Every other
 * built-in is safe: immutable and stable ones cannot change anything, aggregates and window functions neither,
 * and the remaining volatile ones only produce new values (random, clock_timestamp, gen_random_uuid, nextval),
 * touch this session's or transaction's own state (set_config, pg_advisory_lock, pg_notify, txid_current,
 * pg_sleep), read sizes and progress (pg_relation_size, pg_partition_ancestors, pg_current_wal_lsn), or are the
 * large-object calls, which the tunnel polices where they carry data.
 */
export const UNSAFE_VOLATILE_BUILTINS: readonly string[] = [
  'pg_terminate_backend', 'pg_cancel_backend', 'pg_signal_backend', 'pg_reload_conf', 'pg_rotate_logfile*',
  'pg_log_backend_memory_contexts', 'pg_log_standby_snapshot',
  'pg_read_file', 'pg_read_binary_file', 'pg_ls_*', 'pg_stat_file', 'pg_file_*', 'lo_import', 'lo_export',
  'pg_switch_wal', 'pg_switch_xlog', 'pg_create_restore_point', 'pg_backup_start', 'pg_backup_stop', 'pg_start_backup',
  'pg_stop_backup', 'pg_promote', 'pg_wal_replay_*', 'pg_xlog_replay_*', 'pg_create_*_replication_slot',
  'pg_drop_replication_slot', 'pg_copy_*_replication_slot', 'pg_replication_slot_advance', 'pg_logical_slot_*',
  'pg_replication_origin_*', 'pg_logical_emit_message', 'pg_sync_replication_slots',
  'pg_stat_reset*', 'pg_set_*_stats', 'pg_restore_*_stats', 'pg_clear_*_stats', 'pg_import_system_collations',
  'setval', 'pg_nextoid', 'binary_upgrade_*', 'pg_extension_config_dump',
  'brin_summarize*', 'brin_desummarize_range', 'gin_clean_pending_list',
];

const BUILTIN_SCHEMAS = new Set(['pg_catalog', 'information_schema']);

function globRe(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
}

const unsafeBuiltins = UNSAFE_VOLATILE_BUILTINS.map(globRe);

/** A `safeFunctions` glob (`name`, `schema.name`, each part a glob) matches `schema.name`, compared from the right. */
function listed(safeList: readonly string[], schema: string, name: string): string | null {
  for (const g of safeList) {
    const parts = g.split('.');
    if (parts.length > 2) continue;
    if (!globRe(parts[parts.length - 1]!).test(name)) continue;
    if (parts.length === 2 && !globRe(parts[0]!).test(schema)) continue;
    return g;
  }
  return null;
}

const VOLATILITY = { i: 'immutable', s: 'stable', v: 'volatile' } as const;

interface OverloadFacts {
  safe: boolean;
  why: string;
  statements: SqlStatement[];
  bodyStatements: string[] | null;
  opaque: string | null;
}

function overloadFacts(row: ProcRow, safeList: readonly string[]): OverloadFacts {
  const qualified = `${row.schema}.${row.name}`;
  const builtin = BUILTIN_SCHEMAS.has(row.schema.toLowerCase());
  const glob = listed(safeList, row.schema, row.name);
  const what = `${row.kind === 'p' ? 'procedure' : 'function'} ${qualified}`;
  let safe: boolean;
  let why: string;
  if (builtin && (row.kind === 'a' || row.kind === 'w')) {
    safe = true;
    why = `${qualified} is a built-in ${row.kind === 'a' ? 'aggregate' : 'window function'}`;
  } else if (builtin && row.volatility !== 'v') {
    safe = true;
    why = `${qualified} is a ${VOLATILITY[row.volatility]} built-in`;
  } else if (builtin && !unsafeBuiltins.some((re) => re.test(row.name))) {
    safe = true;
    why = `${qualified} is a volatile built-in that acts only on this statement's own data and session`;
  } else if (glob !== null) {
    safe = true;
    why = `${qualified} is listed in safeFunctions (${glob})`;
  } else {
    safe = false;
    why = builtin
      ? `${qualified} is a built-in that acts beyond the statement (other sessions, server configuration or files, replication, statistics); list it in the resource's safeFunctions if calling it is fine`
      : `${what} is not known to be safe; list it in the resource's safeFunctions if it is`;
  }
  // The body of a built-in in internal or C code is PostgreSQL's own: nothing to analyse, nothing hidden.
  const language = row.language.toLowerCase();
  if (builtin && language !== 'sql' && language !== 'plpgsql') return { safe, why, statements: [], bodyStatements: null, opaque: null };
  const body = storedBodySql({
    language, body: row.body, what, procedure: row.kind === 'p',
    ...(row.args !== undefined ? { args: row.args } : {}), ...(row.result !== undefined ? { result: row.result } : {}),
  });
  const statements: SqlStatement[] = [];
  const texts: string[] = [];
  let opaque = body.opaque;
  for (const text of body.statements) {
    const c = classifySql(text);
    for (const s of c.statements) {
      statements.push(s);
      texts.push(s.text);
      if (s.error !== undefined) opaque ??= `a statement of the body of ${what} could not be parsed (${s.error})`;
      else if (s.opaque !== undefined) opaque ??= s.opaque;
    }
  }
  return { safe, why, statements, bodyStatements: opaque === null ? texts : null, opaque };
}

/** `overloads`: every pg_proc row of that name visible to the statement; `safeList`: the resource's safeFunctions globs. */
export function analyzeFunction(overloads: readonly ProcRow[], safeList: readonly string[]): FunctionAnalysis {
  const first = overloads[0];
  if (!first) {
    return {
      name: '', safe: false, why: 'the function was not found in the catalogue', effects: ['unknown'], reads: [], writes: [],
      functions: [], bodyStatements: null, opaque: 'the function was not found in the catalogue',
    };
  }
  const name = `${first.schema}.${first.name}`;
  const effects = new Set<SqlStatementKind>();
  const reads = new Set<string>();
  const writes = new Set<string>();
  const functions = new Set<string>();
  let bodies: string[] | null = [];
  let safe = true;
  let why = '';
  let opaque: string | null = null;
  for (const row of overloads) {
    const f = overloadFacts(row, safeList);
    if (!f.safe && safe) {
      safe = false;
      why = f.why;
    } else if (safe && why === '') why = f.why;
    for (const s of f.statements) {
      for (const e of s.effects) effects.add(e);
      for (const r of s.reads) reads.add(r);
      for (const w of s.writes) writes.add(w);
      for (const fn of s.functions) functions.add(fn);
    }
    if (f.opaque !== null) {
      opaque ??= f.opaque;
      effects.add('unknown');
    }
    bodies = bodies === null || f.bodyStatements === null ? null : [...bodies, ...f.bodyStatements];
  }
  if (!safe && opaque !== null) why = `${why}; ${opaque}`;
  const out: FunctionAnalysis = {
    name, safe, why, effects: rankEffects(effects).effects, reads: [...reads], writes: [...writes], functions: [...functions],
    bodyStatements: bodies,
  };
  if (opaque !== null) out.opaque = opaque;
  return out;
}

/**
 * A copy of the classification with function facts folded in: statements calling an unsafe function get effect
 * `call` (kind re-ranked) plus the function body's effects/reads/writes; a name with no facts (not found) counts
 * as unsafe and opaque (effect unknown, opaque says `function f was not found in the catalogue`). A safe function
 * adds its body's effects and relations but no `call`, and a CALL of a safe procedure loses its `call` (it is what
 * its body does, or a read when that is nothing): listing a procedure in safeFunctions is what lets it through.
 */
export function withFunctionFacts(c: SqlClassification, facts: ReadonlyMap<string, FunctionAnalysis>): SqlClassification {
  const statements = c.statements.map((s) => {
    if (s.functions.length === 0 || s.error !== undefined) return s;
    const effects = new Set<SqlStatementKind>(s.effects);
    const reads = new Set(s.reads);
    const writes = new Set(s.writes);
    const functions = new Set(s.functions);
    let opaque = s.opaque;
    let unsafe = false;
    let procedureSafe = false;
    for (const written of s.functions) {
      const f = facts.get(written.toLowerCase());
      if (!f) {
        unsafe = true;
        effects.add('unknown');
        opaque ??= `function ${written} was not found in the catalogue`;
        continue;
      }
      if (!f.safe) unsafe = true;
      else if (s.procedure !== undefined && written === s.procedure) procedureSafe = true;
      for (const e of f.effects) if (e !== 'unknown' || !f.safe) effects.add(e);
      for (const r of f.reads) reads.add(r);
      for (const w of f.writes) writes.add(w);
      for (const fn of f.functions) functions.add(fn);
      if (!f.safe && f.effects.includes('unknown')) opaque ??= f.opaque ?? f.why;
    }
    if (s.command === 'CALL' && procedureSafe && !unsafe) {
      effects.delete('call');
      if (effects.size === 0) effects.add('select');
    }
    if (unsafe) effects.add('call');
    const ranked = rankEffects(effects);
    const out: { -readonly [K in keyof SqlStatement]: SqlStatement[K] } = {
      ...s, kind: ranked.kind, effects: ranked.effects, reads: [...reads], writes: [...writes], functions: [...functions],
    };
    if (opaque !== undefined) out.opaque = opaque;
    for (const list of [out.effects, out.reads, out.writes, out.functions]) Object.freeze(list);
    return Object.freeze(out);
  });
  const out: { statements: readonly SqlStatement[]; error?: string } = { statements: Object.freeze(statements) };
  if (c.error !== undefined) out.error = c.error;
  return Object.freeze(out);
}
