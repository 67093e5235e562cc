/** Shared by the approvals tests: both store engines, a requester session, a pending request. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { sha256Hex } from '../../src/approvals/request.js';
import { openStore } from '../../src/store/index.js';
import type { Approval, Identity, NewApproval, SessionStore } from '../../src/store/types.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';

export const OS_USER = os.userInfo().username;
export const REQUESTER: Identity = { issuer: 'https://idp.test', subject: 'ci-bot', groups: ['agents'], kind: 'machine', verified: true };

export interface Engine {
  name: 'sqlite' | 'postgres';
  /** A fresh, empty store URL. */
  newUrl(): Promise<string>;
}

/** Registers beforeAll/afterAll that start what the engines need; use inside a describe.each. */
export function engines(): Engine[] {
  let dir = '';
  let pg: TestPostgres | undefined;
  let n = 0;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-appr-'));
  });
  afterAll(async () => {
    await pg?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });
  return [
    { name: 'sqlite', newUrl: async () => `sqlite:${path.join(dir, `s${n++}.db`)}` },
    {
      name: 'postgres',
      newUrl: async () => {
        pg ??= await startPostgres();
        return pg.newDatabase();
      },
    },
  ];
}

export async function openTestStore(url: string): Promise<SessionStore> {
  return openStore(url, { sqliteSynchronous: 'normal', pollIntervalMs: 50 });
}

export async function requesterSession(store: SessionStore, identity: Identity = REQUESTER): Promise<string> {
  const s = await store.createSession({ resource: 'db', kind: 'postgres', identity, clientAddr: '127.0.0.1:5000', reason: 'nightly cleanup' });
  return s.id;
}

export async function pending(store: SessionStore, o: Partial<NewApproval> & { sessionId: string }): Promise<Approval> {
  const sql = 'DELETE FROM orders WHERE id = 42';
  return store.createApproval({
    resource: 'db',
    sha256: sha256Hex(sql),
    maskedText: 'DELETE FROM orders WHERE id = ?',
    requester: REQUESTER,
    reason: 'nightly cleanup',
    rule: 'gate/deletes',
    approvers: [`user:${OS_USER}`, 'user:alice', 'user:bob', 'group:dba'],
    minApprovals: 1,
    expiresAt: new Date(Date.now() + 10 * 60_000).toISOString(),
    ...o,
  });
}

export function person(subject: string, extra: Partial<Identity> = {}): Identity {
  return { issuer: 'https://idp.test', subject, groups: [], kind: 'human', verified: true, ...extra };
}
