/**
 * `dlpctl policy lint`: problems in the policies of a config that validation (types, references) does not catch.
 *
 * - errors: unknown entity names, conditions that can never match (empty lists, unknown statement kinds or
 *   channels, a protocol condition on a policy no resource of that protocol uses, two protocol conditions in one
 *   rule), invalid or unsafe regular expressions, approve rules without approvers, mask rules with neither
 *   columns nor entities, limit rules without a limit, duplicate rule names, policies that do not exist;
 * - warnings: rules that can never decide because a stricter (or an earlier equally strict) rule matches whatever
 *   they match (sound simple cases only: a rule without `when`, or a condition that is a superset key by key),
 *   unused policies, mask parameters that the chosen masker ignores.
 */
import { SQL_STATEMENT_KINDS, SSH_CHANNEL_KINDS, type Policy, type ResourceKind, type Rule, type SourcePos } from '../config/types.js';
import { BUILTIN_POLICIES } from './builtin.js';
import { namesApprovers } from './evaluate.js';
import type { EngineRule } from './match.js';

export interface LintFinding {
  severity: 'error' | 'warning';
  pos?: SourcePos;
  /** Key path in the config, e.g. `policies.pii[1].entities[2]`. */
  path: string;
  message: string;
}

export interface LintInput {
  resources: Readonly<Record<string, { kind: ResourceKind; policies: readonly string[]; name?: string }>>;
  policies: Readonly<Record<string, Policy>>;
}

export interface LintOptions {
  /** Entity names the DLP engine knows (built-in and custom detectors). `secrets` is always known. */
  knownEntities: Iterable<string>;
  /** Returns a description of the problem when a regular expression is unsafe (e.g. catastrophic backtracking). */
  checkRegex?: (source: string) => string | null | undefined;
}

const KINDS = new Set<string>(SQL_STATEMENT_KINDS);
const CHANNELS = new Set<string>(SSH_CHANNEL_KINDS);
const STRICT: Record<Rule['action'], number> = { allow: 1, approve: 2, deny: 3, mask: 0, limit: 0 };
const PROTOCOL_OF = { sql: 'postgres', http: 'http', ssh: 'ssh' } as const;

export function lintPolicies(input: LintInput, opts: LintOptions): LintFinding[] {
  const out: LintFinding[] = [];
  const known = new Set(opts.knownEntities);
  known.add('secrets');
  const add = (severity: LintFinding['severity'], path: string, message: string, pos?: SourcePos): void => {
    out.push(pos ? { severity, pos, path, message } : { severity, path, message });
  };

  // Which resource kinds use each policy.
  const usedBy = new Map<string, { kinds: Set<ResourceKind>; resources: string[] }>();
  for (const [rname, r] of Object.entries(input.resources)) {
    r.policies.forEach((pname, i) => {
      if (!Object.hasOwn(input.policies, pname) && !Object.hasOwn(BUILTIN_POLICIES, pname)) {
        add('error', `resources.${rname}.policies[${i}]`, `policy ${pname} is not defined and is not a built-in policy`);
        return;
      }
      let u = usedBy.get(pname);
      if (!u) usedBy.set(pname, (u = { kinds: new Set(), resources: [] }));
      u.kinds.add(r.kind);
      u.resources.push(rname);
    });
  }

  for (const [pname, policy] of Object.entries(input.policies)) {
    const base = `policies.${pname}`;
    const use = usedBy.get(pname);
    if (!use) add('warning', base, `policy ${pname} is not used by any resource`);
    const names = new Map<string, number>();
    policy.rules.forEach((rule, i) => {
      const rp = `${base}[${i}]`;
      const pos = rule.pos;
      const prev = names.get(rule.name);
      if (prev !== undefined) add('error', `${rp}.name`, `duplicate rule name ${rule.name} (also ${base}[${prev}]); decisions name rules, so names must be unique`, pos);
      else names.set(rule.name, i);
      lintRule(rule as EngineRule, rp, pos, use, known, opts, add);
    });
  }

  lintShadowing(input, add);
  lintUnapprovable(input, add);
  return out;
}

