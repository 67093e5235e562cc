/**
 * `parseConfig`: YAML text → validated `Config`, pure (no I/O). The YAML is parsed into a document tree
 * (keeping source ranges), then walked against `CONFIG_SCHEMA`, then cross-checked (references between
 * resources, policies, tests and detectors). Every problem is collected with its `file:line:col` and key path,
 * and all of them are thrown at once as one `CONFIG_INVALID` error.
 *
 * Values of keys marked `sensitive` in the schema are never quoted in a message.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node as YamlNode, YAMLMap } from 'yaml';
import { DlpctlError } from '../errors.js';
import { checkFormat, isLoopbackHost, parseListen, SECRET_PLACEHOLDER } from './formats.js';
import { BUILTIN_POLICY_NAMES, CONFIG_SCHEMA, ENTITY_GROUP_NAMES } from './schema.js';
import type { ObjectNode, SchemaNode, StringNode, VariantNode } from './schema.js';
import { scanSecretString } from './secrets.js';
import { tryParseDuration, tryParseSize } from './units.js';
import type { Config, CustomDetector, Policy, PolicyTestCase, Resource, Rule, SourcePos } from './types.js';

export interface ParseHooks {
  /** Called for every regular expression in the config; a non-null reason becomes a positioned error. */
  checkRegex?: (source: string) => string | null;
  /** Entity names the DLP engine knows; enables the unknown-entity check (custom detector names are added). */
  knownEntities?: ReadonlySet<string>;
  /** Validator names custom detectors may use; without it any name is accepted. */
  knownValidators?: ReadonlySet<string>;
  /** The name used in messages instead of `file` (for example a path relative to the working directory). */
  displayFile?: string;
}

interface Problem {
  line: number;
  col: number;
  path: string;
  message: string;
  seq: number;
}

const INVALID: unique symbol = Symbol('invalid');
type Walked = unknown;

interface Ctx {
  doc: Document;
  lc: LineCounter;
  file: string;
  hooks: ParseHooks;
  problems: Problem[];
  /** key path → position of its value (or of its key when the value is empty). */
  pos: Map<string, SourcePos>;
  /** key path → position of its key. */
  keyPos: Map<string, SourcePos>;
  /** map path → the keys written in it, valid or not. */
  mapKeys: Map<string, string[]>;
  entityRefs: { name: string; path: string; pos: SourcePos }[];
}

// ── helpers ─────────────────────────────────────────────────────────────────────────────────────────────────

/** Edit distance counting an adjacent transposition as one edit (`tsl` → `tls`), as typos go. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => (d[i] as number[])[j] as number;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = v;
    }
  }
  return at(a.length, b.length);
}

/** The closest candidate when it is close enough to be a plausible typo. */
export function closestMatch(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const w = word.toLowerCase();
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  if (best === undefined) return undefined;
  const limit = Math.max(1, Math.floor(Math.max(word.length, best.length) / 3));
  return bestD <= limit ? best : undefined;
}

const didYouMean = (word: string, candidates: Iterable<string>): string => {
  const m = closestMatch(word, candidates);
  return m === undefined ? '' : ` (did you mean \`${m}\`?)`;
};

function posAt(ctx: Ctx, node: YamlNode | null | undefined, fallback?: SourcePos): SourcePos {
  const off = node?.range?.[0];
  if (off === undefined) return fallback ?? { file: ctx.file, line: 1, col: 1 };
  const { line, col } = ctx.lc.linePos(off);
  return { file: ctx.file, line, col };
}

function report(ctx: Ctx, at: SourcePos, path: string, message: string): void {
  ctx.problems.push({ line: at.line, col: at.col, path, message, seq: ctx.problems.length });
}

function resolveAlias(ctx: Ctx, node: unknown): YamlNode | null {
  if (node === null || node === undefined) return null;
  if (isAlias(node)) return (node.resolve(ctx.doc) as YamlNode | undefined) ?? null;
  return node as YamlNode;
}

function describeNode(node: YamlNode | null): string {
  if (node === null) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'nothing';
    if (typeof v === 'string') return 'a string';
    if (typeof v === 'boolean') return 'a boolean';
    if (typeof v === 'number' || typeof v === 'bigint') return 'a number';
  }
  return 'an unsupported value';
}

const quote = (v: unknown): string => {
  const s = typeof v === 'string' ? v : String(v);
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);
};

