/**
 * Just-in-time access requests, the requester's notice and spinner, the webhook on creation, and
 * `approvals --watch` without a terminal — against a real SQLite store and a real local HTTP server.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileAccessRequest, grantExpiry, requestAccess, scheduleGrantEnd } from '../../src/approvals/access.js';
import { decideApproval } from '../../src/approvals/decide.js';
import { pendingNotice, waitingSpinner } from '../../src/approvals/notice.js';
import { requestApproval } from '../../src/approvals/request.js';
import { runApprovals } from '../../src/cli/commands/approvals.js';
import { DlpctlError } from '../../src/errors.js';
import type { Approval, SessionStore } from '../../src/store/types.js';
import { testContext } from '../audit/ctx.js';
import { openTestStore, pending, person, REQUESTER, requesterSession } from './helpers.js';

let dir: string;
let url: string;
let store: SessionStore;
let sessionId: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-access-'));
  url = `sqlite:${path.join(dir, 'store.db')}`;
  store = await openTestStore(url);
  sessionId = await requesterSession(store);
});
afterAll(async () => {
  await store?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

function onPendingOnce(): { hook: (a: Approval) => void; filed: Promise<Approval> } {
  let hook!: (a: Approval) => void;
  const filed = new Promise<Approval>((r) => (hook = r));
  return { hook, filed };
}

describe('just-in-time access', () => {
  it('an approved access request becomes a grant ending maxDuration after the approval', async () => {
    const p = onPendingOnce();
    const granting = requestAccess(store, { sessionId, resource: 'prod-db', identity: REQUESTER, reason: 'incident 42', approvers: ['user:alice'], maxDurationMs: 30 * 60_000 }, { onPending: p.hook });
    const a = await p.filed;
    expect(a).toMatchObject({ rule: 'access/prod-db', maskedText: 'access prod-db for ci-bot (up to 30 min)', reason: 'incident 42' });
    const d = await decideApproval(store, { id: a.id, decision: 'approve', identity: person('alice') });
    const grant = await granting;
    expect(grant.approval.state).toBe('consumed');
    expect(grant.expiresAt.getTime()).toBe(Date.parse(d.approval.decisions[0]!.at) + 30 * 60_000);
  });

  it('a denied access request is exit 5 with the reason', async () => {
    const p = onPendingOnce();
    const granting = requestAccess(store, { sessionId, resource: 'prod-db', identity: REQUESTER, approvers: ['user:alice'], maxDurationMs: 60_000 }, { onPending: p.hook }).catch((e: unknown) => e);
    await decideApproval(store, { id: (await p.filed).id, decision: 'deny', identity: person('alice'), comment: 'no incident open' });
    const err = (await granting) as DlpctlError;
    expect(err).toBeInstanceOf(DlpctlError);
    expect(err.exitCode).toBe(5);
    expect(err.message).toMatch(/denied by alice: no incident open/);
  });

  it('--no-wait files the request and returns it; the grant end fires once the clock passes it', async () => {
    const a = await fileAccessRequest(store, { sessionId, resource: 'prod-db', identity: REQUESTER, approvers: ['user:alice'], maxDurationMs: 60_000 });
    expect((await store.getApproval(a.id))!.state).toBe('pending');
    const approved = (await decideApproval(store, { id: a.id, decision: 'approve', identity: person('alice') })).approval;
    const expiresAt = grantExpiry(approved, 60_000);
    let clock = expiresAt.getTime() - 1;
    let ended = 0;
    const ends = new Promise<void>((resolve) => {
      scheduleGrantEnd({ approval: approved, expiresAt }, () => {
        ended++;
        resolve();
      }, () => new Date(clock));
    });
    expect(ended).toBe(0);
    clock = expiresAt.getTime();
    await ends;
    expect(ended).toBe(1);
  });
});

describe('the requester side', () => {
  it('one line naming what waits and the approve command; a spinner with the time left', () => {
    const line = pendingNotice({ id: 'K7QF2M', resource: 'db', maskedText: 'DELETE FROM t\nWHERE id = ?', approvers: ['group:dba'], minApprovals: 2 });
    expect(line).toBe('dlpctl: waiting for approval K7QF2M on db: DELETE FROM t WHERE id = ? — an approver (group:dba, 2 needed) runs: dlpctl approve K7QF2M');
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const stop = waitingSpinner(out, { id: 'K7QF2M', expiresAt: '2030-01-01T00:15:00.000Z' }, { now: () => new Date('2030-01-01T00:00:30.000Z') });
    stop();
    expect(text).toContain('waiting for approval K7QF2M · 14m left');
    expect(text.endsWith('\r\u001b[K')).toBe(true);
  });

  it('the webhook is posted when a request is filed (Slack-compatible JSON)', async () => {
    const got: { text: string; dlpctl: { event: string; id: string } }[] = [];
    let received!: () => void;
    const arrived = new Promise<void>((r) => (received = r));
    const server = http.createServer((req, res) => {
      let b = '';
      req.on('data', (c: Buffer) => (b += c.toString()));
      req.on('end', () => {
        got.push(JSON.parse(b));
        res.end('ok');
        received();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const ac = new AbortController();
    try {
      const p = onPendingOnce();
      const waiting = requestApproval(
        store,
        { sessionId, resource: 'db', exact: 'DELETE FROM t WHERE id = 9', maskedText: 'DELETE FROM t WHERE id = ?', requester: REQUESTER, rule: 'g/r', approvers: ['user:alice'], minApprovals: 1, timeoutMs: 60_000 },
        { onPending: p.hook, signal: ac.signal, webhookUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook` },
      );
      const a = await p.filed;
      await arrived;
      expect(got[0]).toMatchObject({ dlpctl: { event: 'created', id: a.id } });
      expect(got[0]!.text).toBe(`dlpctl: ci-bot needs approval ${a.id} on db (rule g/r)`);
      ac.abort();
      await waiting;
    } finally {
      server.close();
    }
  });
});

describe('dlpctl approvals --watch (no terminal)', () => {
  it('prints the list again when a request is filed, and stops on interrupt', async () => {
    const ac = new AbortController();
    const { ctx, out } = testContext({ store: url, json: true, signal: ac.signal });
    const watching = runApprovals(ctx, { watch: true, intervalMs: 20 });
    for (let i = 0; i < 1500 && out() === ''; i++) await new Promise((r) => setTimeout(r, 10));
    const before = out().trim().split('\n').length;
    const a = await pending(store, { sessionId, maskedText: 'watched statement' });
    for (let i = 0; i < 1500 && !out().includes(a.id); i++) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    expect(await watching).toBe(0);
    const lines = out().trim().split('\n');
    expect(lines.length).toBe(before + 1);
    expect((JSON.parse(lines.at(-1)!) as { id: string }[]).map((x) => x.id)).toContain(a.id);
  });
});