/**
 * A resource that lists the built-in `recommended` policy, whose approve rule cannot know your approvers, and
 * has no approve rule that names some: what that rule holds is denied at once (evaluate.ts), which the
 * operator should know. (An approve rule of the config without approvers is an error of its own, above.)
 */
/** A policy a resource lists: the config's own, else the built-in of that name. */
function listedPolicy(input: LintInput, pname: string): Policy | undefined {
  return Object.hasOwn(input.policies, pname) ? input.policies[pname] : BUILTIN_POLICIES[pname];
}

function lintUnapprovable(input: LintInput, add: Add): void {
  for (const [rname, r] of Object.entries(input.resources)) {
    const builtin = r.policies.findIndex((pname) => !Object.hasOwn(input.policies, pname) && BUILTIN_POLICIES[pname]?.rules.some((rule) => rule.action === 'approve' && !namesApprovers(rule)));
    if (builtin < 0) continue;
    const rules = r.policies.flatMap((pname) => listedPolicy(input, pname)?.rules ?? []);
    if (rules.some((rule) => rule.action === 'approve' && namesApprovers(rule))) continue;
    add(
      'warning',
      `resources.${rname}.policies[${builtin}]`,
      `${r.policies[builtin]} asks for approval of some statements (UPDATE or DELETE without WHERE) but no approve rule of resource ${rname} names approvers, so they are denied at once; add an approve rule with approvers for them if they should be approvable`,
    );
  }
}

type Add = (severity: LintFinding['severity'], path: string, message: string, pos?: SourcePos) => void;

