/**
 * Several API processes behind one load balancer, as production runs them: each has its own store
 * connection, its own cache of organizations (webhook secret and mode) and its own record of the
 * deliveries it took; they share Temporal and the database. What one process knows, the other
 * learns through those two only.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Bridge, ev, waitFor } from '../bridge-harness';
import type { RunningApi } from '../helpers';

const sid = () => `ap-${randomUUID().slice(0, 12)}`;
/** The receivers' cache time of both processes here (30 s as shipped; the steps it must cover take 0.2 s idle). */
const TTL_MS = 6_000;

describe('two API processes on one Temporal and one database', () => {
  const bridge = new Bridge({ receiversTtlMs: TTL_MS });
  let other: RunningApi;
  before(async () => {
    await bridge.start();
    other = await bridge.startOtherApi();
  });
  after(() => bridge.close());

  it('a redelivery that reaches the other process while the conversation runs is logged once', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    const send = (n: number, o: { id?: string; api?: RunningApi } = {}) =>
      bridge.send(orgId, 'conversation.contact_response', ev.message(s, `m${n}`, `${s} #${n}`), o);
    assert.equal((await send(0)).status, 202);
    await bridge.expectCustomerMessages(orgId, s, 1);

    // OpenCX delivers m1, and delivers it again (its answer was lost) through the other process
    // before the first process's record of it is in the database.
    const m1 = `msg_${randomUUID()}`;
    const a = await send(1, { id: m1 });
    const b = await send(1, { id: m1, api: other });
    assert.equal(a.status, 202, JSON.stringify(a.body));
    // 202 when the record was not there yet (the workflow drops the event), 200 when it was.
    assert.ok(
      b.status === 202 || (b.status === 200 && b.body.status === 'duplicate'),
      JSON.stringify(b.body),
    );

    // The other process delivers to this conversation itself (m2): it signals it from then on, and
    // a redelivery of what the first process took (m3, recorded) is signalled too, and dropped.
    assert.equal((await send(2, { api: other })).status, 202);
    const m3 = `msg_${randomUUID()}`;
    assert.equal((await send(3, { id: m3 })).status, 202);
    await waitFor('the first process recorded m3', () => bridge.store.deliverySeen(orgId, 'opencx', m3));
    const again = await send(3, { id: m3, api: other });
    assert.equal(again.status, 202, JSON.stringify(again.body));
    assert.equal((await send(4, { api: other })).status, 202);
    await bridge.expectCustomerMessages(orgId, s, 5);
  });

  it('a redelivery to a process that never delivered to the conversation is answered from the database', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    const id = `msg_${randomUUID()}`;
    const m0 = ev.message(s, 'm0', `${s} #0`);
    assert.equal((await bridge.send(orgId, 'conversation.contact_response', m0, { id })).status, 202);
    await waitFor('the first process recorded m0', () => bridge.store.deliverySeen(orgId, 'opencx', id));
    const again = await bridge.send(orgId, 'conversation.contact_response', m0, { id, api: other });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.status, 'duplicate');
    await bridge.expectCustomerMessages(orgId, s, 1);
  });

  it("a mode saved through one process: that process's next event follows it, the other's within its cache time", async () => {
    const orgId = await bridge.connectOrg();
    // The other process reads the organization (every message makes the case) into its cache.
    const s0 = sid();
    const beforeRead = Date.now();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s0, 'm', 'warm'), { api: other });
    const afterRead = Date.now();

    const put = await bridge.changeSettings(orgId, { createCaseOnlyOnHandoff: true });
    assert.equal(put.status, 200, put.text);
    const mode = async (s: string) => {
      await waitFor(
        `${s} received`,
        async () => (await bridge.session(orgId, s)).body?.messages?.received === 1,
      );
      return (await bridge.session(orgId, s)).body.mode as string;
    };

    // The process that saved it: its next conversation waits for the handoff.
    const viaSaver = sid();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(viaSaver, 'm', 'one'));
    assert.equal(await mode(viaSaver), 'handoff_only');

    // The other process, inside its cache time, still hands on the mode it read.
    const stale = sid();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(stale, 'm', 'two'), { api: other });
    assert.ok(Date.now() - beforeRead < TTL_MS, 'sent inside the cache time (the machine was too slow)');
    assert.equal(await mode(stale), 'every_conversation');
    assert.equal(await mode(s0), 'every_conversation');

    // After its cache time it reads the organization again.
    await new Promise((r) => setTimeout(r, Math.max(0, afterRead + TTL_MS - Date.now())));
    const fresh = sid();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(fresh, 'm', 'three'), {
      api: other,
    });
    assert.equal(await mode(fresh), 'handoff_only');
    assert.equal((await bridge.session(orgId, fresh)).body.caseId, null);
  });
});