const joinPath = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

function expectedOf(schema: SchemaNode): string {
  switch (schema.type) {
    case 'string':
      return schema.values !== undefined ? `one of ${schema.values.join(', ')}` : 'a string';
    case 'regex':
      return 'a regular expression (a string)';
    case 'integer':
      return 'an integer';
    case 'boolean':
      return 'true or false';
    case 'duration':
      return 'a duration such as 15m, 1h30m or 500ms';
    case 'size':
      return 'a size such as 512, 1KiB or 50MB';
    case 'list':
      return 'a list';
    default:
      return 'a mapping';
  }
}

function typeError(ctx: Ctx, at: SourcePos, path: string, schema: SchemaNode, node: YamlNode | null): typeof INVALID {
  const got = describeNode(node);
  let hint = '';
  if (schema.type === 'string' && isScalar(node) && (typeof node.value === 'number' || typeof node.value === 'boolean')) {
    hint = '; quote it to make it text';
  }
  report(ctx, at, path, `must be ${expectedOf(schema)} (got ${got}${hint})`);
  return INVALID;
}

// ── the walk ────────────────────────────────────────────────────────────────────────────────────────────────

function walk(ctx: Ctx, raw: unknown, schema: SchemaNode, path: string, fallback: SourcePos): Walked {
  const node = resolveAlias(ctx, raw);
  const at = posAt(ctx, node, fallback);
  ctx.pos.set(path, at);
  switch (schema.type) {
    case 'string':
      return walkString(ctx, node, schema, path, at);
    case 'regex': {
      if (!isScalar(node) || typeof node.value !== 'string') return typeError(ctx, at, path, schema, node);
      const source = node.value;
      let reason: string | null;
      if (ctx.hooks.checkRegex !== undefined) {
        reason = ctx.hooks.checkRegex(source);
      } else {
        try {
          new RegExp(source);
          reason = null;
        } catch (err) {
          reason = (err as Error).message.replace(/^Invalid regular expression: /, '');
        }
      }
      if (reason !== null) {
        report(ctx, at, path, `invalid regular expression: ${reason}`);
        return INVALID;
      }
      return source;
    }
    case 'integer': {
      if (!isScalar(node) || typeof node.value !== 'number' || !Number.isInteger(node.value)) return typeError(ctx, at, path, schema, node);
      const v = node.value;
      if (schema.values !== undefined && !schema.values.includes(v)) {
        report(ctx, at, path, `must be ${schema.values.join(' or ')} (got ${v})`);
        return INVALID;
      }
      if (schema.min !== undefined && v < schema.min) {
        report(ctx, at, path, `must be at least ${schema.min} (got ${v})`);
        return INVALID;
      }
      if (schema.max !== undefined && v > schema.max) {
        report(ctx, at, path, `must be at most ${schema.max} (got ${v})`);
        return INVALID;
      }
      return v;
    }
    case 'boolean':
      if (!isScalar(node) || typeof node.value !== 'boolean') return typeError(ctx, at, path, schema, node);
      return node.value;
    case 'duration': {
      if (isScalar(node) && typeof node.value === 'number') {
        report(ctx, at, path, `a duration needs a unit, e.g. ${node.value}s or ${node.value}m (units: ms, s, m, h, d, w)`);
        return INVALID;
      }
      if (!isScalar(node) || typeof node.value !== 'string') return typeError(ctx, at, path, schema, node);
      const ms = tryParseDuration(node.value);
      if (ms === null) {
        report(ctx, at, path, `must be a duration such as 15m, 1h30m, 500ms or 90d (got ${quote(node.value)})`);
        return INVALID;
      }
      if (schema.min !== undefined && ms < schema.min) {
        report(ctx, at, path, `must be at least ${schema.min}ms (got ${quote(node.value)})`);
        return INVALID;
      }
      return ms;
    }
    case 'size': {
      if (!isScalar(node) || (typeof node.value !== 'string' && typeof node.value !== 'number')) return typeError(ctx, at, path, schema, node);
      const bytes = tryParseSize(node.value);
      if (bytes === null) {
        report(ctx, at, path, `must be a size such as 512, 64KB, 1KiB or 50MB (got ${quote(node.value)})`);
        return INVALID;
      }
      if (schema.min !== undefined && bytes < schema.min) {
        report(ctx, at, path, `must be at least ${schema.min} bytes (got ${quote(node.value)})`);
        return INVALID;
      }
      return bytes;
    }
    case 'list': {
      if (!isSeq(node)) return typeError(ctx, at, path, schema, node);
      const out: unknown[] = node.items.map((item, i) => {
        const v = walk(ctx, item, schema.items, `${path}[${i}]`, at);
        return v === INVALID ? undefined : v;
      });
      if (schema.minItems !== undefined && out.length < schema.minItems) {
        report(ctx, at, path, `needs at least ${schema.minItems} entr${schema.minItems === 1 ? 'y' : 'ies'}`);
      }
      return out;
    }
    case 'map': {
      if (!isMap(node)) return typeError(ctx, at, path, schema, node);
      const out: Record<string, unknown> = {};
      const keys: string[] = [];
      ctx.mapKeys.set(path, keys);
      for (const pair of node.items) {
        const keyNode = resolveAlias(ctx, pair.key);
        const keyAt = posAt(ctx, keyNode, at);
        if (!isScalar(keyNode) || (typeof keyNode.value !== 'string' && typeof keyNode.value !== 'number')) {
          report(ctx, keyAt, path, `keys must be strings (got ${describeNode(keyNode)})`);
          continue;
        }
        const key = String(keyNode.value);
        keys.push(key);
        const p = joinPath(path, key);
        ctx.keyPos.set(p, keyAt);
        if (schema.keyFormat !== undefined) {
          const why = checkFormat(schema.keyFormat, key);
          if (why !== null) {
            report(ctx, keyAt, path, `key ${quote(key)} ${why}`);
            continue;
          }
        }
        const v = walk(ctx, pair.value, schema.values, p, keyAt);
        if (v !== INVALID) out[key] = v;
      }
      return out;
    }
    case 'object':
      if (!isMap(node)) return typeError(ctx, at, path, schema, node);
      return walkObject(ctx, node, schema, path, at);
    case 'variant':
      if (!isMap(node)) return typeError(ctx, at, path, schema, node);
      return walkVariant(ctx, node, schema, path, at);
  }
}

