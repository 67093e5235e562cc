/**
 * Deciding requests against both real stores: who may decide, self-approval, minApprovals, expiry, racing
 * approvers, the audit event, and the waiting requester waking up (no timing assertions: it just wakes).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { decideApproval } from '../../src/approvals/decide.js';
import { requestApproval } from '../../src/approvals/request.js';
import { DlpctlError } from '../../src/errors.js';
import type { SessionStore } from '../../src/store/types.js';
import { engines, openTestStore, pending, person, REQUESTER, requesterSession } from './helpers.js';

async function refusal(p: Promise<unknown>): Promise<DlpctlError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof DlpctlError) return err;
    throw err;
  }
  throw new Error('expected the decision to be refused');
}

describe.each(engines())('deciding approvals ($name store)', (engine) => {
  let store: SessionStore;
  let url = '';
  afterEach(async () => store?.close());
  const setup = async () => {
    url = await engine.newUrl();
    store = await openTestStore(url);
    return requesterSession(store);
  };

  it('an approver named by user: approves; the decision is an approval.decided event in the session and the chain verifies', async () => {
    const sessionId = await setup();
    const a = await pending(store, { sessionId });
    const r = await decideApproval(store, { id: a.id.toLowerCase(), decision: 'approve', identity: person('alice', { verified: false }), comment: 'ok' });
    expect(r.approval.state).toBe('approved');
    expect(r.approval.decisions).toMatchObject([{ by: 'alice', decision: 'approve', comment: 'ok', groups: ['user:alice'] }]);
    const events = await store.listEvents(sessionId);
    expect(events.at(-1)).toMatchObject({ type: 'approval.decided', approvalId: a.id, state: 'approved', by: 'alice' });
    expect((await store.verify(sessionId)).ok).toBe(true);
  });

  it('group:X needs a verified identity carrying X', async () => {
    const sessionId = await setup();
    const a = await pending(store, { sessionId, approvers: ['group:dba'] });
    const unverified = await refusal(decideApproval(store, { id: a.id, decision: 'approve', identity: person('carol', { verified: false, groups: ['dba'] }) }));
    expect(unverified.exitCode).toBe(4);
    expect(unverified.message).toMatch(/not verified/);
    const wrongGroup = await refusal(decideApproval(store, { id: a.id, decision: 'approve', identity: person('dave', { groups: ['dev'] }) }));
    expect(wrongGroup.code).toBe('POLICY_DENIED');
    expect((await store.getApproval(a.id))!.state).toBe('pending');
    const ok = await decideApproval(store, { id: a.id, decision: 'approve', identity: person('erin', { groups: ['dev', 'dba'] }) });
    expect(ok.approval.state).toBe('approved');
    expect(ok.approval.decisions[0]!.groups).toEqual(['group:dba']);
  });

  it('the requester cannot approve their own request, even when in the approver group', async () => {
    const sessionId = await setup();
    const a = await pending(store, { sessionId, approvers: ['group:agents', `subject:${REQUESTER.subject}`] });
    const err = await refusal(decideApproval(store, { id: a.id, decision: 'approve', identity: REQUESTER }));
    expect(err.exitCode).toBe(4);
    expect(err.message).toMatch(/requested .* cannot approve/);
    expect((await store.getApproval(a.id))!).toMatchObject({ state: 'pending', decisions: [] });
  });

  it('minApprovals counts distinct approvers; a second vote by the same person is refused', async () => {
    const sessionId = await setup();
    const a = await pending(store, { sessionId, minApprovals: 2 });
    const first = await decideApproval(store, { id: a.id, decision: 'approve', identity: person('alice') });
    expect(first).toMatchObject({ approvals: 1, required: 2, approval: { state: 'pending' } });
    const again = await refusal(decideApproval(store, { id: a.id, decision: 'approve', identity: person('alice') }));
    expect(again.message).toMatch(/already approved/);
    const second = await decideApproval(store, { id: a.id, decision: 'approve', identity: person('bob') });
    expect(second).toMatchObject({ approvals: 2, approval: { state: 'approved' } });
  });

  it('an expired request cannot be approved and is marked expired', async () => {
    const sessionId = await setup();
    const a = await pending(store, { sessionId, expiresAt: '2030-01-01T00:00:00.000Z' });
    const later = () => new Date('2030-01-01T00:00:01.000Z');
    const err = await refusal(decideApproval(store, { id: a.id, decision: 'approve', identity: person('alice'), now: later }));
    expect(err.exitCode).toBe(5);
    expect(err.message).toMatch(/expired/);
    expect((await store.getApproval(a.id))!.state).toBe('expired');
  });

  it('deny needs a reason, ends the request, and a decided request cannot be decided again', async () => {
    const sessionId = await setup();
    const a = await pending(store, { sessionId });
    expect((await refusal(decideApproval(store, { id: a.id, decision: 'deny', identity: person('alice') }))).exitCode).toBe(2);
    const r = await decideApproval(store, { id: a.id, decision: 'deny', identity: person('alice'), comment: 'use staging' });
    expect(r.approval).toMatchObject({ state: 'denied', decisions: [{ by: 'alice', decision: 'deny', comment: 'use staging' }] });
    const late = await refusal(decideApproval(store, { id: a.id, decision: 'approve', identity: person('bob') }));
    expect(late.message).toMatch(/already denied/);
  });

  it('two approvers racing on a one-approval request: exactly one decision is recorded', async () => {
    const sessionId = await setup();
    const a = await pending(store, { sessionId });
    const results = await Promise.allSettled([
      decideApproval(store, { id: a.id, decision: 'approve', identity: person('alice') }),
      decideApproval(store, { id: a.id, decision: 'approve', identity: person('bob') }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((await store.getApproval(a.id))!.decisions).toHaveLength(1);
  });

  it('an unknown id is an error that says how to list requests', async () => {
    await setup();
    const err = await refusal(decideApproval(store, { id: 'ZZZZZZ', decision: 'approve', identity: person('alice') }));
    expect(err.exitCode).toBe(1);
    expect(err.message).toMatch(/dlpctl approvals/);
  });

  it('the waiting requester wakes on approval (through a second connection) and consumes it once', async () => {
    const sessionId = await setup();
    const decider = await openTestStore(url);
    let filed!: (id: string) => void;
    const idP = new Promise<string>((r) => (filed = r));
    const waiting = requestApproval(
      store,
      { sessionId, resource: 'db', exact: 'DELETE FROM t WHERE id = 1', maskedText: 'DELETE FROM t WHERE id = ?', requester: REQUESTER, rule: 'g/r', approvers: ['user:alice'], minApprovals: 1, timeoutMs: 120_000 },
      { onPending: (a) => filed(a.id) },
    );
    const id = await idP;
    await decideApproval(decider, { id, decision: 'approve', identity: person('alice') });
    await decider.close();
    const outcome = await waiting;
    expect(outcome.approved).toBe(true);
    expect((await store.getApproval(id))!.state).toBe('consumed');
  });

  it('a request nobody decides times out as expired', async () => {
    const sessionId = await setup();
    const outcome = await requestApproval(store, {
      sessionId, resource: 'db', exact: 'x', maskedText: 'x', requester: REQUESTER, rule: 'g/r', approvers: ['user:alice'], minApprovals: 1, timeoutMs: 200,
    });
    expect(outcome.approved).toBe(false);
    if (!outcome.approved) expect(outcome.message).toMatch(/timed out/);
    expect(outcome.approval!.state).toBe('expired');
  });
});
