import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import type { SessionStore } from '../../src/store/types.js';
import { binPath, runBin, testEnv } from '../helpers/cli.js';
import { accessSha } from '../../src/approvals/access.js';

let dir: string;
let config: string;
let storeUrl: string;
let store: SessionStore;
let env: NodeJS.ProcessEnv;

const me = os.userInfo().username;

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
  later:
    kind: postgres
    target: postgres://app@127.0.0.1:1/app
    tls: { mode: disable }
    access: { approvers: [user:alice], maxDuration: 2s }
  revocable:
    kind: postgres
    target: postgres://app@127.0.0.1:1/app
    tls: { mode: disable }
    access: { approvers: [user:alice, user:${me}], maxDuration: 10m }
  checked:
    kind: postgres
    target: postgres://app@127.0.0.1:1/app
    tls: { mode: disable }
    access: { approvers: [user:alice], maxDuration: 10m }
  open:
    kind: postgres
    target: postgres://app@127.0.0.1:1/app
    tls: { mode: disable }
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

/** `dlpctl connect` in the background; resolves `listening` once the tunnel is open. */
function background(args: string[]) {
  const child = spawn(process.execPath, [binPath, '--json', 'connect', ...args, '--config', config, '--store', storeUrl], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  const listening = (async () => {
    for (let i = 0; i < 400 && !out.includes('"type":"listening"'); i += 1) {
      if (child.exitCode !== null) throw new Error(`connect exited: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return { child, exited, listening, out: () => out, err: () => err };
}

async function fileNoWait(resource: string): Promise<string> {
  const r = await runBin(['connect', resource, '--config', config, '--store', storeUrl, '--no-wait'], { env });
  expect(r.code, r.stderr).toBe(5);
  expect(r.stderr).toContain(`once approved, run dlpctl connect ${resource}`);
  return /dlpctl approve ([A-Z0-9]{6})/.exec(r.stderr)![1]!;
}

describe('just-in-time access: using and revoking a grant', () => {
  it('--no-wait, approved, then the next connect uses that grant (no fresh request) and it is used once', async () => {
    const id = await fileNoWait('later');
    await approve(id);
    const before = (await store.listApprovals()).length;
    const c = background(['later']);
    await c.listening;
    expect(c.err()).toContain(`using access request ${id}`);
    expect((await store.getApproval(id))?.state).toBe('consumed');
    expect((await store.listApprovals()).length).toBe(before);
    expect(await c.exited).toBe(5); // maxDuration 2s: the grant ends
    const again = await runBin(['connect', 'later', '--request', id, '--config', config, '--store', storeUrl], { env });
    expect(again.code).toBe(5);
    expect(again.stderr).toContain(`--request ${id}: it was already used by an earlier connect`);
  }, 60_000);

  it('--request refuses a pending request, another identity\'s, another resource\'s, and a resource without access', async () => {
    const id = await fileNoWait('checked');
    const pending = await runBin(['connect', 'checked', '--request', id, '--config', config, '--store', storeUrl], { env });
    expect(pending.code).toBe(5);
    expect(pending.stderr).toContain(`--request ${id}: it is still pending; an approver (user:alice) runs: dlpctl approve ${id}`);
    await approve(id);
    // a grant another identity was given
    const mine = (await store.getApproval(id))!;
    const mallory = { ...mine.requester, subject: 'mallory' };
    const theirs = await store.createApproval({ ...mine, requester: mallory, sha256: accessSha('checked', mallory), createdAt: new Date().toISOString() });
    await approve(theirs.id);
    const other = await runBin(['connect', 'checked', '--request', theirs.id, '--config', config, '--store', storeUrl], { env });
    expect(other.code).toBe(3);
    expect(other.stderr).toContain(`it was filed by mallory, not ${me}`);
    const wrongResource = await runBin(['connect', 'revocable', '--request', id, '--config', config, '--store', storeUrl], { env });
    expect(wrongResource.code).toBe(2);
    expect(wrongResource.stderr).toContain('it is a request for checked, not revocable');
    const noAccess = await runBin(['connect', 'open', '--request', id, '--config', config, '--store', storeUrl], { env });
    expect(noAccess.code).toBe(2);
    expect(noAccess.stderr).toContain('open has no access approval');
    expect((await store.getApproval(id))?.state).toBe('approved');
  }, 60_000);

  it('dlpctl deny ID --reason on a grant in use revokes it: the tunnel ends (exit 5) and the grant cannot be used again', async () => {
    const id = await fileNoWait('revocable');
    await approve(id);
    const c = background(['revocable', '--request', id]);
    await c.listening;
    const deny = await runBin(['deny', id, '--reason', 'incident over', '--config', config, '--store', storeUrl], { env });
    expect(deny.code, deny.stderr).toBe(0);
    expect(deny.stderr).toContain(`revoked ${id}`);
    expect(await c.exited).toBe(5);
    expect(c.err()).toContain(`the access grant ${id} for revocable was revoked by ${me}: incident over; ending every session of this tunnel`);
    expect((await store.getApproval(id))?.state).toBe('denied');
    const again = await runBin(['connect', 'revocable', '--request', id, '--config', config, '--store', storeUrl], { env });
    expect(again.code).toBe(5);
    expect(again.stderr).toContain(`it was revoked by ${me}: incident over`);
  }, 60_000);
});
