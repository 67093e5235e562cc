/**
 * Rule conditions, compiled once per rule object and matched against one unit of action (one SQL statement, one
 * HTTP request, one SSH channel request). Matching returns NO, YES or INDETERMINATE: a condition that cannot be
 * evaluated (a statement the parser could not classify, an `entities` condition without a detector). The
 * evaluator decides what an indeterminate rule means (it fails closed for allow/deny/approve rules).
 *
 * List semantics (DESIGN §4: each list is any-of): for deny, approve, mask and limit rules one overlap suffices
 * (`statements: [delete]` matches `WITH d AS (DELETE …) SELECT …`). For allow rules the `statements`, `tables`
 * and `functions` lists must *cover* the statement: every effect, every relation, every function must be listed
 * (and there must be at least one). An allow rule therefore never allows more than it names: `statements: [select]`
 * does not allow a SELECT that wraps a DELETE, `tables: [orders]` does not allow a join with `customers`.
 *
 * Names match case-insensitively, part by part from the right: rule `customers` matches `customers`,
 * `public.customers` and `x.customers`; rule `public.customers` matches `public.customers` and not
 * `other.customers`; an unqualified relation `customers` (whose schema depends on the search_path) matches
 * `public.customers` for deny/approve/mask/limit rules but not for allow rules. `*` in a name part is a glob
 * (`dblink*`, `*.email`).
 */
import type { Rule, SqlStatementKind } from '../config/types.js';
import type { SqlStatement } from './sql/classify.js';
import { analyzeShell, flattenCommands, type ShellAnalysis, type ShellCommand } from './ssh/shell.js';
import type { PolicyAction, PolicyIdentity } from './types.js';

export const NO = 0;
export const YES = 1;
export const INDETERMINATE = 2;
export type MatchResult = typeof NO | typeof YES | typeof INDETERMINATE;

/** Why a rule could not be evaluated. */
export type IndeterminateCause = 'unclassified' | 'no_detector' | 'opaque_command';

/** An exact part, a prefix (`dblink*`), or a general glob. */
type NamePart = string | { prefix: string } | RegExp;
interface NamePattern {
  raw: string;
  parts: NamePart[];
}

export interface CompiledRule {
  readonly rule: Rule;
  /** allow 1, approve 2, deny 3; mask and limit 0. */
  readonly strictness: number;
  readonly identity?: {
    groups?: ReadonlySet<string>;
    subjects?: readonly string[];
    kind?: 'human' | 'machine';
  };
  readonly sql?: {
    statements?: ReadonlySet<SqlStatementKind>;
    tables?: readonly NamePattern[];
    functions?: readonly NamePattern[];
    text?: RegExp | Error;
    noWhere?: boolean;
    /** Extension used by built-in rules: parser command tags such as `ALTER SYSTEM`. */
    commands?: ReadonlySet<string>;
  };
  readonly http?: {
    methods?: ReadonlySet<string>;
    paths?: readonly RegExp[];
    text?: RegExp | Error;
  };
  readonly ssh?: {
    command?: RegExp | Error;
    channels?: ReadonlySet<string>;
    paths?: readonly RegExp[];
  };
  readonly entities?: readonly string[];
}

/** A rule as the engine reads it: config `Rule`, plus the optional `sql.commands` extension of built-in rules. */
export type EngineRule = Rule & { when?: Rule['when'] & { sql?: NonNullable<Rule['when']>['sql'] & { commands?: string[] } } };

const STRICTNESS: Record<Rule['action'], number> = { allow: 1, approve: 2, deny: 3, mask: 0, limit: 0 };

const compiledCache = new WeakMap<Rule, CompiledRule>();

