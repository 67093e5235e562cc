import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runBin, runCli, testEnv } from '../helpers/cli.js';

let env: NodeJS.ProcessEnv;
let home: string;
beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-mask-'));
  env = testEnv(home);
});

const card = '4111 1111 1111 1111';
const key = 'ghp_R8x2mQ7vT4kLp9sW3nB6yH1jD5fG0aZcXeUi';
const input = `user ada@example.org paid with ${card}; token ${key}\n`;

describe('dlpctl mask', () => {
  it('masks stdin to stdout with every detector by default', async () => {
    const r = await runCli(['mask'], { env, stdin: input });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('user [REDACTED:email] paid with [REDACTED:credit_card]; token [REDACTED:github_token]\n');
  });

  it('--entities and --with choose what and how', async () => {
    const r = await runCli(['mask', '--entities', 'credit_card', '--with', 'partial'], { env, stdin: input });
    expect(r.stdout).toContain('ada@example.org');
    expect(r.stdout).toContain('**** **** **** 1111');
    expect(r.stdout).toContain(key);
  });

  it('--report lists findings on stderr without the values', async () => {
    const r = await runCli(['mask', '--report'], { env, stdin: input });
    const report = JSON.parse(r.stderr) as { findings: { entity: string; start: number; end: number }[]; counts: Record<string, number> };
    expect(report.counts).toEqual({ email: 1, credit_card: 1, github_token: 1 });
    expect(report.findings[0]).toMatchObject({ entity: 'email', start: 5, end: 20 });
    expect(r.stderr).not.toContain('ada@example.org');
    expect(r.stderr).not.toContain(key);
  });

  it('--json-input keeps NDJSON valid, masking string values', async () => {
    const ndjson = `{"msg":"mail ada@example.org","n":1}\n{"tool":{"arguments":"{\\"card\\":\\"${card}\\"}"}}\n`;
    const r = await runCli(['mask', '--json-input'], { env, stdin: ndjson });
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toEqual({ msg: 'mail [REDACTED:email]', n: 1 });
    expect(JSON.stringify(lines[1])).not.toContain('4111');
  });

  it('--json prints the masked text and the report as one document', async () => {
    const r = await runCli(['--json', 'mask'], { env, stdin: input });
    const doc = JSON.parse(r.stdout) as { masked: string; counts: Record<string, number> };
    expect(doc.masked).toContain('[REDACTED:credit_card]');
    expect(doc.counts.credit_card).toBe(1);
  });

  it("uses the config's mask rules when a config is present", async () => {
    const cfg = path.join(home, 'dlpctl.yaml');
    await writeFile(cfg, 'version: 1\nresources: {}\npolicies:\n  p:\n    - name: m\n      action: mask\n      entities: [email]\n      with: partial\n');
    const r = await runCli(['mask', '--config', cfg], { env, stdin: input });
    expect(r.stdout).not.toContain('ada@example.org');
    expect(r.stdout).toContain(card);
  });

  it('rejects an unknown masker or entity with exit 2', async () => {
    const a = await runCli(['mask', '--with', 'shred'], { env, stdin: input });
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('unknown masker "shred"');
    const b = await runCli(['mask', '--entities', 'emial'], { env, stdin: input });
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('emial');
  });

  it('streams a large input through the binary', async () => {
    const line = `row ${'x'.repeat(100)} ada@example.org ${card}\n`;
    const big = line.repeat(20_000);
    const r = await runBin(['mask'], { env, stdin: big });
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(big.length / 2);
    expect(r.stdout).not.toContain('ada@example.org');
    expect(r.stdout).not.toContain('4111');
    expect(r.stdout.split('\n').length).toBe(20_001);
  });
});