function lintRule(
  rule: EngineRule,
  rp: string,
  pos: SourcePos | undefined,
  use: { kinds: Set<ResourceKind>; resources: string[] } | undefined,
  known: Set<string>,
  opts: LintOptions,
  add: Add,
): void {
  const w = rule.when;
  const never = (path: string, why: string): void => add('error', path, `rule ${rule.name} can never match: ${why}`, pos);
  const regex = (path: string, source: string | undefined): void => {
    if (source === undefined) return;
    try {
      new RegExp(source);
    } catch (err) {
      add('error', path, `invalid regular expression in rule ${rule.name}: ${err instanceof Error ? err.message : String(err)}`, pos);
      return;
    }
    const problem = opts.checkRegex?.(source);
    if (problem) add('error', path, `unsafe regular expression in rule ${rule.name}: ${problem}`, pos);
  };
  const emptyList = (path: string, xs: readonly unknown[] | undefined): boolean => {
    if (xs && xs.length === 0) {
      never(path, 'the list is empty (a list is any-of, so an empty one matches nothing)');
      return true;
    }
    return false;
  };
  const entities = (path: string, xs: readonly string[] | undefined): void => {
    xs?.forEach((e, i) => {
      if (!known.has(e)) add('error', `${path}[${i}]`, `unknown entity ${e} in rule ${rule.name}; known: ${[...known].sort().join(', ')}`, pos);
    });
  };

  if (w) {
    const protocols = (['sql', 'http', 'ssh'] as const).filter((k) => w[k] !== undefined);
    if (protocols.length > 1) never(`${rp}.when`, `it has both ${protocols.join(' and ')} conditions and an action is only one of them`);
    for (const proto of protocols) {
      if (use && !use.kinds.has(PROTOCOL_OF[proto])) {
        never(`${rp}.when.${proto}`, `it has a ${proto} condition but the policy is only used by ${[...use.kinds].join('/')} resources (${use.resources.join(', ')})`);
      }
    }
    if (w.identity) {
      emptyList(`${rp}.when.identity.groups`, w.identity.groups);
      emptyList(`${rp}.when.identity.subjects`, w.identity.subjects);
    }
    if (w.sql) {
      const s = w.sql;
      if (!emptyList(`${rp}.when.sql.statements`, s.statements)) {
        s.statements?.forEach((k, i) => {
          if (!KINDS.has(k)) never(`${rp}.when.sql.statements[${i}]`, `${String(k)} is not a statement kind (${SQL_STATEMENT_KINDS.join(' ')})`);
        });
      }
      emptyList(`${rp}.when.sql.tables`, s.tables);
      emptyList(`${rp}.when.sql.functions`, s.functions);
      regex(`${rp}.when.sql.text`, s.text);
      if (s.noWhere === true && s.statements && !s.statements.some((k) => k === 'update' || k === 'delete' || k === 'unknown') && rule.action === 'allow') {
        never(`${rp}.when.sql`, 'noWhere only holds for statements that update or delete');
      }
    }
    if (w.http) {
      emptyList(`${rp}.when.http.methods`, w.http.methods);
      emptyList(`${rp}.when.http.paths`, w.http.paths);
      w.http.paths?.forEach((p, i) => {
        if (!p.startsWith('/') && !p.startsWith('*')) never(`${rp}.when.http.paths[${i}]`, `path glob ${p} does not start with / and request paths always do`);
      });
      regex(`${rp}.when.http.text`, w.http.text);
    }
    if (w.ssh) {
      if (!emptyList(`${rp}.when.ssh.channels`, w.ssh.channels)) {
        w.ssh.channels?.forEach((c, i) => {
          if (!CHANNELS.has(c)) never(`${rp}.when.ssh.channels[${i}]`, `${String(c)} is not a channel kind (${SSH_CHANNEL_KINDS.join(' ')})`);
        });
      }
      regex(`${rp}.when.ssh.command`, w.ssh.command);
      // The SSH tunnel matches `command` against an exec's command line, each line typed into a shell and a
      // forward's `host:port`; `paths` against the files a download reads (sftp, scp -f over exec).
      if (w.ssh.command !== undefined && w.ssh.channels && !w.ssh.channels.some((c) => c === 'exec' || c === 'shell' || c === 'forward')) {
        never(`${rp}.when.ssh`, 'only exec channels (their command line), shell lines and forward channels (host:port) carry something for command to match');
      }
      if (w.ssh.paths !== undefined && w.ssh.command !== undefined) {
        never(`${rp}.when.ssh`, 'a file read has no command line and a command has no file path: a rule with both paths and command never matches (write two rules)');
      }
      if (w.ssh.paths !== undefined && w.ssh.channels && !w.ssh.channels.some((c) => c === 'exec' || c === 'sftp')) {
        never(`${rp}.when.ssh`, 'only sftp channels and scp -f over exec read files for paths to match');
      }
    }
    if (!emptyList(`${rp}.when.entities`, w.entities)) entities(`${rp}.when.entities`, w.entities);
  }

  switch (rule.action) {
    case 'approve':
      if (!rule.approvers || rule.approvers.length === 0) add('error', `${rp}.approvers`, `approve rule ${rule.name} names no approvers; nobody could approve`, pos);
      break;
    case 'mask':
      if (!rule.columns?.length && !rule.entities?.length) add('error', rp, `mask rule ${rule.name} has neither columns nor entities, so it masks nothing`, pos);
      entities(`${rp}.entities`, rule.entities);
      if (rule.keep !== undefined && rule.with !== 'partial') add('warning', `${rp}.keep`, `keep only applies to the partial masker (rule ${rule.name} uses ${rule.with ?? 'the default'})`, pos);
      if (rule.restore && rule.with !== 'pseudonymize') add('warning', `${rp}.restore`, `restore only applies to the pseudonymize masker (rule ${rule.name} uses ${rule.with ?? 'the default'})`, pos);
      break;
    case 'limit':
      if (rule.maxRows === undefined && rule.maxBytes === undefined && rule.maxBodyBytes === undefined && rule.ratePerMinute === undefined) {
        add('error', rp, `limit rule ${rule.name} sets no limit (maxRows, maxBytes, maxBodyBytes or ratePerMinute)`, pos);
      }
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Shadowing: D covers R when every condition D has is implied by a condition R has (key by key).

function subset(r: readonly string[] | undefined, d: readonly string[] | undefined, norm = (s: string) => s): boolean {
  if (d === undefined) return true;
  if (r === undefined || r.length === 0) return false;
  const ds = new Set(d.map(norm));
  return r.every((x) => ds.has(norm(x)));
}

/** Name pattern d matches everything name pattern r matches (no globs in r; d may be `*` parts or a suffix). */
function nameCovers(d: string, r: string): boolean {
  const dp = d.toLowerCase().split('.');
  const rp = r.toLowerCase().split('.');
  if (rp.some((p) => p.includes('*'))) return d === r;
  if (dp.length > rp.length) return false;
  for (let i = 1; i <= dp.length; i++) {
    const a = dp[dp.length - i]!;
    if (a !== '*' && a !== rp[rp.length - i]) return false;
  }
  return true;
}

function namesCovered(r: readonly string[] | undefined, d: readonly string[] | undefined): boolean {
  if (d === undefined) return true;
  if (r === undefined || r.length === 0) return false;
  return r.every((x) => d.some((y) => nameCovers(y, x)));
}

function covers(D: EngineRule, R: EngineRule): boolean {
  const d = D.when;
  if (!d) return true;
  const r = R.when ?? {};
  if (d.identity) {
    if (!r.identity) return false;
    if (!subset(r.identity.groups, d.identity.groups, (g) => g.replace(/^group:/, ''))) return false;
    if (!subset(r.identity.subjects, d.identity.subjects)) return false;
    if (d.identity.kind && r.identity.kind !== d.identity.kind) return false;
  }
  if (d.sql) {
    const ds = d.sql;
    const rs = r.sql;
    if (!rs) return false;
    if (!subset(rs.statements, ds.statements)) return false;
    if (!namesCovered(rs.tables, ds.tables)) return false;
    if (!namesCovered(rs.functions, ds.functions)) return false;
    if (!subset(rs.commands, ds.commands, (c) => c.toUpperCase())) return false;
    if (ds.text !== undefined && rs.text !== ds.text) return false;
    if (ds.noWhere !== undefined && rs.noWhere !== ds.noWhere) return false;
  }
  if (d.http) {
    const rh = r.http;
    if (!rh) return false;
    if (!subset(rh.methods, d.http.methods, (m) => m.toUpperCase())) return false;
    if (d.http.paths && !d.http.paths.includes('/**') && !subset(rh.paths, d.http.paths)) return false;
    if (d.http.text !== undefined && rh.text !== d.http.text) return false;
  }
  if (d.ssh) {
    const rh = r.ssh;
    if (!rh) return false;
    if (!subset(rh.channels, d.ssh.channels)) return false;
    if (d.ssh.command !== undefined && rh.command !== d.ssh.command) return false;
    if (d.ssh.paths && !subset(rh.paths, d.ssh.paths)) return false;
  }
  if (d.entities && !subset(r.entities, d.entities)) return false;
  return true;
}

function lintShadowing(input: LintInput, add: Add): void {
  const reported = new Set<string>();
  for (const r of Object.values(input.resources)) {
    const flat: { policy: string; index: number; rule: EngineRule }[] = [];
    for (const pname of r.policies) {
      const p = listedPolicy(input, pname);
      p?.rules.forEach((rule, index) => flat.push({ policy: pname, index, rule: rule as EngineRule }));
    }
    flat.forEach((R, j) => {
      const rs = STRICT[R.rule.action];
      if (!rs || BUILTIN_POLICIES[R.policy] && !Object.hasOwn(input.policies, R.policy)) return;
      const key = `${R.policy}\u0000${R.index}`;
      if (reported.has(key)) return;
      for (let i = 0; i < flat.length; i++) {
        if (i === j) continue;
        const D = flat[i]!;
        const ds = STRICT[D.rule.action];
        // Among equals the first decides, except that an approve rule naming approvers goes before one naming none.
        const approverOrder = R.rule.action === 'approve' && namesApprovers(R.rule) !== namesApprovers(D.rule);
        const earlierEqual = ds === rs && i < j && !(approverOrder && namesApprovers(R.rule));
        const approvableFirst = ds === rs && approverOrder && namesApprovers(D.rule);
        if (!(ds > rs || earlierEqual || approvableFirst)) continue;
        if (!covers(D.rule, R.rule)) continue;
        reported.add(key);
        add(
          'warning',
          `policies.${R.policy}[${R.index}]`,
          `rule ${R.rule.name} can never decide: policy ${D.policy} rule ${D.rule.name} (${D.rule.action}) matches everything it matches${ds !== rs ? ' and is stricter' : approvableFirst ? ' and names approvers' : ' and comes first'}`,
          R.rule.pos,
        );
        break;
      }
    });
  }
}