function walkString(ctx: Ctx, node: YamlNode | null, schema: StringNode, path: string, at: SourcePos): Walked {
  let value: string;
  if (isScalar(node) && typeof node.value === 'string') {
    value = node.value;
  } else if (isScalar(node) && node.value === null && schema.values?.includes('null') === true && (node as { source?: string }).source === 'null') {
    value = 'null'; // `with: null` — the YAML null is the masker's name here
  } else {
    return typeError(ctx, at, path, schema, node);
  }
  if (schema.normalize === 'upper') value = value.toUpperCase();
  if (schema.normalize === 'lower') value = value.toLowerCase();
  const sensitive = schema.sensitive === true || schema.secret === true;

  if (schema.values !== undefined && !schema.values.includes(value)) {
    const got = sensitive ? '' : ` (got ${quote(value)}${didYouMean(value, schema.values).replace(/^ \((.*)\)$/, '; $1')})`;
    report(ctx, at, path, `must be one of ${schema.values.join(', ')}${got}`);
    return INVALID;
  }

  let checked = value;
  let result: unknown = value;
  if (schema.secret === true) {
    const scan = scanSecretString(value);
    if (!scan.ok) {
      report(ctx, at, path, scan.message);
      return INVALID;
    }
    result = scan.value;
    for (const ref of scan.value.refs) checked = checked.split(ref.text).join(SECRET_PLACEHOLDER);
  } else if (/\$\{(env|file|keychain):/.test(value) && schema.format !== 'env-template') {
    report(ctx, at, path, 'does not take secret references; only credential keys (password, headers, clientSecret, privateKey, …) are resolved');
    return INVALID;
  }
  if (schema.format !== undefined) {
    const why = checkFormat(schema.format, checked);
    if (why !== null) {
      report(ctx, at, path, why);
      return INVALID;
    }
    if (schema.format === 'entity') ctx.entityRefs.push({ name: value, path, pos: at });
  }
  return result;
}

function unknownKey(ctx: Ctx, at: SourcePos, path: string, key: string, schema: ObjectNode, otherVariants?: { name: string; node: ObjectNode }[], variantLabel?: string): void {
  const owners = otherVariants?.filter((v) => key in v.node.keys).map((v) => v.name) ?? [];
  if (owners.length > 0 && variantLabel !== undefined) {
    report(ctx, at, path, `unknown key \`${key}\` for ${variantLabel} (it belongs to ${owners.join(', ')} resources)`);
    return;
  }
  const where = path === '' ? 'at the top level' : `in ${path}`;
  const extra = key === '<<' ? ' (YAML merge keys are not supported)' : didYouMean(key, Object.keys(schema.keys));
  report(ctx, at, joinPath(path, key), `unknown key \`${key}\` ${where}${extra}`);
}

function walkObject(
  ctx: Ctx,
  node: YAMLMap,
  schema: ObjectNode,
  path: string,
  at: SourcePos,
  variant?: { label: string; others: { name: string; node: ObjectNode }[] },
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const present = new Map<string, SourcePos>();
  for (const pair of node.items) {
    const keyNode = resolveAlias(ctx, pair.key);
    const keyAt = posAt(ctx, keyNode, at);
    if (!isScalar(keyNode) || typeof keyNode.value !== 'string') {
      report(ctx, keyAt, path, `keys must be strings (got ${describeNode(keyNode)})`);
      continue;
    }
    const key = keyNode.value;
    const child = Object.hasOwn(schema.keys, key) ? schema.keys[key] : undefined;
    if (child === undefined) {
      unknownKey(ctx, keyAt, path, key, schema, variant?.others, variant?.label);
      continue;
    }
    const p = joinPath(path, key);
    present.set(key, keyAt);
    ctx.keyPos.set(p, keyAt);
    const v = walk(ctx, pair.value, child, p, keyAt);
    if (v !== INVALID) out[key] = v;
  }

  const holds = (conds: SchemaNode['onlyWhen']): boolean | undefined => {
    for (const c of conds ?? []) {
      const sib = out[c.key];
      if (typeof sib !== 'string') return undefined; // unknown: the sibling is missing or invalid
      if (!c.values.includes(sib)) return false;
    }
    return true;
  };

  // Defaults, in schema order so that a default may depend on an earlier one (`keep` on `with`).
  for (const [key, child] of Object.entries(schema.keys)) {
    if (present.has(key) || child.default === undefined) continue;
    if (holds(child.onlyWhen) === true) out[key] = structuredClone(child.default);
  }

  for (const [key, keyAt] of present) {
    const child = schema.keys[key] as SchemaNode;
    for (const c of child.onlyWhen ?? []) {
      const sib = out[c.key];
      if (typeof sib === 'string' && !c.values.includes(sib)) {
        report(ctx, keyAt, joinPath(path, key), `\`${key}\` is only allowed when ${c.key} is ${c.values.join(' or ')} (${c.key} is ${sib})`);
        delete out[key];
        break;
      }
    }
  }

  for (const [key, child] of Object.entries(schema.keys)) {
    if (child.required === true && !present.has(key)) {
      const hint = child.type === 'string' && child.values !== undefined ? ` (${child.values.join(', ')})` : '';
      report(ctx, at, path, `missing required key \`${key}\`${hint}`);
    }
  }

  for (const c of schema.constraints ?? []) {
    if (c.when !== undefined) {
      const sib = out[c.when.key];
      if (typeof sib !== 'string' || !c.when.values.includes(sib)) continue;
    }
    const found = c.keys.filter((k) => present.has(k));
    if (c.kind === 'anyOf' && found.length === 0) report(ctx, at, path, c.message);
    if (c.kind === 'exactlyOne' && found.length !== 1) {
      report(ctx, at, path, found.length === 0 ? c.message : `${c.message} (found ${found.join(', ')})`);
    }
  }
  return out;
}

function walkVariant(ctx: Ctx, node: YAMLMap, schema: VariantNode, path: string, at: SourcePos): Walked {
  const names = Object.keys(schema.variants);
  const pair = node.items.find((p) => {
    const k = resolveAlias(ctx, p.key);
    return isScalar(k) && k.value === schema.discriminator;
  });
  if (pair === undefined) {
    report(ctx, at, path, `missing required key \`${schema.discriminator}\` (${names.join(', ')})`);
    return INVALID;
  }
  const d = resolveAlias(ctx, pair.value);
  const dAt = posAt(ctx, d, posAt(ctx, resolveAlias(ctx, pair.key)));
  const dPath = joinPath(path, schema.discriminator);
  if (!isScalar(d) || typeof d.value !== 'string' || !Object.hasOwn(schema.variants, d.value)) {
    const got = isScalar(d) && typeof d.value === 'string' ? ` (got ${quote(d.value)}${didYouMean(d.value, names).replace(/^ \((.*)\)$/, '; $1')})` : ` (got ${describeNode(d)})`;
    report(ctx, dAt, dPath, `must be one of ${names.join(', ')}${got}`);
    return INVALID;
  }
  const name = d.value;
  const others = Object.entries(schema.variants)
    .filter(([n]) => n !== name)
    .map(([n, v]) => ({ name: n, node: v }));
  return walkObject(ctx, node, schema.variants[name] as ObjectNode, path, at, { label: `a ${name} resource`, others });
}

// ── cross checks ────────────────────────────────────────────────────────────────────────────────────────────

type Loose = Record<string, unknown>;
const asRecord = (v: unknown): Loose => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Loose) : {});
const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function crossCheck(ctx: Ctx, root: Loose): void {
  const fallback: SourcePos = { file: ctx.file, line: 1, col: 1 };
  const at = (p: string): SourcePos => ctx.pos.get(p) ?? ctx.keyPos.get(p) ?? fallback;
  const policies = asRecord(root['policies']);
  const resources = asRecord(root['resources']);
  const definedPolicies = new Set(ctx.mapKeys.get('policies') ?? []);
  const definedResources = new Set(ctx.mapKeys.get('resources') ?? []);
  const knownPolicies = new Set([...definedPolicies, ...BUILTIN_POLICY_NAMES]);

  for (const name of definedPolicies) {
    if (BUILTIN_POLICY_NAMES.has(name)) {
      report(ctx, ctx.keyPos.get(`policies.${name}`) ?? fallback, `policies.${name}`, `\`${name}\` is a built-in policy; give yours another name`);
    }
  }

  // Rule names are unique within a policy.
  for (const [pname, rules] of Object.entries(policies)) {
    const seen = new Map<string, SourcePos>();
    asArray(rules).forEach((rule, i) => {
      const rname = asRecord(rule)['name'];
      if (typeof rname !== 'string') return;
      const p = `policies.${pname}[${i}].name`;
      const first = seen.get(rname);
      if (first !== undefined) report(ctx, at(p), p, `duplicate rule name \`${rname}\` in policy ${pname} (first at line ${first.line})`);
      else seen.set(rname, at(p));
    });
  }

  for (const [rname, resource] of Object.entries(resources)) {
    const r = asRecord(resource);
    asArray(r['policies']).forEach((pol, i) => {
      if (typeof pol !== 'string' || knownPolicies.has(pol)) return;
      const p = `resources.${rname}.policies[${i}]`;
      report(ctx, at(p), p, `no policy named \`${pol}\`${didYouMean(pol, knownPolicies)}; define it under policies: or use a built-in (${[...BUILTIN_POLICY_NAMES].join(', ')})`);
    });
    const listen = typeof r['listen'] === 'string' ? parseListen(r['listen']) : null;
    if (listen !== null && !isLoopbackHost(listen.host) && r['serverTls'] === undefined) {
      const p = `resources.${rname}.listen`;
      report(ctx, at(p), p, 'listening on a non-loopback address needs `serverTls` (cert and key), or listen on 127.0.0.1');
    }
  }

  // Detectors: unique names, not shadowing built-in entities, known validators.
  const detectorNames = new Set<string>();
  asArray(root['detectors']).forEach((det, i) => {
    const d = asRecord(det);
    const name = d['name'];
    if (typeof name === 'string') {
      const p = `detectors[${i}].name`;
      if (detectorNames.has(name)) report(ctx, at(p), p, `duplicate detector name \`${name}\``);
      else if (ctx.hooks.knownEntities?.has(name) === true || ENTITY_GROUP_NAMES.has(name)) report(ctx, at(p), p, `\`${name}\` is a built-in entity; give the detector another name`);
      detectorNames.add(name);
    }
    const validator = d['validator'];
    if (typeof validator === 'string' && ctx.hooks.knownValidators !== undefined && !ctx.hooks.knownValidators.has(validator)) {
      const p = `detectors[${i}].validator`;
      report(ctx, at(p), p, `unknown validator ${quote(validator)}${didYouMean(validator, ctx.hooks.knownValidators)}; known: ${[...ctx.hooks.knownValidators].join(', ')}`);
    }
  });

  if (ctx.hooks.knownEntities !== undefined) {
    const known = new Set([...ctx.hooks.knownEntities, ...ENTITY_GROUP_NAMES, ...detectorNames]);
    for (const ref of ctx.entityRefs) {
      if (!known.has(ref.name)) report(ctx, ref.pos, ref.path, `unknown entity \`${ref.name}\`${didYouMean(ref.name, known)}`);
    }
  }

  // Tests.
  const testNames = new Map<string, number>();
  asArray(root['tests']).forEach((test, i) => {
    const t = asRecord(test);
    const base = `tests[${i}]`;
    const name = t['name'];
    if (typeof name === 'string') {
      const first = testNames.get(name);
      if (first !== undefined) report(ctx, at(`${base}.name`), `${base}.name`, `duplicate test name (same as tests[${first}])`);
      else testNames.set(name, i);
    }
    if (t['masked'] !== undefined && t['sample'] === undefined) report(ctx, at(`${base}.masked`), `${base}.masked`, '`masked` needs a `sample` to mask');
    const ssh = t['ssh'];
    if (ssh !== undefined) {
      const s = asRecord(ssh);
      if ((s['channel'] ?? 'exec') === 'exec' && s['command'] === undefined) report(ctx, at(`${base}.ssh`), `${base}.ssh`, 'an exec test needs `command`');
    }
    const resName = t['resource'];
    if (typeof resName !== 'string') return;
    if (!definedResources.has(resName)) {
      report(ctx, at(`${base}.resource`), `${base}.resource`, `no resource named \`${resName}\`${didYouMean(resName, definedResources)}`);
      return;
    }
    const res = asRecord(resources[resName]);
    const kind = res['kind'];
    const wants = { postgres: 'sql', http: 'http', ssh: 'ssh' } as const;
    if (kind === 'postgres' || kind === 'http' || kind === 'ssh') {
      for (const k of ['sql', 'http', 'ssh'] as const) {
        if (t[k] !== undefined && k !== wants[kind]) {
          report(ctx, at(`${base}.${k}`), `${base}.${k}`, `resource \`${resName}\` is a ${kind} resource; write this test with \`${wants[kind]}:\``);
        }
      }
    }
    const rule = t['rule'];
    const resPolicies = asArray(res['policies']).filter((p): p is string => typeof p === 'string');
    if (typeof rule === 'string' && resPolicies.every((p) => definedPolicies.has(p))) {
      const ruleNames = resPolicies.flatMap((p) => asArray(policies[p]).map((r) => asRecord(r)['name']).filter((n): n is string => typeof n === 'string'));
      if (!ruleNames.includes(rule)) {
        report(ctx, at(`${base}.rule`), `${base}.rule`, `no rule \`${rule}\` in the policies of \`${resName}\`${didYouMean(rule, ruleNames)}`);
      }
    }
  });
}

