/**
 * The CI recipes in examples/ are copied into real pipelines as they are, so every `dlpctl` line in them must
 * name a command that exists and only flags that command (or the program) accepts: each is checked against
 * `dlpctl <command> --help`. The resource they connect to must exist in examples/dlpctl.yaml.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../../src/config/index.js';
import { repoRoot, runCli } from '../helpers/cli.js';

interface Invocation {
  file: string;
  line: string;
  words: string[];
}

/** Splits a shell line into words: quotes group, `${{ … }}` and `$VAR` stay inside their word. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: '"' | "'" | null = null;
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

function scripts(file: string, doc: unknown): string[] {
  const out: string[] = [];
  const visit = (node: unknown, key?: string): void => {
    if (Array.isArray(node)) {
      for (const item of node) {
        if (typeof item === 'string' && (key === 'script' || key === 'before_script' || key === 'after_script')) out.push(item);
        else visit(item);
      }
    } else if (node && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (k === 'run' && typeof v === 'string') out.push(v);
        else visit(v, k);
      }
    }
  };
  visit(doc);
  expect(out.length, `${file} has shell steps`).toBeGreaterThan(0);
  return out;
}

function invocations(file: string): Invocation[] {
  const text = readFileSync(path.join(repoRoot, 'examples', file), 'utf8');
  const doc = parse(text) as unknown;
  const found: Invocation[] = [];
  for (const script of scripts(file, doc)) {
    for (const raw of script.split('\n')) {
      const line = raw.trim();
      const words = shellWords(line);
      const at = words.indexOf('dlpctl');
      if (at >= 0 && !words.slice(0, at).includes('install')) found.push({ file, line, words: words.slice(at + 1) });
    }
  }
  return found;
}

/** The long and short flags listed in a help text. */
function helpFlags(help: string): Set<string> {
  return new Set([...help.matchAll(/(?:^|\s|,)(--?[a-zA-Z][\w-]*)/gm)].map((m) => m[1]!));
}

const examples = {
  'github-actions.yml': invocations('github-actions.yml'),
  'gitlab-ci.yml': invocations('gitlab-ci.yml'),
};

describe('CI recipes in examples/', () => {
  it('GitHub Actions grants id-token: write and runs the agent through dlpctl connect', () => {
    const doc = parse(readFileSync(path.join(repoRoot, 'examples/github-actions.yml'), 'utf8')) as { permissions: Record<string, string> };
    expect(doc.permissions['id-token']).toBe('write');
    const connect = examples['github-actions.yml'].find((i) => i.words[0] === 'connect');
    expect(connect?.words.slice(0, 2)).toEqual(['connect', 'postgres-prod']);
    expect(connect?.words).toContain('--');
  });

  it('GitLab CI declares the id_tokens: variable dlpctl reads, with an audience', () => {
    const doc = parse(readFileSync(path.join(repoRoot, 'examples/gitlab-ci.yml'), 'utf8')) as Record<string, { id_tokens?: Record<string, { aud: string }> }>;
    const job = Object.values(doc).find((j) => j && typeof j === 'object' && j.id_tokens);
    expect(Object.keys(job!.id_tokens!)).toEqual(['DLPCTL_ID_TOKEN']);
    expect(job!.id_tokens!['DLPCTL_ID_TOKEN']!.aud).toMatch(/^https:\/\//);
    expect(examples['gitlab-ci.yml'].some((i) => i.words[0] === 'connect' && i.words.includes('--'))).toBe(true);
  });

  const all = Object.values(examples).flat();
  it.each(all.map((i) => [`${i.file}: dlpctl ${i.words.join(' ').slice(0, 60)}`, i] as const))('%s uses a command and flags that exist', async (_name, inv) => {
    const root = await runCli(['--help']);
    expect(root.code).toBe(0);
    const globals = helpFlags(root.stdout.slice(root.stdout.indexOf('Options:'), root.stdout.indexOf('Commands:')));
    // The command path: the leading words that are subcommands, as --help resolves them.
    let commandPath: string[] = [];
    let help = root.stdout;
    for (const w of inv.words) {
      if (w.startsWith('-')) break;
      const sub = await runCli([...commandPath, w, '--help']);
      if (sub.code !== 0 || sub.stdout === help) break;
      const usage = /^Usage: dlpctl (.*)$/m.exec(sub.stdout)?.[1] ?? '';
      if (!usage.startsWith([...commandPath, w].join(' '))) break;
      commandPath = [...commandPath, w];
      help = sub.stdout;
    }
    expect(commandPath.length, `${inv.line}: names a dlpctl command`).toBeGreaterThan(0);
    const allowed = new Set([...helpFlags(help), ...globals]);
    const dashes = inv.words.indexOf('--');
    const own = dashes >= 0 ? inv.words.slice(0, dashes) : inv.words;
    for (const w of own) {
      if (!w.startsWith('-')) continue;
      const flag = w.split('=')[0]!;
      expect(allowed.has(flag), `${inv.file}: ${flag} is not a flag of dlpctl ${commandPath.join(' ')}`).toBe(true);
    }
    if (commandPath[0] === 'connect') {
      const config = parseConfig(readFileSync(path.join(repoRoot, 'examples/dlpctl.yaml'), 'utf8'), 'examples/dlpctl.yaml', {
        knownEntities: new Set(['credit_card', 'us_ssn', 'email', 'phone', 'iban']),
      });
      expect(Object.keys(config.resources)).toContain(inv.words[1]);
    }
  });

  it('the dlpctl.yaml blocks of docs/ci.md are valid configuration', () => {
    const md = readFileSync(path.join(repoRoot, 'docs/ci.md'), 'utf8');
    const blocks = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parse(m[1]!) as Record<string, Record<string, Record<string, unknown>>>);
    const identity = blocks.find((b) => b['identity'])!['identity'];
    const rest = blocks.find((b) => b['resources'])!;
    const resource = { kind: 'postgres', target: 'postgres://app_reader@db.internal:5432/app', tls: { mode: 'disable' }, policies: Object.keys(rest['policies'] ?? {}), ...rest['resources']!['postgres-prod'] };
    const text = stringify({ version: 1, identity, resources: { 'postgres-prod': resource }, policies: rest['policies'] });
    const config = parseConfig(text, 'docs/ci.md', { knownEntities: new Set(['email']) });
    expect(config.identity?.issuer).toBe('https://token.actions.githubusercontent.com');
    expect(config.resources['postgres-prod']?.allow).toContain('subject:repo:acme/app:ref:refs/heads/main');
    expect(config.policies['prod-guard']?.rules[0]?.action).toBe('deny');
  });

  it('a made-up flag is caught (the check is real)', async () => {
    const help = await runCli(['connect', '--help']);
    const flags = helpFlags(help.stdout);
    expect(flags.has('--reason')).toBe(true);
    expect(flags.has('--id-token-var')).toBe(true);
    expect(flags.has('--audience')).toBe(false);
  });
});
