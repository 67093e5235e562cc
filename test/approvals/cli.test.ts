/**
 * The commands in-process (`runCli`) against a SQLite store file: the plain table and JSON of
 * `dlpctl approvals`, `approve` / `deny` and their exit codes, and the webhook receiving Slack JSON.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalJson } from '../../src/approvals/format.js';
import type { SessionStore } from '../../src/store/types.js';
import { runCli, testEnv } from '../helpers/cli.js';
import { OS_USER, openTestStore, pending, requesterSession } from './helpers.js';

let dir: string;
let storeUrl: string;
let store: SessionStore;
let sessionId: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-appr-cli-'));
  storeUrl = `sqlite:${path.join(dir, 'store.db')}`;
  store = await openTestStore(storeUrl);
  sessionId = await requesterSession(store);
  env = testEnv(dir, { DLPCTL_STORE: storeUrl });
});
afterAll(async () => {
  await store?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('dlpctl approvals', () => {
  it('--json lists pending requests with id, masked text and ages; decided ones are left out', async () => {
    const a = await pending(store, { sessionId, maskedText: 'DELETE FROM orders WHERE email = <EMAIL>' });
    const done = await pending(store, { sessionId });
    await store.updateApproval(done.id, (x) => ({ ...x, state: 'denied' }));
    const r = await runCli(['approvals', '--json'], { env });
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as ApprovalJson[];
    const ids = list.map((x) => x.id);
    expect(ids).toContain(a.id);
    expect(ids).not.toContain(done.id);
    expect(list.find((x) => x.id === a.id)).toMatchObject({ state: 'pending', text: 'DELETE FROM orders WHERE email = <EMAIL>', requester: { subject: 'ci-bot' }, reason: 'nightly cleanup', minApprovals: 1 });
    expect(list[0]!.expiresInSeconds).toBeGreaterThan(0);
  });

  it('piped: a plain table, no colour codes', async () => {
    const a = await pending(store, { sessionId, maskedText: 'UPDATE t\n   SET x = ?' });
    const r = await runCli(['approvals'], { env });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+AGE\s+EXPIRES\s+REQUESTER\s+RESOURCE\s+VOTES\s+REASON\s+TEXT$/);
    expect(lines.find((l) => l.startsWith(a.id))).toMatch(/ci-bot\s+db\s+0\/1\s+nightly cleanup\s+UPDATE t SET x = \?$/);
    expect(r.stdout).not.toContain('\u001b[');
  });
});

describe('dlpctl approve / deny', () => {
  it('approve ID releases the request; --json shows the decision', async () => {
    const a = await pending(store, { sessionId });
    const r = await runCli(['approve', a.id.toLowerCase(), '--comment', 'looks fine', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id: a.id, state: 'approved', approvedBy: [OS_USER], approvals: 1, required: 1 });
    expect((await store.getApproval(a.id))!.decisions[0]).toMatchObject({ by: OS_USER, comment: 'looks fine' });
  });

  it('deny without --reason is a usage error (2); with it the request is denied', async () => {
    const a = await pending(store, { sessionId });
    expect((await runCli(['deny', a.id], { env })).code).toBe(2);
    const r = await runCli(['deny', a.id, '--reason', 'not on a Friday'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/denied/);
    expect((await store.getApproval(a.id))!.state).toBe('denied');
  });

  it('exit 4 for someone not among the approvers (a group needs a verified identity)', async () => {
    const a = await pending(store, { sessionId, approvers: ['group:dba'] });
    const r = await runCli(['approve', a.id], { env });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/may not decide .*group:dba.*not verified/);
    expect((await store.getApproval(a.id))!.state).toBe('pending');
  });

  it('exit 4 for self-approval', async () => {
    const mine = await requesterSession(store, { issuer: 'local', subject: OS_USER, groups: [], kind: 'human', verified: false });
    const a = await pending(store, { sessionId: mine, requester: { issuer: 'local', subject: OS_USER, groups: [], kind: 'human', verified: false } });
    const r = await runCli(['approve', a.id], { env });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/cannot approve/);
  });

  it('exit 5 for an expired request, 1 for an unknown id', async () => {
    const a = await pending(store, { sessionId, expiresAt: new Date(Date.now() - 1000).toISOString() });
    const r = await runCli(['approve', a.id], { env });
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/expired/);
    expect((await runCli(['approve', 'QQQQQQ'], { env })).code).toBe(1);
  });

  it('approvals.webhook: a local HTTP server receives Slack-compatible JSON on the decision, never the URL in output', async () => {
    const bodies: unknown[] = [];
    const server = http.createServer((req, res) => {
      let b = '';
      req.on('data', (c: Buffer) => (b += c.toString()));
      req.on('end', () => {
        bodies.push({ path: req.url, type: req.headers['content-type'], body: JSON.parse(b) });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const config = path.join(dir, 'dlpctl.yaml');
    // (A bare \${env:URL} is rejected by the config's webhook-url format check, so the secret is the path token.)
    await fs.writeFile(config, `version: 1\nresources: {}\napprovals:\n  webhook: http://127.0.0.1:${port}/hooks/\${env:HOOK_TOKEN}\n`);
    try {
      const a = await pending(store, { sessionId });
      const r = await runCli(['approve', a.id, '--config', config], { env: { ...env, HOOK_TOKEN: 'T0K3N' } });
      expect(r.code, r.stderr).toBe(0);
      expect(bodies).toHaveLength(1);
      expect(bodies[0]).toMatchObject({
        path: '/hooks/T0K3N',
        type: 'application/json',
        body: { text: expect.stringContaining(`approval ${a.id} on db was approved by ${OS_USER}`), blocks: expect.any(Array), dlpctl: { event: 'decided', id: a.id, state: 'approved' } },
      });
      expect(JSON.stringify(bodies[0])).toContain('DELETE FROM orders WHERE id = ?');
      expect(JSON.stringify(bodies[0])).not.toContain('id = 42');
      expect(r.stdout + r.stderr).not.toContain('T0K3N');
    } finally {
      server.close();
      await fs.rm(config);
    }
  });
});