// ── building the Config ─────────────────────────────────────────────────────────────────────────────────────

function build(ctx: Ctx, root: Loose, file: string): Config {
  const fallback: SourcePos = { file: ctx.file, line: 1, col: 1 };
  const resources: Record<string, Resource> = {};
  for (const [name, value] of Object.entries(asRecord(root['resources']))) {
    const r = { ...asRecord(value) };
    const listen = parseListen(typeof r['listen'] === 'string' ? r['listen'] : '127.0.0.1:0');
    if (listen !== null) r['listen'] = listen;
    if (r['kind'] === 'postgres') {
      const tls = { ...asRecord(r['tls']) };
      if (tls['mode'] === undefined) {
        let host = '';
        try {
          host = new URL(String(r['target'])).hostname;
        } catch {
          /* validated already */
        }
        tls['mode'] = isLoopbackHost(host) ? 'disable' : 'require';
      }
      r['tls'] = tls;
    }
    resources[name] = { ...r, name, pos: ctx.keyPos.get(`resources.${name}`) ?? fallback } as unknown as Resource;
  }
  const policies: Record<string, Policy> = {};
  for (const [name, rules] of Object.entries(asRecord(root['policies']))) {
    policies[name] = {
      name,
      rules: asArray(rules).map((rule, i) => ({ ...asRecord(rule), pos: ctx.pos.get(`policies.${name}[${i}]`) ?? fallback }) as unknown as Rule),
    };
  }
  const tests = asArray(root['tests']).map((t, i) => ({ ...asRecord(t), pos: ctx.pos.get(`tests[${i}]`) ?? fallback }) as unknown as PolicyTestCase);
  const config: Config = {
    version: 1,
    file,
    resources,
    policies,
    detectors: asArray(root['detectors']) as CustomDetector[],
    tests,
  };
  if (root['identity'] !== undefined) config.identity = root['identity'] as Config['identity'] & object;
  const store = root['store'];
  if (store !== undefined) config.store = (store as { raw: string }).raw;
  if (root['approvals'] !== undefined) config.approvals = root['approvals'] as Config['approvals'] & object;
  if (root['audit'] !== undefined) config.audit = root['audit'] as Config['audit'] & object;
  return config;
}

