import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import type { SessionStore } from '../../src/store/types.js';
import { binPath, runBin, testEnv } from '../helpers/cli.js';

let dir: string;
let config: string;
let storeUrl: string;
let store: SessionStore;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-access-'));
  config = path.join(dir, 'dlpctl.yaml');
  storeUrl = `sqlite:${path.join(dir, 'store.db')}`;
  await writeFile(
    config,
    `version: 1
resources:
  db:
    kind: postgres
    target: postgres://app@127.0.0.1:1/app
    tls: { mode: disable }
    access: { approvers: [user:alice], maxDuration: 2s }
`,
  );
  env = testEnv(dir, { USER: 'ci-bot' });
  store = await openStore(storeUrl);
});
afterAll(async () => {
  await store?.close();
});

async function approve(id: string): Promise<void> {
  await store.updateApproval(id, (a) => ({
    ...a,
    state: 'approved',
    decisions: [...a.decisions, { by: 'alice', groups: [], decision: 'approve', at: new Date().toISOString() }],
  }));
}

describe('connect with just-in-time access', () => {
  it('--no-wait files the request, prints the approve command and exits 5', async () => {
    const r = await runBin(['connect', 'db', '--config', config, '--store', storeUrl, '--no-wait'], { env });
    expect(r.code).toBe(5);
    const id = /dlpctl approve ([A-Z0-9]{6})/.exec(r.stderr)?.[1];
    expect(id, r.stderr).toBeDefined();
    const a = await store.getApproval(id!);
    expect(a).toMatchObject({ state: 'pending', resource: 'db', rule: 'access/db', approvers: ['user:alice'] });
  });

  it('waits for the grant, opens the tunnel, and closes it when the grant expires (exit 5)', async () => {
    const before = new Set((await store.listApprovals()).map((a) => a.id));
    const child = spawn(process.execPath, [binPath, '--json', 'connect', 'db', '--config', config, '--store', storeUrl], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
    let pending: { id: string } | undefined;
    for (let i = 0; i < 200 && !pending; i += 1) {
      await new Promise((r) => setTimeout(r, 100));
      pending = (await store.listApprovals({ state: 'pending' })).find((a) => a.rule === 'access/db' && !before.has(a.id));
    }
    expect(pending, err).toBeDefined();
    expect(out).not.toContain('"listening"');
    await approve(pending!.id);
    const code = await exited;
    expect(err).toContain('access to db granted until');
    expect(out).toContain('"type":"listening"');
    expect(err).toContain('the access grant for db expired');
    expect(code).toBe(5);
    expect((await store.getApproval(pending!.id))?.state).toBe('consumed');
  }, 60_000);
});
