import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Bridge, ev, waitFor } from '../bridge-harness';

const sid = () => `i-${randomUUID().slice(0, 12)}`;

/** Sends and measures; a request the bridge leaves hanging fails the test instead of hanging it. */
async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; r: T }> {
  const started = Date.now();
  const r = await fn();
  return { ms: Date.now() - started, r };
}

const titles = (bridge: Bridge, caseId: string) => bridge.activitiesOf(caseId).map((a) => String(a.Title));

describe('ingress: an event is acknowledged only once Temporal has it (issue 9.1)', () => {
  const bridge = new Bridge({ proxyApiTemporal: true, proxyStore: true });
  before(() => bridge.start());
  after(() => bridge.close());

  it('Temporal hanging: the first attempt and a redelivery both get 503 within 5 s, never "duplicate"; the redelivery after recovery is logged once', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'first'));
    const caseId = await bridge.caseOf(orgId, s);

    bridge.temporalProxy!.set('blackhole');
    const id = `msg_${randomUUID()}`;
    const data = ev.message(s, 'm2', 'sent while Temporal hangs');
    const first = timed(() => bridge.send(orgId, 'conversation.contact_response', data, { id }));
    await new Promise((r) => setTimeout(r, 300));
    // The sender retries while the first attempt is still running.
    const redelivery = await timed(() => bridge.send(orgId, 'conversation.contact_response', data, { id }));
    const firstDone = await first;
    for (const attempt of [firstDone, redelivery]) {
      assert.equal(attempt.r.status, 503, JSON.stringify(attempt.r.body));
      assert.equal(attempt.r.body.error.code, 'temporal_unavailable');
      assert.ok(attempt.ms < 6_000, `answered in ${attempt.ms} ms`);
    }

    bridge.temporalProxy!.set('up');
    const later = await waitFor(
      'a redelivery accepted once Temporal is back',
      async () => {
        const r = await bridge.send(orgId, 'conversation.contact_response', data, { id });
        return r.status === 202 ? r : undefined;
      },
      30_000,
      500,
    );
    assert.equal(later.body.status, 'accepted');
    // A redelivery of an event Temporal has is a duplicate, truthfully.
    const dup = await bridge.send(orgId, 'conversation.contact_response', data, { id });
    assert.equal(dup.status, 200);
    assert.equal(dup.body.status, 'duplicate');
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm3', 'sentinel'));
    await waitFor('the sentinel logged', () => titles(bridge, caseId).some((t) => t.includes('sentinel')));
    assert.equal(titles(bridge, caseId).filter((t) => t.includes('sent while Temporal hangs')).length, 1);
  });

  it('store hanging: an organization whose secret is cached is still accepted (Temporal has the event); an unknown one gets 503 store_unavailable within 5 s', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'before the outage'));
    const caseId = await bridge.caseOf(orgId, s);

    bridge.storeProxy!.set('blackhole');
    try {
      const during = await timed(() =>
        bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'during the store outage')),
      );
      assert.equal(during.r.status, 202, JSON.stringify(during.r.body));
      assert.ok(during.ms < 6_000, `answered in ${during.ms} ms`);

      const stranger = await timed(() =>
        bridge.send('org-never-cached', 'conversation.started', ev.started(sid())),
      );
      assert.equal(stranger.r.status, 503, JSON.stringify(stranger.r.body));
      assert.equal(stranger.r.body.error.code, 'store_unavailable');
      assert.ok(stranger.ms < 6_000, `answered in ${stranger.ms} ms`);
    } finally {
      bridge.storeProxy!.set('up');
    }
    await waitFor(
      'the message sent during the outage logged',
      () => titles(bridge, caseId).some((t) => t.includes('during the store outage')),
      60_000,
    );
  });

  it('a 30-second store outage delays a new conversation by about 30 seconds, not by the parked-step hour (issue 9.3)', async () => {
    const orgId = await bridge.connectOrg();
    // A first conversation: the webhook secret and the settings are known to this process.
    const warm = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(warm));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(warm, 'w1', 'warm-up'));
    await bridge.caseOf(orgId, warm);

    const s = sid();
    bridge.storeProxy!.set('blackhole');
    let restoredAt = 0;
    try {
      assert.equal((await bridge.send(orgId, 'conversation.started', ev.started(s))).status, 202);
      assert.equal(
        (await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'n1', 'during the outage')))
          .status,
        202,
      );
      await new Promise((r) => setTimeout(r, 30_000));
    } finally {
      bridge.storeProxy!.set('up');
      restoredAt = Date.now();
    }
    const caseId = await bridge.caseOf(orgId, s, 20_000);
    await waitFor('the message logged', () =>
      titles(bridge, caseId).some((t) => t.includes('during the outage')),
    );
    const afterMs = Date.now() - restoredAt;
    assert.ok(afterMs < 10_000, `case and message ${afterMs} ms after the store came back`);
    const st = (await bridge.session(orgId, s)).body;
    assert.equal(st.lastError, null, JSON.stringify(st.lastError));
  });

  it('a signed event with data.timestamp 1e20 is a 400 naming the field, not a 500 (issue 9.7)', async () => {
    const orgId = await bridge.connectOrg();
    const r = await bridge.send(orgId, 'conversation.contact_response', {
      ...ev.message(sid(), 'm1', 'from the far future'),
      timestamp: 1e20,
    });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.field, 'data.timestamp');
  });
});