// ── entry point ─────────────────────────────────────────────────────────────────────────────────────────────

/** yaml's messages can quote source text (`… in YAML stream: "hunter2"`); keep only the description. */
function sanitizeYamlMessage(message: string): string {
  return message
    .replace(/ token in YAML stream: .*$/s, ' token')
    .replace(/: ".*"$/s, '')
    .replace(/\s+/g, ' ')
    .trim();
}

export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  /** Key path, e.g. `resources.db.tls.mode`; empty for a problem of the file as a whole. */
  path: string;
  message: string;
}

const problemsOf = new WeakMap<DlpctlError, ConfigProblem[]>();

/** The problems behind a CONFIG_INVALID error thrown by `parseConfig`, one per detail line (`policy lint --json`). */
export function configProblems(err: DlpctlError): ConfigProblem[] | undefined {
  return problemsOf.get(err);
}

/**
 * Parses and validates the text of a dlpctl.yaml. Pure: no file system, no environment. Throws one
 * `DlpctlError('CONFIG_INVALID')` whose `details` list every problem as `FILE:LINE:COL: KEY.PATH: what is wrong`.
 */
export function parseConfig(text: string, file: string, hooks: ParseHooks = {}): Config {
  const display = hooks.displayFile ?? file;
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const ctx: Ctx = {
    doc,
    lc,
    file,
    hooks,
    problems: [],
    pos: new Map(),
    keyPos: new Map(),
    mapKeys: new Map(),
    entityRefs: [],
  };
  const lines = text.split(/\r?\n/);
  const seenLines = new Set<number>();
  let fatal = false;
  for (const e of [...doc.errors, ...doc.warnings]) {
    const { line, col } = lc.linePos(e.pos[0]);
    if (e.code !== 'DUPLICATE_KEY' && e.name === 'YAMLParseError') fatal = true;
    if (seenLines.has(line)) continue; // one syntax error per line; the rest are consequences
    seenLines.add(line);
    let message = e.code === 'DUPLICATE_KEY' ? 'duplicate key (a key may appear once in a mapping)' : `YAML: ${sanitizeYamlMessage(e.message)}`;
    if (e.code !== 'DUPLICATE_KEY' && (lines[line - 1] ?? '').includes('${')) {
      message += ' (inside { } or [ ], quote values that contain ${…}, e.g. ca: "${file:/etc/ssl/ca.pem}")';
    }
    report(ctx, { file, line, col }, '', message);
  }

  let root: Loose = {};
  if (!fatal) {
    const contents = doc.contents as YamlNode | null;
    if (contents === null || (isScalar(contents) && contents.value === null)) {
      report(ctx, { file, line: 1, col: 1 }, '', 'the file is empty; a config needs at least `version: 1`');
    } else {
      const v = walk(ctx, contents, CONFIG_SCHEMA, '', { file, line: 1, col: 1 });
      if (v !== INVALID) {
        root = asRecord(v);
        crossCheck(ctx, root);
      }
    }
  }

  if (ctx.problems.length > 0) {
    const sorted = [...ctx.problems].sort((a, b) => a.line - b.line || a.col - b.col || a.seq - b.seq);
    const details = sorted.map((p) => `${display}:${p.line}:${p.col}: ${p.path === '' ? '' : `${p.path}: `}${p.message}`);
    const n = details.length;
    const err = new DlpctlError('CONFIG_INVALID', `${display}: ${n} problem${n === 1 ? '' : 's'}`, { details });
    problemsOf.set(err, sorted.map((p) => ({ file, line: p.line, col: p.col, path: p.path, message: p.message })));
    throw err;
  }
  return build(ctx, root, file);
}