function compileRegex(source: string): RegExp | Error {
  try {
    return new RegExp(source);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function compileName(raw: string): NamePattern {
  const parts = raw.toLowerCase().split('.').map((p): NamePart => {
    const star = p.indexOf('*');
    if (star < 0) return p;
    if (star === p.length - 1) return { prefix: p.slice(0, -1) };
    return new RegExp(`^${p.split('*').map(escapeRe).join('.*')}$`);
  });
  return { raw, parts };
}

/** Compiles an HTTP path glob: `*` within one segment, `**` across segments. */
export function compilePathGlob(glob: string): RegExp {
  // A trailing `/**` also matches the prefix itself: `/admin/**` covers `/admin`.
  const tail = glob.endsWith('/**');
  const body = tail ? glob.slice(0, -3) : glob;
  let re = '';
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch !== '*') re += escapeRe(ch);
    else if (body[i + 1] !== '*') re += '[^/]*';
    else if (body[i + 2] === '/') {
      re += '(?:.*/)?'; // `/**/` also matches a single `/`
      i += 2;
    } else {
      re += '.*';
      i += 1;
    }
  }
  return new RegExp(`^${re}${tail ? '(?:/.*)?' : ''}$`);
}

const compiledLists = new WeakMap<readonly Rule[], CompiledRule[]>();

/** Compiles the rules of a policy (cached on the rules array). */
export function compileRules(rules: readonly Rule[]): CompiledRule[] {
  let c = compiledLists.get(rules);
  if (!c || c.length !== rules.length) {
    c = rules.map(compileRule);
    compiledLists.set(rules, c);
  }
  return c;
}

export function compileRule(rule: Rule): CompiledRule {
  const hit = compiledCache.get(rule);
  if (hit) return hit;
  const w = (rule as EngineRule).when;
  const c: { -readonly [K in keyof CompiledRule]: CompiledRule[K] } = { rule, strictness: STRICTNESS[rule.action] ?? 0 };
  if (w?.identity) {
    const id = w.identity;
    c.identity = {
      ...(id.groups ? { groups: new Set(id.groups.map((g) => g.replace(/^group:/, ''))) } : {}),
      ...(id.subjects ? { subjects: id.subjects.map((s) => s.replace(/^(subject|user):/, '')) } : {}),
      ...(id.kind ? { kind: id.kind } : {}),
    };
  }
  if (w?.sql) {
    const s = w.sql;
    c.sql = {
      ...(s.statements ? { statements: new Set(s.statements) } : {}),
      ...(s.tables ? { tables: s.tables.map(compileName) } : {}),
      ...(s.functions ? { functions: s.functions.map(compileName) } : {}),
      ...(s.text !== undefined ? { text: compileRegex(s.text) } : {}),
      ...(s.noWhere !== undefined ? { noWhere: s.noWhere } : {}),
      ...(s.commands ? { commands: new Set(s.commands.map((x) => x.toUpperCase().replace(/\s+/g, ' ').trim())) } : {}),
    };
  }
  if (w?.http) {
    const h = w.http;
    c.http = {
      ...(h.methods ? { methods: new Set(h.methods.map((m) => m.toUpperCase())) } : {}),
      ...(h.paths ? { paths: h.paths.map(compilePathGlob) } : {}),
      ...(h.text !== undefined ? { text: compileRegex(h.text) } : {}),
    };
  }
  if (w?.ssh) {
    const s = w.ssh;
    c.ssh = {
      ...(s.command !== undefined ? { command: compileRegex(s.command) } : {}),
      ...(s.channels ? { channels: new Set(s.channels) } : {}),
      ...(s.paths ? { paths: s.paths.map(compilePathGlob) } : {}),
    };
  }
  if (w?.entities) c.entities = w.entities;
  compiledCache.set(rule, c);
  return c;
}

// ---------------------------------------------------------------------------------------------------------------

/** What a rule is matched against; one per unit (statement, request, channel). */
export interface MatchEnv {
  action: PolicyAction;
  identity: PolicyIdentity;
  /** The current SQL statement (SQL actions with at least one statement). */
  stmt: SqlStatement | null;
  /** Entities found in the unit's content, computed at most once; null when there is no detector. */
  entities: () => ReadonlySet<string> | null;
  expandEntities: (names: string[]) => string[];
  /** HTTP: normalised path and the headers+body text, computed once. */
  httpPath?: string;
  httpText?: string;
  /** Lower-cased name parts of the statement's relations and functions, computed once. */
  parts?: { rels: string[][]; fns: string[][] };
  /** SSH exec/shell: the command line resolved into simple commands, computed once (null: not a shell line). */
  shell?: ShellAnalysis | null;
  /** SSH file reads: the normalised path, computed once. */
  filePath?: string;
  /** Set by `matchRule` when it returns INDETERMINATE. */
  cause?: IndeterminateCause;
  /** With cause `opaque_command`: why the command line cannot be resolved. */
  opaque?: string;
}

