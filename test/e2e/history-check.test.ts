/**
 * OpenCX's history is the transcript's source of truth: messages whose webhook never arrived are
 * found there and logged once, in order; what the webhooks brought (under the same id or another)
 * is recognised and never logged twice; a message written before the close does not reopen the case.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { Bridge, ev, waitFor } from '../bridge-harness';

const sid = () => `hc-${randomUUID().slice(0, 12)}`;
const PREFIX = '[OpenCX] Customer: ';

describe('history check: the OpenCX history fills what the webhooks missed', () => {
  const bridge = new Bridge({
    conversation: { historyCheckAfter: '2 seconds', historyCheckMaxEvery: '20 seconds' },
  });
  before(() => bridge.start());
  after(() => bridge.close());

  /** Customer messages on the case, in the case's own order (StartDate, as Creatio shows them). */
  const customerTimeline = (caseId: string) =>
    bridge
      .activitiesOf(caseId)
      .filter((a) => String(a.Title).startsWith(PREFIX))
      .sort((a, b) => Date.parse(String(a.StartDate)) - Date.parse(String(b.StartDate)))
      .map((a) => String(a.Title).slice(PREFIX.length));

  /** The session once a history check has run after `t` (the positive control of "nothing more"). */
  const checkedAfter = (orgId: string, s: string, t: number) =>
    waitFor(`a history check of ${s} after ${new Date(t).toISOString()}`, async () => {
      const b = (await bridge.session(orgId, s)).body;
      return b.history?.lastCheckAt && Date.parse(b.history.lastCheckAt) > t ? b : undefined;
    });

  async function deliver(orgId: string, body: { event: string; data: unknown }) {
    const r = await bridge.send(orgId, body.event, body.data as Record<string, unknown>);
    assert.equal(r.status, 202, JSON.stringify(r.body));
  }

  it('three message events lost before the bridge, one delivered: all four on the case once, in order, within the interval', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    const o = { organizationId: orgId };
    await deliver(
      orgId,
      bridge.opencx.startConversation(s, { ...o, firstMessage: 'Hello, my parcel is late' }),
    );
    // People write milliseconds apart at least: each message has a time of its own.
    const tick = () => new Promise((r) => setTimeout(r, 5));
    await tick();
    bridge.opencx.say(s, 'contact', 'It was due on Monday', o); // lost
    await tick();
    bridge.opencx.say(s, 'ai', 'Let me look that up for you', o); // lost
    await tick();
    bridge.opencx.say(s, 'contact', 'Order 5512', o); // lost
    await tick();
    await deliver(orgId, bridge.opencx.say(s, 'contact', 'Are you still there?', o));
    const caseId = await bridge.caseOf(orgId, s);
    const t0 = Date.now();
    await waitFor(
      'the lost messages logged from the history',
      () => customerTimeline(caseId).length >= 4,
      30_000,
    );
    const took = Date.now() - t0;
    assert.deepEqual(customerTimeline(caseId), [
      'Hello, my parcel is late',
      'It was due on Monday',
      'Order 5512',
      'Are you still there?',
    ]);
    assert.equal(
      bridge.activitiesOf(caseId).filter((a) => String(a.Title).includes('Let me look that up')).length,
      1,
      "the AI's lost message too",
    );
    // Positive control for "never twice": a later message is logged, and a later check finds nothing new.
    await deliver(orgId, bridge.opencx.say(s, 'contact', 'sentinel', o));
    await waitFor('sentinel logged', () => customerTimeline(caseId).includes('sentinel'));
    const st = await checkedAfter(orgId, s, Date.now());
    assert.equal(st.history.found, 3, 'two customer messages and one AI message were missing');
    assert.equal(st.history.finding, null);
    assert.equal(customerTimeline(caseId).length, 5, 'each message once');
    assert.ok(took < 20_000, `found within the interval (took ${took} ms)`);
  });

  it('a webhook whose message id differs from the history item: recognised by content, logged once', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    const o = { organizationId: orgId };
    await deliver(orgId, bridge.opencx.startConversation(s, { ...o, firstMessage: 'first words' }));
    // The first message also comes as a contact_response, under an id of its own.
    await deliver(orgId, {
      event: 'conversation.contact_response',
      data: { ...ev.message(s, `wh-${randomUUID()}`, 'first words') },
    });
    // An OpenCX whose webhooks carry ids of their own (not the history's), consistently.
    const sayWithOwnId = async (text: string) => {
      const said = bridge.opencx.say(s, 'contact', text, o);
      const data = said.data as { message: { id: string } };
      await deliver(orgId, {
        event: said.event,
        data: { ...data, message: { ...data.message, id: `wh-${randomUUID()}` } },
      });
    };
    await sayWithOwnId('same words, other id');
    const caseId = await bridge.caseOf(orgId, s);
    // The history check runs after the quiet interval and recognises both.
    await waitFor('a history check', async () => (await bridge.session(orgId, s)).body.history?.lastCheckAt);
    await sayWithOwnId('sentinel');
    await waitFor('sentinel logged', () => customerTimeline(caseId).includes('sentinel'));
    assert.equal((await checkedAfter(orgId, s, Date.now())).history.found, 0);
    assert.deepEqual(customerTimeline(caseId), ['first words', 'same words, other id', 'sentinel']);
    // The customer who really writes the same words twice wrote two messages.
    await sayWithOwnId('sentinel');
    await waitFor(
      'the second sentinel',
      () => customerTimeline(caseId).filter((t) => t === 'sentinel').length === 2,
    );
    assert.equal((await checkedAfter(orgId, s, Date.now())).history.found, 0);
    assert.deepEqual(customerTimeline(caseId), [
      'first words',
      'same words, other id',
      'sentinel',
      'sentinel',
    ]);
  });

  it('a message event the bridge cannot read: refused (400, kept, named), and logged once from the history', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    const o = { organizationId: orgId };
    await deliver(orgId, bridge.opencx.startConversation(s, { ...o, firstMessage: 'Hi there' }));
    const caseId = await bridge.caseOf(orgId, s);
    const said = bridge.opencx.say(s, 'contact', 'my id is somewhere else', o);
    const data = said.data as { message: { id: string; text: string } };
    // A body whose message id is where the bridge does not look.
    const odd = { ...data, message: { uuid: data.message.id, text: data.message.text } };
    const r = await bridge.send(orgId, said.event, odd);
    assert.equal(r.status, 400);
    assert.equal(r.body.error.field, 'data.message.id');
    const kept = await bridge.api.request('GET', `/v1/orgs/${orgId}/opencx-events`);
    assert.ok(
      JSON.stringify(kept.body).includes('data.message.id'),
      `kept and named: ${JSON.stringify(kept.body)}`,
    );
    await waitFor('logged from the history', () =>
      customerTimeline(caseId).includes('my id is somewhere else'),
    );
    // OpenCX delivers it again: refused again, still logged once (positive control: a later message).
    assert.equal((await bridge.send(orgId, said.event, odd)).status, 400);
    await deliver(orgId, bridge.opencx.say(s, 'contact', 'sentinel', o));
    await waitFor('sentinel logged', () => customerTimeline(caseId).includes('sentinel'));
    await checkedAfter(orgId, s, Date.now());
    assert.deepEqual(customerTimeline(caseId), ['Hi there', 'my id is somewhere else', 'sentinel']);
  });

  it("the bridge's own agent reply, in the history as a human agent's message, is not logged back on the case", async () => {
    const orgId = await bridge.connectOrg();
    const url = await bridge.creatioWebhookUrl(orgId);
    bridge.emu.processes.push({ kind: 'agent_reply', url, retries: 2, activityTypes: ['Email'] });
    const s = sid();
    const o = { organizationId: orgId };
    await deliver(
      orgId,
      bridge.opencx.startConversation(s, {
        ...o,
        contact: { name: 'Jane Doe', email: 'jane@example.com' },
        firstMessage: 'Where is my refund?',
      }),
    );
    const caseId = await bridge.caseOf(orgId, s);
    bridge.emu.agentEmail(caseId, {
      title: 'Re: refund',
      body: '<p>Your refund left today.</p>',
      ownerId: IDS.contact.Supervisor,
    });
    await waitFor('the reply at OpenCX', () =>
      bridge.opencx.messagesFor(s).some((m) => m.text === 'Your refund left today.'),
    );
    const st = await checkedAfter(orgId, s, Date.now());
    assert.equal(st.history.found, 0);
    const echoes = bridge
      .activitiesOf(caseId)
      .filter(
        (a) => String(a.Title).startsWith('[OpenCX]') && String(a.Title).includes('Your refund left today'),
      );
    assert.deepEqual(echoes, [], 'the reply is not logged back as an OpenCX message');
  });

  it('a message written before the close and delivered after it: logged, the case not reopened', async () => {
    const orgId = await bridge.connectOrg({
      resolvedStatusId: IDS.caseStatus.Resolved,
      afterClose: 'reopen',
      reopenStatusId: IDS.caseStatus['In progress'],
    });
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(
      orgId,
      'conversation.contact_response',
      ev.message(s, 'b1', 'my card was charged twice'),
    );
    const caseId = await bridge.caseOf(orgId, s);
    const writtenBeforeClose = ev.message(s, 'b2', 'and the refund never came');
    await bridge.send(orgId, 'conversation.closed', ev.closed(s, 'resolved'));
    await waitFor(
      'the case resolved',
      () => bridge.emu.tables.get('Case')!.get(caseId)!.StatusId === IDS.caseStatus.Resolved,
    );
    // OpenCX retried it after a 503: it arrives after the close, with its own (earlier) time.
    writtenBeforeClose.timestamp = new Date(Date.now() - 60_000).toISOString();
    assert.equal((await bridge.send(orgId, 'conversation.contact_response', writtenBeforeClose)).status, 202);
    await waitFor('the late message logged', () =>
      customerTimeline(caseId).includes('and the refund never came'),
    );
    assert.equal(
      bridge.emu.tables.get('Case')!.get(caseId)!.StatusId,
      IDS.caseStatus.Resolved,
      'not reopened',
    );
    // Positive control: a message written after the close does reopen it.
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'b3', 'it happened again'));
    await waitFor(
      'reopened by the new message',
      () => bridge.emu.tables.get('Case')!.get(caseId)!.StatusId === IDS.caseStatus['In progress'],
    );
  });
});
