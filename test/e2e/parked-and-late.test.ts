import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { Bridge, ev, waitFor } from '../bridge-harness';

const sid = () => `p-${randomUUID().slice(0, 12)}`;
const titles = (bridge: Bridge, caseId: string) => bridge.activitiesOf(caseId).map((a) => String(a.Title));
const POISON = (set: string, v: Record<string, unknown>) =>
  set === 'Activity' && String(v.Title).includes('POISON')
    ? 'Column "Title" holds a value Creatio will not take'
    : null;

async function parkedAt(bridge: Bridge, orgId: string, s: string, step: string) {
  return waitFor(`the step '${step}' parked`, async () => {
    const st = (await bridge.session(orgId, s)).body;
    return st?.lastError?.parked && st.lastError.step === step ? st : undefined;
  });
}

describe('parked steps: resume, skip, poison isolation, idle and continue-as-new while parked (issue 9.4, 9.5, 9.7)', () => {
  const bridge = new Bridge({ conversation: { maxHistoryEvents: 150 } });
  before(() => bridge.start());
  after(() => bridge.close());

  it('a message Creatio refuses parks alone; resume tries it again (looking first); skip records it on the case and the conversation goes on', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    bridge.emu.setFaults({ rejectWrite: POISON });
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hello'));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'POISON text'));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm3', 'after the poison'));
    const caseId = await bridge.caseOf(orgId, s);
    const parked = await parkedAt(bridge, orgId, s, 'log message m2');
    assert.equal(parked.lastError.type, 'CreatioValidationError');
    assert.equal(parked.lastError.skippable, true);

    // Nothing but the parked message is held back by accident: m3 waits behind it, in order.
    assert.ok(!titles(bridge, caseId).some((t) => t.includes('after the poison')));

    // Resume while the cause is still there: parked again, nothing written twice.
    const looksBefore = bridge.emu.count('GET Activity');
    let r = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/resume`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.step, 'log message m2');
    await waitFor('a second look before the write', () => bridge.emu.count('GET Activity') > looksBefore);
    await parkedAt(bridge, orgId, s, 'log message m2');

    r = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/skip`, { reason: '' });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.body.error.field, 'reason');
    r = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/skip`, {
      reason: 'the customer pasted binary data',
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, {
      status: 'skipped',
      step: 'log message m2',
      reason: 'the customer pasted binary data',
    });

    await waitFor('m3 logged', () => titles(bridge, caseId).some((t) => t.includes('after the poison')));
    const t = titles(bridge, caseId);
    assert.ok(
      t.some((x) => x.includes('Not synced: log message m2')),
      JSON.stringify(t),
    );
    assert.equal(t.filter((x) => x.includes('hello')).length, 1);
    // The state counts m3 once the workflow has the write's result (a moment after Creatio has it).
    const st = await waitFor('m3 counted', async () => {
      const body = (await bridge.session(orgId, s)).body;
      return body?.messages?.logged === 2 ? body : undefined;
    });
    assert.equal(st.messages.skipped, 1);
    assert.equal(st.skipped[0].step, 'log message m2');
    assert.equal(st.lastError, null);

    // Nothing parked now: both commands say so.
    r = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/resume`);
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'nothing_parked');
    r = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/skip`, { reason: 'x' });
    assert.equal(r.body.error.code, 'nothing_parked');
    r = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/no-such-session/resume`);
    assert.equal(r.status, 404);
    bridge.emu.setFaults({ rejectWrite: null });
  });

  it('handoff-only: a refused message inside the buffered batch parks alone; the rest of the batch is written once, in order', async () => {
    const orgId = await bridge.connectOrg({ createCaseOnlyOnHandoff: true });
    const s = sid();
    bridge.emu.setFaults({ rejectWrite: POISON });
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    for (let i = 1; i <= 6; i++) {
      const text = i === 3 ? 'POISON in the batch' : `batched ${i}`;
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, `b${i}`, text));
    }
    await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
    const caseId = await bridge.caseOf(orgId, s);
    await parkedAt(bridge, orgId, s, 'log message b3');
    const r = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/skip`, {
      reason: 'unreadable',
    });
    assert.equal(r.status, 200, r.text);
    await waitFor('the handoff note', () => titles(bridge, caseId).some((t) => t.includes('Handed off')));
    const batched = titles(bridge, caseId).filter((t) => t.includes('batched'));
    assert.deepEqual(
      batched.map((t) => t.replace(/.*batched /, '')),
      ['1', '2', '4', '5', '6'],
    );
    bridge.emu.setFaults({ rejectWrite: null });
  });

  it('the case itself cannot be given up: skip answers 409 step_not_skippable; resume after the fix creates it', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    bridge.emu.setFaults({ rejectWrite: (set) => (set === 'Case' ? 'Subject is too long' : null) });
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'c1', 'need help'));
    await parkedAt(bridge, orgId, s, 'create case');
    let r = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/skip`, { reason: 'no' });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'step_not_skippable');
    bridge.emu.setFaults({ rejectWrite: null });
    r = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/resume`);
    assert.equal(r.status, 200);
    const caseId = await bridge.caseOf(orgId, s);
    await waitFor('c1 logged', () => titles(bridge, caseId).some((t) => t.includes('need help')));
  });

  it('history grows while a step is parked: the workflow continues-as-new without waiting for the fix, and every message arrives once, in order', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'h0', 'first'));
    const caseId = await bridge.caseOf(orgId, s);
    bridge.emu.setFaults({ rejectWrite: POISON });
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'h1', 'POISON'));
    await parkedAt(bridge, orgId, s, 'log message h1');
    bridge.emu.setFaults({ rejectWrite: null });
    // 160 events while parked: past maxHistoryEvents (150) of this bridge.
    for (let i = 2; i <= 161; i++) {
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, `h${i}`, `queued ${i}`));
    }
    const st = await waitFor('a new run while parked', async () => {
      const b = (await bridge.session(orgId, s)).body;
      return b?.runs > 1 ? b : undefined;
    });
    // The run was handed on mid-step: the step is still there, in the new run.
    assert.ok(st.lastError === null || st.lastError.step === 'log message h1');
    await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/resume`);
    await waitFor(
      'all 161 messages logged',
      async () => (await bridge.session(orgId, s)).body.messages.logged === 162,
      60_000,
    );
    const queued = titles(bridge, caseId)
      .filter((t) => t.includes('queued'))
      .map((t) => Number(t.replace(/.*queued /, '')));
    assert.deepEqual(
      queued,
      Array.from({ length: 160 }, (_, i) => i + 2),
    );
    assert.equal(titles(bridge, caseId).filter((t) => t.includes('POISON')).length, 1);
  });
});