export class RuleEvaluationError extends Error {
  override readonly name = 'RuleEvaluationError';
}

function regexOf(r: RegExp | Error, what: string): RegExp {
  if (r instanceof Error) throw new RuleEvaluationError(`invalid regular expression in ${what}: ${r.message}`);
  return r;
}

function list(xs: Iterable<string>): string {
  return `[${[...xs].join(', ')}]`;
}

interface StmtParts {
  rels: string[][];
  fns: string[][];
}

function stmtParts(env: MatchEnv, s: SqlStatement): StmtParts {
  if (env.parts) return env.parts;
  const rels: string[][] = [];
  for (const r of s.reads) rels.push(r.toLowerCase().split('.'));
  for (const r of s.writes) if (!s.reads.includes(r)) rels.push(r.toLowerCase().split('.'));
  return (env.parts = { rels, fns: s.functions.map((f) => f.toLowerCase().split('.')) });
}

function partEq(pat: NamePart, s: string): boolean {
  if (typeof pat === 'string') return pat === s;
  if (pat instanceof RegExp) return pat.test(s);
  return s.startsWith(pat.prefix);
}

/** Right-aligned part match. `loose`: a name with fewer parts than the pattern matches on the parts it has. */
function nameMatches(pat: NamePattern, name: string[], loose: boolean): boolean {
  const pp = pat.parts;
  if (name.length < pp.length && !loose) return false;
  const n = Math.min(pp.length, name.length);
  for (let i = 1; i <= n; i++) if (!partEq(pp[pp.length - i]!, name[name.length - i]!)) return false;
  return true;
}

/** any-of, or (cover) every name matched by some pattern and at least one name. */
function namesMatch(pats: readonly NamePattern[], names: string[][], cover: boolean): boolean {
  if (cover) {
    if (names.length === 0) return false;
    for (let i = 0; i < names.length; i++) {
      let hit = false;
      for (let j = 0; j < pats.length && !hit; j++) hit = nameMatches(pats[j]!, names[i]!, false);
      if (!hit) return false;
    }
    return true;
  }
  for (let i = 0; i < names.length; i++) for (let j = 0; j < pats.length; j++) if (nameMatches(pats[j]!, names[i]!, true)) return true;
  return false;
}

function anyIn<T>(xs: readonly T[], set: ReadonlySet<T>): boolean {
  for (let i = 0; i < xs.length; i++) if (set.has(xs[i]!)) return true;
  return false;
}

/** Every element in the set, and at least one element. */
function allIn<T>(xs: readonly T[], set: ReadonlySet<T>): boolean {
  if (xs.length === 0) return false;
  for (let i = 0; i < xs.length; i++) if (!set.has(xs[i]!)) return false;
  return true;
}

const noFail = (_reason: () => string): void => {};

/**
 * Matches one compiled rule. With `why`, every failing or indeterminate condition is described there (and all
 * conditions are checked); without it, matching stops at the first failure and builds no strings.
 */
