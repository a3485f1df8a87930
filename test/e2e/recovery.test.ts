import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Bridge, ev, waitFor } from '../bridge-harness';

describe('Creatio recovery: each retry is cheap (issue 9.6)', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  it('creating the case under failing creates: a retry does not look the contact up again, and the case is made once', async () => {
    // Contacts matched by the address typed, so that there is a lookup to repeat (or not).
    const orgId = await bridge.connectOrg({ contactMatching: 'email_or_phone' });
    const s = `r-${randomUUID().slice(0, 12)}`;
    let caseCreates = 0;
    bridge.emu.setFaults({
      rejectWrite: (set) =>
        set === 'Case' && ++caseCreates <= 3 ? { status: 503, message: 'Service unavailable' } : null,
    });
    try {
      await bridge.send(
        orgId,
        'conversation.started',
        ev.started(s, { name: 'Flaky', email: 'flaky@example.com' }),
      );
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hello'));
      const caseId = await bridge.caseOf(orgId, s);
      await waitFor('m1 logged', () =>
        bridge.activitiesOf(caseId).some((a) => String(a.Title).includes('hello')),
      );
    } finally {
      bridge.emu.setFaults({ rejectWrite: null });
    }
    assert.equal(caseCreates, 4, 'three refused creates, then one that landed');
    // The contact was looked up by the first try (a local activity) and by the first attempt of
    // the durable activity; its retries reuse what that attempt recorded (heartbeat progress).
    assert.equal(bridge.emu.count('GET Contact'), 2);
    assert.equal(bridge.emu.count('POST Contact'), 1);
    assert.equal(bridge.emu.rows('Case').filter((c) => String(c.Notes).includes(s)).length, 1);
  });

  it('a backlog of queued messages is written in order, exactly once, by a few activities (not one per message)', async () => {
    const orgId = await bridge.connectOrg();
    const s = `b-${randomUUID().slice(0, 12)}`;
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm0', 'first'));
    const caseId = await bridge.caseOf(orgId, s);
    // Creatio is slow: messages queue up behind the write under way.
    bridge.emu.setFaults({ latencyMs: 150 });
    try {
      for (let i = 1; i <= 120; i++) {
        await bridge.send(orgId, 'conversation.contact_response', ev.message(s, `m${i}`, `burst ${i}`));
      }
      await waitFor(
        'all 121 logged',
        async () => (await bridge.session(orgId, s)).body?.messages?.logged === 121,
        60_000,
      );
    } finally {
      bridge.emu.setFaults({ latencyMs: 0 });
    }
    const burst = bridge
      .activitiesOf(caseId)
      .map((a) => /burst (\d+)$/.exec(String(a.Title))?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number);
    assert.deepEqual(
      burst,
      Array.from({ length: 120 }, (_, i) => i + 1),
    );
    let writes = 0;
    const history = await bridge.handle(orgId, s).fetchHistory();
    for (const e of history.events ?? []) {
      const type = e.activityTaskScheduledEventAttributes?.activityType?.name;
      if (type === 'logEntry' || type === 'logEntries') writes++;
      // First tries (local activities) of the case, the session link and the messages.
      if (e.markerRecordedEventAttributes?.markerName === 'core_local_activity') writes++;
    }
    assert.ok(writes > 1, 'the writes are counted (positive control)');
    assert.ok(writes < 40, `${writes} write activities for 121 messages`);
  });
});
