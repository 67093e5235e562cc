/** `dlpctl policy lint | test | explain`: review, test and explain policy before it reaches production. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DlpctlError, ExitCode } from '../../errors.js';
import type { Config, PolicyTestCase, SshChannelKind } from '../../config/types.js';
import type { CommandContext } from '../context.js';
import { printJson } from '../io.js';
import { loadCliConfig } from '../load.js';

async function requireConfig(ctx: CommandContext): Promise<Config> {
  const config = await loadCliConfig(ctx, { required: true });
  if (!config) throw new DlpctlError('CONFIG_NOT_FOUND', 'no configuration file found; pass --config FILE');
  return config;
}

function where(config: Config, pos: { file: string; line: number; col: number } | undefined): string {
  if (!pos) return path.basename(config.file);
  return `${path.basename(pos.file)}:${pos.line}:${pos.col}`;
}

// ─────────────────────────────── lint ───────────────────────────────

export async function runPolicyLint(ctx: CommandContext): Promise<number> {
  let config: Config;
  try {
    config = await requireConfig(ctx);
  } catch (err) {
    // With --json, a config that does not validate is still an answer in the same shape: its problems as findings.
    if (!ctx.globals.json || !(err instanceof DlpctlError) || err.code !== 'CONFIG_INVALID') throw err;
    const { configProblems } = await import('../../config/validate.js');
    const problems = configProblems(err);
    const findings = problems
      ? problems.map((p) => ({ severity: 'error' as const, pos: { file: p.file, line: p.line, col: p.col }, path: p.path, message: p.message }))
      : [{ severity: 'error' as const, path: '', message: err.message }];
    printJson(ctx.io, { file: problems?.[0]?.file ?? ctx.globals.config ?? null, errors: findings.length, warnings: 0, findings });
    return ExitCode.usage;
  }
  const [{ lintPolicies }, dlp] = await Promise.all([import('../../policy/index.js'), import('../../dlp/index.js')]);
  const findings = lintPolicies(
    { resources: config.resources, policies: config.policies },
    { knownEntities: [...dlp.ENTITY_NAMES, ...config.detectors.map((d) => d.name)], checkRegex: dlp.checkRegexSafety },
  );
  const errors = findings.filter((f) => f.severity === 'error').length;
  if (ctx.globals.json) {
    printJson(ctx.io, { file: config.file, errors, warnings: findings.length - errors, findings });
  } else {
    const c = ctx.io.color;
    for (const f of findings) {
      const sev = f.severity === 'error' ? c.red('error') : c.yellow('warning');
      ctx.io.out(`${where(config, f.pos)}: ${sev}: ${f.path}: ${f.message}`);
    }
    ctx.io.err(findings.length === 0 ? `${c.green('✓')} ${config.file}: no problems` : `${errors} errors, ${findings.length - errors} warnings`);
  }
  return errors > 0 ? ExitCode.usage : ExitCode.ok;
}

// ─────────────────────────────── test ───────────────────────────────

const CASE_KEYS = new Set(['name', 'resource', 'as', 'sql', 'http', 'ssh', 'expect', 'rule', 'sample', 'masked']);

/** Test cases from an extra file: a YAML list, or a mapping with a `tests:` list, in the config's shape. */
async function loadExtraCases(file: string, config: Config): Promise<PolicyTestCase[]> {
  const YAML = await import('yaml');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new DlpctlError('CONFIG_NOT_FOUND', `cannot read test file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  // A syntax error is a configuration problem in that file (exit 2), located like `config validate` does.
  const lc = new YAML.LineCounter();
  const parsed = YAML.parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (parsed.errors.length > 0) {
    const details = parsed.errors.map((e) => {
      const { line, col } = lc.linePos(e.pos[0]);
      return `${file}:${line}:${col}: YAML: ${e.message.split('\n')[0]}`;
    });
    throw new DlpctlError('CONFIG_INVALID', `${file}: not valid YAML; fix the test file`, { details });
  }
  const doc = parsed.toJS() as unknown;
  const list = Array.isArray(doc) ? doc : (doc as { tests?: unknown } | null)?.tests;
  if (!Array.isArray(list)) throw new DlpctlError('CONFIG_INVALID', `${file}: expected a list of test cases, or "tests:" with a list`);
  return list.map((raw, i) => {
    const c = raw as Record<string, unknown>;
    const at = `${file}: tests[${i}]`;
    if (!c || typeof c !== 'object') throw new DlpctlError('CONFIG_INVALID', `${at}: must be a mapping`);
    for (const k of Object.keys(c)) if (!CASE_KEYS.has(k)) throw new DlpctlError('CONFIG_INVALID', `${at}.${k}: unknown key; known: ${[...CASE_KEYS].join(', ')}`);
    if (typeof c.name !== 'string') throw new DlpctlError('CONFIG_INVALID', `${at}.name: required text`);
    if (typeof c.resource !== 'string' || !config.resources[c.resource]) {
      throw new DlpctlError('CONFIG_INVALID', `${at}.resource: must name a resource of ${config.file}`);
    }
    if (c.expect !== 'allow' && c.expect !== 'deny' && c.expect !== 'approve') throw new DlpctlError('CONFIG_INVALID', `${at}.expect: allow, deny or approve`);
    return c as unknown as PolicyTestCase;
  });
}

export async function runPolicyTest(ctx: CommandContext, opts: { files: string[] }): Promise<number> {
  const config = await requireConfig(ctx);
  const [policy, dlp] = await Promise.all([import('../../policy/index.js'), import('../../dlp/index.js')]);
  await policy.initSqlParser();
  const cases = [...config.tests];
  for (const f of opts.files) cases.push(...(await loadExtraCases(path.resolve(ctx.cwd, f), config)));
  const detector = dlp.createDlpEngine({ customDetectors: config.detectors });
  const custom = config.detectors.map((d) => d.name);
  const masks = new policy.MaskEngineCache({ customDetectors: config.detectors, hashKey: Buffer.alloc(32) });
  const results = policy.runPolicyTests({ resources: config.resources, policies: config.policies }, cases, {
    detectEntities: (t) => detector.entitiesIn(t),
    expandEntities: (names) => dlp.expandEntities(names, custom),
    maskSample: (_resource, directives, sample) => masks.for(directives)?.maskText(sample).text ?? sample,
  });
  const passed = results.filter((r) => r.pass).length;
  const failed = results.length - passed;
  if (ctx.globals.json) {
    printJson(ctx.io, {
      passed,
      failed,
      results: results.map((r) => ({
        name: r.name,
        pass: r.pass,
        expected: r.expected,
        actual: r.actual,
        expectedRule: r.expectedRule ?? null,
        actualRule: r.actualRule,
        diff: r.diff,
        ...(r.masked ? { masked: r.masked } : {}),
        ...(r.pos ? { at: where(config, r.pos) } : {}),
      })),
    });
  } else {
    const c = ctx.io.color;
    for (const r of results) {
      ctx.io.out(`${r.pass ? c.green('✓') : c.red('✗')} ${r.name}${r.pass ? c.dim(` (${r.actual}${r.actualRule ? ` by ${r.actualRule}` : ''})`) : ''}`);
      if (!r.pass) {
        if (r.pos) ctx.io.out(c.dim(`    at ${where(config, r.pos)}`));
        for (const d of r.diff) ctx.io.out(`    ${d}`);
      }
    }
    if (results.length === 0) ctx.io.out(c.dim(`no test cases in ${config.file}; add them under "tests:"`));
    ctx.io.out(`${passed} passed, ${failed} failed`);
  }
  return failed > 0 ? ExitCode.error : ExitCode.ok;
}

// ─────────────────────────────── explain ───────────────────────────────

export interface ExplainOptions {
  resource: string;
  as?: string;
  group: string[];
  machine?: boolean;
  sql?: string;
  http?: string;
  body?: string;
  ssh?: string;
  channel?: string;
}

export async function runPolicyExplain(ctx: CommandContext, opts: ExplainOptions): Promise<number> {
  const given = [opts.sql, opts.http, opts.ssh].filter((x) => x !== undefined).length;
  if (given !== 1) throw new DlpctlError('USAGE', 'give exactly one of --sql TEXT, --http "METHOD PATH" or --ssh COMMAND');
  const config = await requireConfig(ctx);
  const resource = config.resources[opts.resource];
  if (!resource) throw new DlpctlError('USAGE', `no resource named "${opts.resource}"; known: ${Object.keys(config.resources).join(', ')}`);
  const [policy, dlp] = await Promise.all([import('../../policy/index.js'), import('../../dlp/index.js')]);
  await policy.initSqlParser();
  let action: import('../../policy/index.js').PolicyAction;
  if (opts.sql !== undefined) action = { type: 'sql', text: opts.sql };
  else if (opts.http !== undefined) {
    const m = /^\s*([A-Za-z]+)\s+(\S+)\s*$/.exec(opts.http);
    if (!m) throw new DlpctlError('USAGE', `--http: expected "METHOD PATH", e.g. "POST /v1/chat/completions" (got "${opts.http}")`);
    action = { type: 'http', method: m[1]!.toUpperCase(), path: m[2]!, headers: {}, ...(opts.body !== undefined ? { body: opts.body } : {}) };
  } else {
    const channel = (opts.channel ?? 'exec') as SshChannelKind;
    if (!['exec', 'shell', 'sftp', 'forward'].includes(channel)) throw new DlpctlError('USAGE', '--channel: exec, shell, sftp or forward');
    action = { type: 'ssh', channel, command: opts.ssh! };
  }
  const detector = dlp.createDlpEngine({ customDetectors: config.detectors });
  const custom = config.detectors.map((d) => d.name);
  const explanation = policy.explain({
    resource,
    policies: policy.resolvePolicies(resource.policies, config.policies),
    identity: { subject: opts.as ?? 'anonymous', groups: opts.group, kind: opts.machine ? 'machine' : 'human', verified: true },
    action,
    detectEntities: (t) => detector.entitiesIn(t),
    expandEntities: (names) => dlp.expandEntities(names, custom),
  });
  if (ctx.globals.json) printJson(ctx.io, explanation);
  else {
    const c = ctx.io.color;
    const text = policy.formatExplanation(explanation);
    const act = explanation.decision.action;
    const colour = act === 'deny' ? c.red : act === 'approve' ? c.yellow : c.green;
    ctx.io.out(text.replace(/^(decision:\s*)(\w+)/m, (_m, a: string, b: string) => a + colour(b)));
  }
  return ExitCode.ok;
}