describe('what continue-as-new carries stays bounded (issue 9.5)', () => {
  const bridge = new Bridge({ conversation: { maxHistoryEvents: 120 } });
  before(() => bridge.start());
  after(() => bridge.close());

  it('2.4 MB of messages queued behind a parked step: the run continues-as-new with them in the store, and every one is logged once, in order', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'g0', 'first'));
    const caseId = await bridge.caseOf(orgId, s);
    bridge.emu.setFaults({ rejectWrite: POISON });
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'g1', 'POISON'));
    await parkedAt(bridge, orgId, s, 'log message g1');
    // 40 messages of 60,000 characters, then short ones until the history asks for a new run.
    const big = (i: number) => `large ${i} ${'x'.repeat(60_000)}`;
    for (let i = 2; i <= 41; i++) {
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, `g${i}`, big(i)));
    }
    for (let i = 42; i <= 141; i++) {
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, `g${i}`, `short ${i}`));
    }
    await waitFor(
      'a new run while parked',
      async () => (await bridge.session(orgId, s)).body?.runs > 1,
      60_000,
    );
    const spilled = await bridge.store.db.query<{ n: string }>(
      'SELECT count(*) AS n FROM conversation_spill',
    );
    assert.ok(Number(spilled[0]!.n) > 0, 'the queue over the budget went to the store');
    // The new run does the interrupted step again, and parks on it again.
    await parkedAt(bridge, orgId, s, 'log message g1');
    const r = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/skip`, { reason: 'poison' });
    assert.equal(r.status, 200, r.text);
    bridge.emu.setFaults({ rejectWrite: null });
    await waitFor(
      'all 140 messages after the poison logged',
      async () => (await bridge.session(orgId, s)).body.messages.logged === 141,
      120_000,
    );
    const order = bridge
      .activitiesOf(caseId)
      .map((a) => /(large|short) (\d+)/.exec(String(a.Title))?.[2])
      .filter((n): n is string => n !== undefined)
      .map(Number);
    assert.deepEqual(
      order,
      Array.from({ length: 140 }, (_, i) => i + 2),
    );
  });
});

describe('idle timeout while parked (issue 9.4)', () => {
  const bridge = new Bridge({ conversation: { idleTimeout: '4s', parkedRetryEvery: '1h' } });
  before(() => bridge.start());
  after(() => bridge.close());

  it('a conversation parked on a step still finishes at its idle timeout, and says why', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    bridge.emu.setFaults({ rejectWrite: POISON });
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'i1', 'POISON'));
    const result = await bridge.result(orgId, s, 30_000);
    assert.equal(result.status, 'closed');
    assert.ok(
      result.notes.some((n: { message: string }) =>
        /idle timeout while the step 'log message i1' was parked/.test(n.message),
      ),
      JSON.stringify(result.notes),
    );
  });
});

describe('events at and after the close (issue 9.2, 9.7)', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  async function closedConversation(orgId: string) {
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'a1', 'I need help'));
    const caseId = await bridge.caseOf(orgId, s);
    await bridge.send(orgId, 'conversation.closed', ev.closed(s, 'resolved'));
    await bridge.result(orgId, s);
    return { s, caseId };
  }

  it('a customer message after the close is logged on the same case, with its own timestamp (default: the case stays resolved)', async () => {
    const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved });
    const { s, caseId } = await closedConversation(orgId);
    const late = ev.message(s, 'a2', 'one more thing');
    const lateId = `msg_${randomUUID()}`;
    const r = await bridge.send(orgId, 'conversation.contact_response', late, { id: lateId });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.resumed, true);
    await waitFor('the late message logged', () =>
      titles(bridge, caseId).some((t) => t.includes('one more thing')),
    );
    const act = bridge.activitiesOf(caseId).find((a) => String(a.Title).includes('one more thing'))!;
    assert.equal(new Date(String(act.StartDate)).toISOString(), late.timestamp);
    assert.equal(bridge.emu.rows('Case').filter((c) => String(c.Notes).includes(s)).length, 1);
    assert.equal(bridge.emu.tables.get('Case')!.get(caseId)!.StatusId, IDS.caseStatus.Resolved);
    // The session link is not written twice by the resumed run.
    assert.equal(titles(bridge, caseId).filter((t) => t.includes('View session')).length, 1);
    // A redelivery of the late event is a duplicate; the same message under another delivery id is
    // found on the case and not written again.
    const again = await bridge.send(orgId, 'conversation.contact_response', late, { id: lateId });
    assert.equal(again.body.status, 'duplicate');
    assert.equal((await bridge.send(orgId, 'conversation.contact_response', late)).status, 202);
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'a3', 'sentinel'));
    await waitFor('sentinel', () => titles(bridge, caseId).some((t) => t.includes('sentinel')));
    assert.equal(titles(bridge, caseId).filter((t) => t.includes('one more thing')).length, 1);
  });

  it('afterClose "reopen": a customer message after the close reopens the case', async () => {
    const orgId = await bridge.connectOrg({
      resolvedStatusId: IDS.caseStatus.Resolved,
      afterClose: 'reopen',
      reopenStatusId: IDS.caseStatus['In progress'],
    });
    const { s, caseId } = await closedConversation(orgId);
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'a2', 'it broke again'));
    await waitFor(
      'the case reopened',
      () => bridge.emu.tables.get('Case')!.get(caseId)!.StatusId === IDS.caseStatus['In progress'],
    );
    assert.ok(titles(bridge, caseId).some((t) => t.includes('it broke again')));
    const st = (await bridge.session(orgId, s)).body;
    assert.equal(st.status, 'open');
    assert.equal(st.caseId, caseId);
  });

  it('afterClose "reopen" without reopenStatusId is refused by Test & Save, naming the field', async () => {
    const r = await bridge.api.request(
      'PUT',
      `/v1/orgs/org-${randomUUID().slice(0, 8)}/integrations/creatio`,
      { ...(await import('../helpers')).validSettings(bridge.emu), afterClose: 'reopen' },
    );
    assert.equal(r.status, 400);
    assert.equal(r.body.error.field, 'reopenStatusId');
  });

  it('a message queued behind the close in the same run is logged, not dropped', async () => {
    const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved });
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'q1', 'first'));
    const caseId = await bridge.caseOf(orgId, s);
    // Resolving the case takes a while: the next message arrives while the close is being handled.
    bridge.emu.setFaults({ latencyMs: 400 });
    try {
      await bridge.send(orgId, 'conversation.closed', ev.closed(s, 'resolved'));
      const r = await bridge.send(
        orgId,
        'conversation.contact_response',
        ev.message(s, 'q2', 'right behind the close'),
      );
      assert.equal(r.status, 202);
      assert.equal(r.body.resumed, undefined, 'the message reached the run that was closing');
      await waitFor('q2 logged', () =>
        titles(bridge, caseId).some((t) => t.includes('right behind the close')),
      );
    } finally {
      bridge.emu.setFaults({ latencyMs: 0 });
    }
    const result = await bridge.result(orgId, s);
    assert.equal(result.status, 'closed');
    assert.equal(result.messages.logged, 2);
  });

  it('a closed conversation whose case was deleted in Creatio gets a case again for a late message', async () => {
    const orgId = await bridge.connectOrg();
    const { s, caseId } = await closedConversation(orgId);
    bridge.emu.tables.get('Case')!.delete(caseId);
    for (const a of bridge.activitiesOf(caseId)) bridge.emu.tables.get('Activity')!.delete(String(a.Id));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'a2', 'are you there?'));
    await waitFor('a case again', () => bridge.emu.tables.get('Case')!.has(caseId));
    await waitFor('the late message on it', () =>
      titles(bridge, caseId).some((t) => t.includes('are you there?')),
    );
    assert.ok(titles(bridge, caseId).some((t) => t.includes('View session')));
  });

  it('conversation.started after the first message: the case gets its contact when it arrives', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'x1', 'no started yet'));
    const caseId = await bridge.caseOf(orgId, s);
    assert.ok(
      !bridge.emu.tables.get('Case')!.get(caseId)!.ContactId ||
        bridge.emu.tables.get('Case')!.get(caseId)!.ContactId === '00000000-0000-0000-0000-000000000000',
    );
    await bridge.send(
      orgId,
      'conversation.started',
      ev.started(s, { name: 'Late Larry', email: 'larry@example.com' }),
    );
    const contactId = await waitFor('the case contact', () => {
      const c = bridge.emu.tables.get('Case')!.get(caseId)!.ContactId;
      return typeof c === 'string' && c !== '00000000-0000-0000-0000-000000000000' ? c : undefined;
    });
    assert.equal(bridge.emu.tables.get('Contact')!.get(contactId)!.Email, 'larry@example.com');
  });
});