export function matchRule(c: CompiledRule, env: MatchEnv, why?: string[]): MatchResult {
  let indet = false;
  let ok = true;
  // Only reached with `why`: without it, matching returns NO before calling this.
  const fail = why
    ? (reason: () => string): void => {
        ok = false;
        why.push(reason());
      }
    : noFail;
  const action = env.action;

  // Protocol conditions first: a condition for another protocol never matches.
  if (c.sql && action.type !== 'sql') {
    if (!why) return NO;
    fail(() => `sql: condition applies to SQL, this is ${action.type}`);
  }
  if (c.http && action.type !== 'http') {
    if (!why) return NO;
    fail(() => `http: condition applies to HTTP, this is ${action.type}`);
  }
  if (c.ssh && action.type !== 'ssh') {
    if (!why) return NO;
    fail(() => `ssh: condition applies to SSH, this is ${action.type}`);
  }

  if (c.identity) {
    const id = c.identity;
    const who = env.identity;
    if (id.kind && id.kind !== who.kind) {
      if (!why) return NO;
      fail(() => `identity.kind: ${who.kind} is not ${id.kind}`);
    }
    if (id.groups && !anyIn(who.groups, id.groups)) {
      if (!why) return NO;
      fail(() => `identity.groups: none of ${list(who.groups)} in ${list(id.groups!)}`);
    }
    if (id.subjects) {
      const email = who.email?.toLowerCase();
      const hit = id.subjects.some((s) => s === who.subject || (email !== undefined && s.toLowerCase() === email));
      if (!hit) {
        if (!why) return NO;
        fail(() => `identity.subjects: ${who.subject} not in ${list(id.subjects!)}`);
      }
    }
  }

  if (c.sql && action.type === 'sql') {
    const s = c.sql;
    const stmt = env.stmt;
    const cover = c.rule.action === 'allow';
    if (!stmt) {
      if (!why) return NO;
      fail(() => 'sql: there is no statement');
    } else {
      const unknown = stmt.kind === 'unknown';
      if (s.statements) {
        if (unknown && !s.statements.has('unknown')) {
          indet = true;
          env.cause = 'unclassified';
          why?.push(`statements: could not classify this statement${stmt.error ? ` (${stmt.error})` : ''}`);
        } else {
          const eff = stmt.effects;
          const hit = cover ? allIn(eff, s.statements) : anyIn(eff, s.statements);
          if (!hit) {
            if (!why) return NO;
            fail(() =>
              `statements: ${eff.join('+')} ${cover && eff.length > 1 ? 'not all' : 'not'} in ${list(s.statements!)}`,
            );
          }
        }
      }
      if (s.commands) {
        // The command tag is the parser's: known whenever the statement parsed, whatever its kind.
        if (stmt.error !== undefined) {
          indet = true;
          env.cause = 'unclassified';
          why?.push('commands: could not classify this statement');
        } else if (!s.commands.has(stmt.command.replace(/^(EXPLAIN|PREPARE) /, ''))) {
          if (!why) return NO;
          fail(() => `commands: ${stmt.command} not in ${list(s.commands!)}`);
        }
      }
      if (s.tables) {
        if (unknown) {
          indet = true;
          env.cause = 'unclassified';
          why?.push('tables: could not classify this statement, so its tables are unknown');
        } else if (!namesMatch(s.tables, stmtParts(env, stmt).rels, cover)) {
          if (!why) return NO;
          fail(() => {
            const rels = [...new Set([...stmt.reads, ...stmt.writes])];
            return rels.length === 0
              ? `tables: the statement uses no relation (rule names ${list(s.tables!.map((p) => p.raw))})`
              : `tables: ${list(rels)} ${cover ? 'not all' : 'none'} in ${list(s.tables!.map((p) => p.raw))}`;
          });
        }
      }
      if (s.functions) {
        if (unknown && stmt.functions.length === 0) {
          indet = true;
          env.cause = 'unclassified';
          why?.push('functions: could not classify this statement, so its functions are unknown');
        } else if (!namesMatch(s.functions, stmtParts(env, stmt).fns, cover)) {
          if (!why) return NO;
          fail(() =>
            stmt.functions.length === 0
              ? `functions: the statement calls no function (rule names ${list(s.functions!.map((p) => p.raw))})`
              : `functions: ${list(stmt.functions)} ${cover ? 'not all' : 'none'} in ${list(s.functions!.map((p) => p.raw))}`,
          );
        }
      }
      if (s.noWhere !== undefined) {
        if (unknown) {
          indet = true;
          env.cause = 'unclassified';
          why?.push('noWhere: could not classify this statement');
        } else if (stmt.noWhere !== s.noWhere) {
          if (!why) return NO;
          fail(() => (s.noWhere ? 'noWhere: the statement has no UPDATE/DELETE without WHERE' : 'noWhere: the statement updates or deletes without WHERE'));
        }
      }
      if (s.text !== undefined) {
        const re = regexOf(s.text, `rule ${c.rule.name} sql.text`);
        if (!re.test(stmt.text)) {
          if (!why) return NO;
          fail(() => `text: /${re.source}/ does not match the statement`);
        }
      }
    }
  }

  if (c.http && action.type === 'http') {
    const h = c.http;
    if (h.methods && !h.methods.has(action.method.toUpperCase())) {
      if (!why) return NO;
      fail(() => `methods: ${action.method.toUpperCase()} not in ${list(h.methods!)}`);
    }
    if (h.paths) {
      const path = (env.httpPath ??= normalizeHttpPath(action.path));
      if (!h.paths.some((re) => re.test(path))) {
        if (!why) return NO;
        fail(() => `paths: ${path} matches none of ${list((c.rule.when?.http?.paths) ?? [])}`);
      }
    }
    if (h.text !== undefined) {
      const re = regexOf(h.text, `rule ${c.rule.name} http.text`);
      const text = (env.httpText ??= httpText(action));
      if (!re.test(text)) {
        if (!why) return NO;
        fail(() => `text: /${re.source}/ does not match the headers or body`);
      }
    }
  }

  if (c.ssh && action.type === 'ssh') {
    const s = c.ssh;
    if (s.channels && !s.channels.has(action.channel)) {
      if (!why) return NO;
      fail(() => `channels: ${action.channel} not in ${list(s.channels!)}`);
    }
    if (s.paths) {
      if (action.path === undefined) {
        if (!why) return NO;
        fail(() => `paths: this ${action.channel} request reads no file`);
      } else {
        const p = (env.filePath ??= normalizeFilePath(action.path));
        if (!s.paths.some((re) => re.test(p))) {
          if (!why) return NO;
          fail(() => `paths: ${p} matches none of ${list(c.rule.when?.ssh?.paths ?? [])}`);
        }
      }
    }
    if (s.command !== undefined) {
      const re = regexOf(s.command, `rule ${c.rule.name} ssh.command`);
      const cmd = action.command;
      if (cmd === undefined) {
        if (!why) return NO;
        fail(() => `command: this ${action.channel} request has no command line`);
      } else {
        const sh = env.shell === undefined ? (env.shell = shellOf(action)) : env.shell;
        const r = sh === null ? (re.test(cmd) ? YES : NO) : c.rule.action === 'allow' ? coversLine(re, cmd, sh) : matchesLine(re, cmd, sh);
        if (r === INDETERMINATE) {
          indet = true;
          env.cause = 'opaque_command';
          env.opaque = sh!.opaque.join('; ');
          why?.push(`command: /${re.source}/ matches no simple command, and the line cannot be resolved statically (${env.opaque})`);
        } else if (r === NO) {
          if (!why) return NO;
          fail(() => commandMiss(re, cmd, sh, c.rule.action === 'allow'));
        }
      }
    }
  }

  if (c.entities) {
    const found = env.entities();
    if (found === null) {
      indet = true;
      env.cause = 'no_detector';
      why?.push('entities: no entity detector is available to check this condition');
    } else {
      const wanted = env.expandEntities([...c.entities]);
      if (!wanted.some((e) => found.has(e))) {
        if (!why) return NO;
        fail(() => `entities: none of ${list(c.entities!)} found${found.size ? ` (found ${list(found)})` : ''}`);
      }
    }
  }

  if (!ok) return NO;
  return indet ? INDETERMINATE : YES;
}

