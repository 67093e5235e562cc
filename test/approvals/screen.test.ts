/**
 * The ink approvals screen, driven with ink-testing-library against a real SQLite store: the list with
 * age, requester, resource, reason and text; arrows; `a` approves; `d` asks a reason and denies; enter
 * shows the detail; a request filed while the screen is open appears (live refresh).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { render } from 'ink-testing-library';
import { createElement } from 'react';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideApproval } from '../../src/approvals/decide.js';
import { isOpen } from '../../src/approvals/format.js';
import type { SessionStore } from '../../src/store/types.js';
import { ApprovalsScreen } from '../../src/tui/approvals-screen.js';
import { openTestStore, pending, person, requesterSession } from './helpers.js';

let dir: string;
let store: SessionStore;
let sessionId: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-screen-'));
  store = await openTestStore(`sqlite:${path.join(dir, 'store.db')}`);
  sessionId = await requesterSession(store);
});
afterAll(async () => {
  await store?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

async function until(frame: () => string | undefined, test: (f: string) => boolean, what: string): Promise<string> {
  for (let i = 0; i < 1500; i++) {
    const f = frame() ?? '';
    if (test(f)) return f;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`screen never showed ${what}; last frame:\n${frame()}`);
}

const DOWN = '\u001B[B';

describe('approvals screen', () => {
  it('lists, moves, approves, denies with a reason, shows detail, and refreshes live', async () => {
    const first = await pending(store, { sessionId, maskedText: 'DELETE FROM orders WHERE id = ?', createdAt: new Date(Date.now() - 5 * 60_000).toISOString() });
    const second = await pending(store, { sessionId, maskedText: 'UPDATE customers SET email = <EMAIL>', reason: 'fix typo' });
    const load = async () => (await store.listApprovals({ state: 'pending' })).filter((a) => isOpen(a, new Date()));
    const decide = async (id: string, decision: 'approve' | 'deny', comment?: string) => {
      const r = await decideApproval(store, { id, decision, identity: person('alice'), ...(comment ? { comment } : {}) });
      return `${id} ${r.approval.state}`;
    };
    const ui = render(createElement(ApprovalsScreen, { load, decide, refreshMs: 50, approver: 'alice' }));
    try {
      let f = await until(ui.lastFrame, (s) => s.includes(second.id), 'both requests');
      expect(f).toContain('deciding as alice');
      expect(f).toMatch(new RegExp(`› ${first.id}\\s+5m\\s+ci-bot\\s+db\\s+0/1`));
      expect(f).toContain('“fix typo”');
      expect(f).toContain('UPDATE customers SET email = <EMAIL>');

      ui.stdin.write(DOWN);
      await until(ui.lastFrame, (s) => s.includes(`› ${second.id}`), 'the cursor on the second request');
      ui.stdin.write('\r');
      f = await until(ui.lastFrame, (s) => s.includes('sha256'), 'the detail');
      expect(f).toContain(`rule gate/deletes`);
      expect(f).toContain(`reason: fix typo`);
      ui.stdin.write('\u001B');
      await until(ui.lastFrame, (s) => !s.includes('sha256'), 'the list again');

      ui.stdin.write('d');
      await until(ui.lastFrame, (s) => s.includes(`deny ${second.id}, reason:`), 'the reason prompt');
      ui.stdin.write('not now');
      await until(ui.lastFrame, (s) => s.includes('reason: not now'), 'the typed reason');
      ui.stdin.write('\r');
      await until(ui.lastFrame, (s) => s.includes(`${second.id} denied`), 'the denial');
      expect((await store.getApproval(second.id))!.decisions[0]).toMatchObject({ by: 'alice', decision: 'deny', comment: 'not now' });

      f = await until(ui.lastFrame, (s) => !s.includes(`› ${second.id}`) && s.includes(`› ${first.id}`), 'the cursor back on the first');
      ui.stdin.write('a');
      await until(ui.lastFrame, (s) => s.includes(`${first.id} approved`), 'the approval');
      expect((await store.getApproval(first.id))!.state).toBe('approved');

      const third = await pending(store, { sessionId, maskedText: 'TRUNCATE audit_log' });
      f = await until(ui.lastFrame, (s) => s.includes(third.id), 'a request filed while the screen is open');
      expect(f).toContain('TRUNCATE audit_log');
      expect(f).not.toContain(`${first.id}  `);
    } finally {
      ui.unmount();
    }
  });

  it('a refused decision is shown as an error, and the request stays', async () => {
    const a = await pending(store, { sessionId, approvers: ['group:dba'], maskedText: 'DROP SCHEMA x' });
    const load = async () => (await store.listApprovals({ state: 'pending' })).filter((x) => x.id === a.id);
    const decide = async (id: string, decision: 'approve' | 'deny') => {
      await decideApproval(store, { id, decision, identity: person('mallory', { verified: false, groups: ['dba'] }) });
      return 'unexpected';
    };
    const ui = render(createElement(ApprovalsScreen, { load, decide, refreshMs: 50 }));
    try {
      await until(ui.lastFrame, (s) => s.includes(a.id), 'the request');
      ui.stdin.write('a');
      const f = await until(ui.lastFrame, (s) => s.includes('may not decide'), 'the refusal');
      expect(f).toContain('not verified');
      expect((await store.getApproval(a.id))!.state).toBe('pending');
    } finally {
      ui.unmount();
    }
  });
});
