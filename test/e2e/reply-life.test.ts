/**
 * Agent replies over a conversation's whole life: resolved in Creatio, the customer writes back,
 * the case reopens, the agent answers again. Each reply reaches the customer once, whatever run of
 * the conversation reads it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { Bridge, ev, waitFor } from '../bridge-harness';

describe('agent replies: exactly once over the conversation’s life', () => {
  const bridge = new Bridge({ conversation: { closureWaitsForReplies: '2 seconds' } });
  before(() => bridge.start());
  after(() => bridge.close());

  const texts = (s: string) => bridge.sentTexts(s);
  const reply = (caseId: string, text: string) => bridge.agentReply(caseId, text);
  const statusOf = (caseId: string) => bridge.emu.tables.get('Case')!.get(caseId)!.StatusId;

  it('resolved → the customer writes back → reopened → the next reply once, earlier ones never again; Closed sends nothing', async () => {
    const orgId = await bridge.connectOrg({
      resolvedStatusId: IDS.caseStatus.Resolved,
      afterClose: 'reopen',
      reopenStatusId: IDS.caseStatus['In progress'],
    });
    const url = await bridge.creatioWebhookUrl(orgId);
    bridge.emu.processes.push(
      { kind: 'agent_reply', url, retries: 2, activityTypes: ['Email'] },
      { kind: 'case_closure', url, retries: 2, statusNames: ['Resolved', 'Closed'] },
    );
    const s = `life-${randomUUID().slice(0, 12)}`;
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(
      orgId,
      'conversation.contact_response',
      ev.message(s, 'c1', 'The router keeps rebooting'),
    );
    const caseId = await bridge.caseOf(orgId, s);

    reply(caseId, 'reply one');
    await waitFor('reply one', () => texts(s).includes('reply one'));
    reply(caseId, 'reply two');
    await waitFor('reply two', () => texts(s).includes('reply two'));

    // Creatio resolves the case: the session is resolved and this run of the conversation ends.
    bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Resolved });
    assert.equal((await bridge.result(orgId, s)).status, 'closed');

    // The customer writes back: a new run picks the conversation up and reopens the case.
    const back = await bridge.send(
      orgId,
      'conversation.contact_response',
      ev.message(s, 'c2', 'It is rebooting again'),
    );
    assert.equal(back.status, 202);
    await waitFor('the case reopened', () => statusOf(caseId) === IDS.caseStatus['In progress']);

    reply(caseId, 'reply three');
    await waitFor('reply three', () => texts(s).includes('reply three'));
    assert.deepEqual(texts(s), ['reply one', 'reply two', 'reply three'], 'after the reopen');

    // Resolved → Closed in Creatio: the closure call makes the run read replies again; it ends
    // once that is done (the sentinel), and nothing went out twice.
    bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Resolved });
    await bridge.result(orgId, s);
    bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Closed });
    await bridge.emu.processesIdle();
    await waitFor('the Closed call handled', async () => {
      const st = (await bridge.session(orgId, s)).body;
      return st.processes?.closure?.calls >= 1 && st.workflow?.status !== 'RUNNING' ? st : undefined;
    });
    assert.deepEqual(texts(s), ['reply one', 'reply two', 'reply three'], 'after Resolved → Closed');
  });
});

describe('agent replies written before any handoff, with no process calling', () => {
  const bridge = new Bridge({ conversation: { replyCheckEvery: '1s', replyCheckMaxEvery: '2s' } });
  before(() => bridge.start());
  after(() => bridge.close());

  it('the timer finds them (the case is open, no handoff yet) without any process call', async () => {
    const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved });
    const s = `early-${randomUUID().slice(0, 12)}`;
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'c1', 'Is anyone there?'));
    const caseId = await bridge.caseOf(orgId, s);
    bridge.emu.agentEmail(caseId, {
      title: 'Re: hello',
      body: '<p>Yes, I am looking at it now.</p>',
      ownerId: IDS.contact.Supervisor,
    });
    await waitFor(
      'the reply at OpenCX',
      () =>
        bridge.opencx
          .messagesFor(s)
          .map((m) => m.text)
          .includes('Yes, I am looking at it now.'),
      30_000,
    );
    const st = (await bridge.session(orgId, s)).body;
    assert.equal(st.handedOffAt, null, 'before any handoff');
    assert.equal(st.processes.agentReply.calls, 0);
  });
});

describe('agent replies: a send held open while the history must continue as new', () => {
  // A small history limit, so that the messages arriving during the send force continue-as-new.
  const bridge = new Bridge({ conversation: { maxHistoryEvents: 60 } });
  before(() => bridge.start());
  after(() => bridge.close());

  it('continue-as-new waits for the send: the reply is at OpenCX once, and the next run goes on', async () => {
    const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved });
    const url = await bridge.creatioWebhookUrl(orgId);
    bridge.emu.processes.push({ kind: 'agent_reply', url, retries: 2, activityTypes: ['Email'] });
    const s = `can-${randomUUID().slice(0, 12)}`;
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'c0', 'hello'));
    const caseId = await bridge.caseOf(orgId, s);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let accepted = 0;
    bridge.opencx.onAccepted = async () => {
      accepted++;
      if (accepted === 1) await held;
    };
    try {
      bridge.emu.agentEmail(caseId, {
        title: 'Re: hello',
        body: '<p>held reply</p>',
        ownerId: IDS.contact.Supervisor,
      });
      await waitFor('the send accepted and held open', () => accepted === 1);
      // Customer messages while the send hangs: the history outgrows its limit.
      for (let i = 1; i <= 25; i++) {
        await bridge.send(orgId, 'conversation.contact_response', ev.message(s, `c${i}`, `${s} #${i}`));
      }
      await waitFor('continue-as-new due', async () => {
        const d = await bridge.handle(orgId, s).describe();
        return d.historyLength >= 60;
      });
      release();
      await waitFor('a new run', async () => (await bridge.session(orgId, s)).body.runs > 1, 60_000);
      await waitFor('all 25 logged', () => bridge.customerTexts(caseId).length >= 26, 60_000);
      // Positive control: a later reply goes out, so a repeat of the held one would have too.
      bridge.emu.agentEmail(caseId, {
        title: 'Re: later',
        body: '<p>later reply</p>',
        ownerId: IDS.contact.Supervisor,
      });
      await waitFor('the later reply', () =>
        bridge.opencx.messagesFor(s).some((m) => m.text === 'later reply'),
      );
      assert.deepEqual(
        bridge.opencx.messagesFor(s).map((m) => m.text),
        ['held reply', 'later reply'],
      );
    } finally {
      release();
      bridge.opencx.onAccepted = undefined;
    }
  });
});