/**
 * The path an HTTP rule sees: no query string or fragment, percent-decoded (except `/` and `\`, which would change
 * the segments), `.` and `..` segments resolved and repeated slashes collapsed, so `/a/../admin` is `/admin`.
 */
export function normalizeHttpPath(raw: string): string {
  let p = raw;
  const cut = p.search(/[?#]/);
  if (cut >= 0) p = p.slice(0, cut);
  p = p.replace(/%(?!2f|5c)([0-9a-f]{2})/gi, (m, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return ch < ' ' ? m : ch;
  });
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return `/${out.join('/')}${p.endsWith('/') && out.length > 0 ? '/' : ''}`;
}

function httpText(a: Extract<PolicyAction, { type: 'http' }>): string {
  let t = '';
  for (const k in a.headers) {
    const v = a.headers[k];
    if (Array.isArray(v)) for (const x of v) t += `${k}: ${x}\n`;
    else t += `${k}: ${v as string}\n`;
  }
  return `${t}\n${a.body ?? ''}`;
}

/**
 * SSH command lines (exec, and each line of an interactive shell) are matched against the raw text and against
 * each simple command the shell would run (policy/ssh/shell.ts); forward targets are matched as they are.
 */
function shellOf(action: Extract<PolicyAction, { type: 'ssh' }>): ShellAnalysis | null {
  if (action.command === undefined || (action.channel !== 'exec' && action.channel !== 'shell')) return null;
  return analyzeShell(action.command, { interactive: action.channel === 'shell' });
}

/** The command text with the command word's directory dropped (`/bin/cat x` → `cat x`), or null. */
function baseForm(n: ShellCommand): string | null {
  const w = n.words[0]!;
  const k = w.lastIndexOf('/');
  return k >= 0 && k < w.length - 1 ? `${w.slice(k + 1)}${n.text.slice(w.length)}` : null;
}

/**
 * deny / approve / mask / limit: the raw line or any simple command the shell would run (also with the command
 * word's directory dropped). No match on a line that cannot be fully resolved is indeterminate: the evaluator
 * fails closed rather than guess what `$CMD` or `sh -c "$X"` runs.
 */
function matchesLine(re: RegExp, raw: string, sh: ShellAnalysis): MatchResult {
  if (re.test(raw)) return YES;
  for (const n of flattenCommands(sh.commands)) {
    if (re.test(n.text)) return YES;
    const b = baseForm(n);
    if (b !== null && re.test(b)) return YES;
  }
  return sh.opaque.length ? INDETERMINATE : NO;
}

/**
 * allow: the rule must cover every simple command of the line (a wrapper such as `sudo X` or `sh -c 'X; Y'` is
 * covered by its own text, or when everything it runs is covered). A line that is one simple command is also
 * covered when the raw text matches. A line that cannot be fully resolved is never covered.
 */
function coversLine(re: RegExp, raw: string, sh: ShellAnalysis): MatchResult {
  if (sh.opaque.length) return NO;
  if (sh.commands.length <= 1 && re.test(raw)) return YES;
  if (sh.commands.length === 0) return NO;
  const covered = (n: ShellCommand): boolean => re.test(n.text) || (n.inner.length > 0 && n.inner.every(covered));
  return sh.commands.every(covered) ? YES : NO;
}

function commandMiss(re: RegExp, raw: string, sh: ShellAnalysis | null, cover: boolean): string {
  if (sh === null || !cover) return `command: /${re.source}/ does not match "${raw}"${sh && sh.commands.length > 1 ? ' or any of its simple commands' : ''}`;
  if (sh.opaque.length) return `command: the line cannot be resolved statically (${sh.opaque.join('; ')}), so an allow rule cannot cover it`;
  const missing = sh.commands.find((n) => !re.test(n.text));
  return `command: /${re.source}/ does not cover every simple command of the line${missing ? ` (not "${missing.text}")` : ''}`;
}

/**
 * The path a `paths` condition sees: repeated slashes collapsed, `.` and `..` resolved lexically (`/tmp/../etc/x`
 * is `/etc/x`). A relative path stays relative (it is resolved on the target against the login directory).
 */
export function normalizeFilePath(raw: string): string {
  const abs = raw.startsWith('/');
  const out: string[] = [];
  for (const seg of raw.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length && out[out.length - 1] !== '..') out.pop();
      else if (!abs) out.push('..');
    } else out.push(seg);
  }
  return `${abs ? '/' : ''}${out.join('/')}` || '.';
}

/** The content an `entities` condition looks at. */
export function unitContent(action: PolicyAction, stmt: SqlStatement | null): string {
  switch (action.type) {
    case 'sql':
      return stmt ? stmt.text : action.text;
    case 'http':
      return `${action.path}\n${action.body ?? ''}`;
    case 'ssh':
      return action.command ?? '';
  }
}
