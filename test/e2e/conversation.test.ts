import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { Bridge, ev, waitFor } from '../bridge-harness';

const sid = () => `s-${randomUUID().slice(0, 12)}`;

describe('conversation workflow (real Temporal, real activities, Creatio emulator)', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  async function caseOf(orgId: string, sessionId: string): Promise<string> {
    const s = await waitFor(
      'the case',
      async () => (await bridge.session(orgId, sessionId)).body?.caseId as string | undefined,
    );
    return s;
  }
  const messageTitles = (caseId: string) =>
    bridge
      .activitiesOf(caseId)
      .map((a) => String(a.Title))
      .filter((t) => !t.includes('Conversation started') && !t.includes('Handed off'));

  it('every-conversation mode: creates the case at the first customer message and logs each message in order', async () => {
    const orgId = await bridge.connectOrg({
      defaultCaseOwnerId: IDS.contact.Supervisor,
      defaultCaseGroupId: IDS.sysAdminUnit['Support line 1'],
    });
    const s = sid();
    assert.equal((await bridge.send(orgId, 'conversation.started', ev.started(s))).status, 202);
    // An AI greeting before the customer writes waits for the case.
    await bridge.send(orgId, 'conversation.ai_response', ev.message(s, 'm0', 'Hi! How can I help?'));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'I cannot log in'));
    await bridge.send(orgId, 'conversation.ai_response', ev.message(s, 'm2', 'Let me check that for you.'));
    await bridge.send(
      orgId,
      'conversation.agent_response',
      ev.message(s, 'm3', 'I reset it for you.', 'Sam'),
    );
    const caseId = await caseOf(orgId, s);
    await waitFor(
      '4 logged messages',
      async () => (await bridge.session(orgId, s)).body.messages.logged === 4,
    );

    const c = bridge.emu.tables.get('Case')!.get(caseId)!;
    assert.match(String(c.Subject), new RegExp(`Jane Doe \\(session ${s}\\)`));
    assert.equal(c.OwnerId, IDS.contact.Supervisor);
    assert.equal(c.GroupId, IDS.sysAdminUnit['Support line 1']);
    assert.equal(c.OriginId, IDS.caseOrigin.Chat);
    const contact = bridge.emu.tables.get('Contact')!.get(String(c.ContactId))!;
    assert.equal(contact.Email, 'jane@example.com');

    const acts = bridge.activitiesOf(caseId);
    assert.match(String(acts[0]!.Title), /View session in OpenCX/);
    assert.match(String(acts[0]!.Body), new RegExp(`https://platform.open.cx/inbox/${s}`));
    assert.deepEqual(messageTitles(caseId), [
      '[OpenCX] AI agent: Hi! How can I help?',
      '[OpenCX] Customer: I cannot log in',
      '[OpenCX] AI agent: Let me check that for you.',
      '[OpenCX] OpenCX agent Sam: I reset it for you.',
    ]);
    // Original timestamps, increasing.
    const starts = acts.slice(1).map((a) => Date.parse(String(a.StartDate)));
    assert.deepEqual(
      [...starts].sort((a, b) => a - b),
      starts,
    );
    assert.ok(
      acts.every((a) => a.StatusId === IDS.activityStatus.Completed && a.TypeId === IDS.activityType.Task),
    );

    // The operator finds it in Temporal by case id and by session id.
    const byCase = await waitFor(
      'visibility',
      async () => (await bridge.client.workflow.count(`CreatioCaseId = '${caseId}'`)).count,
    );
    assert.equal(byCase, 1);
    assert.equal(
      (await bridge.client.workflow.count(`OpenCXSessionId = '${s}' AND OrgId = '${orgId}'`)).count,
      1,
    );
    // The case ⇄ session map is there for the Creatio webhook.
    assert.equal((await bridge.store.findSessionByCase(orgId, caseId))?.sessionId, s);
  });

  it('handoff-only mode: writes nothing until handoff, then the case and the whole transcript', async () => {
    const orgId = await bridge.connectOrg({ createCaseOnlyOnHandoff: true });
    const s = sid();
    await bridge.send(
      orgId,
      'conversation.started',
      ev.started(s, { name: 'Ann', phone_number: '+15550001111' }, 'sms'),
    );
    for (let i = 1; i <= 4; i++) {
      await bridge.send(
        orgId,
        i % 2 ? 'conversation.contact_response' : 'conversation.ai_response',
        ev.message(s, `m${i}`, `text ${i}`),
      );
    }
    await waitFor('4 received', async () => (await bridge.session(orgId, s)).body?.messages?.received === 4);
    const state = (await bridge.session(orgId, s)).body;
    assert.equal(state.caseId, null);
    assert.equal(state.mode, 'handoff_only');
    assert.equal(state.messages.pending, 4);
    assert.equal(
      bridge.emu.count('POST Case') + bridge.emu.count('POST Activity'),
      0,
      'no Creatio writes before handoff',
    );

    await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
    const caseId = await caseOf(orgId, s);
    await waitFor('handoff note', () =>
      bridge.activitiesOf(caseId).some((a) => String(a.Title).includes('Handed off')),
    );
    const c = bridge.emu.tables.get('Case')!.get(caseId)!;
    assert.match(String(c.Symptoms), /Customer cannot log in after the password reset\./);
    assert.match(String(c.Symptoms), /Language: en/);
    assert.match(String(c.Symptoms), /Sentiment: angry/);
    assert.deepEqual(messageTitles(caseId), [
      '[OpenCX] Customer: text 1',
      '[OpenCX] AI agent: text 2',
      '[OpenCX] Customer: text 3',
      '[OpenCX] AI agent: text 4',
    ]);
    assert.equal(bridge.emu.tables.get('Contact')!.get(String(c.ContactId))?.Phone, '+15550001111');
  });

  it('handoff-only mode: a conversation closed without handoff never creates a case', async () => {
    const orgId = await bridge.connectOrg({ createCaseOnlyOnHandoff: true });
    const s = sid();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'thanks, solved'));
    await bridge.send(orgId, 'conversation.closed', ev.closed(s));
    const result = await bridge.result(orgId, s);
    assert.equal(result.caseId, null);
    assert.ok(result.notes.some((n: { message: string }) => /no case was created/.test(n.message)));
    assert.equal(bridge.emu.count('POST Case'), 0);
  });

  it('handoff on an existing case: writes the summary and adds a handoff note, no second case', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'help'));
    const caseId = await caseOf(orgId, s);
    await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
    await waitFor('handoff note', () =>
      bridge.activitiesOf(caseId).some((a) => String(a.Title).includes('Handed off')),
    );
    assert.equal(bridge.emu.rows('Case').filter((c) => String(c.Subject).includes(s)).length, 1);
    assert.match(String(bridge.emu.tables.get('Case')!.get(caseId)!.Symptoms), /Sentiment: angry/);
    const state = (await bridge.session(orgId, s)).body;
    assert.ok(state.handedOffAt);
  });

  it('duplicate deliveries change nothing', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    const first = await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hello'), {
      id: 'msg_dup_1',
    });
    assert.equal(first.status, 202);
    const replay = await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hello'), {
      id: 'msg_dup_1',
    });
    assert.equal(replay.status, 200);
    assert.equal(replay.body.status, 'duplicate');
    // The same message under another delivery id is still one activity.
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hello'));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'second'));
    const caseId = await caseOf(orgId, s);
    await waitFor('2 logged', async () => (await bridge.session(orgId, s)).body.messages.logged === 2);
    const history = await bridge.handle(orgId, s).fetchHistory();
    const signals = history.events!.filter((e) => e.workflowExecutionSignaledEventAttributes).length;
    assert.equal(signals, 3, 'the replayed webhook-id was not signalled');
    assert.deepEqual(messageTitles(caseId), ['[OpenCX] Customer: hello', '[OpenCX] Customer: second']);
  });

  it('closing as resolved sets the Resolved Status ID and ends the workflow', async () => {
    const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved });
    const s = sid();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'help'));
    await bridge.send(orgId, 'conversation.closed', ev.closed(s, 'resolved'));
    const result = await bridge.result(orgId, s);
    assert.equal(result.status, 'closed');
    assert.equal(bridge.emu.tables.get('Case')!.get(result.caseId)!.StatusId, IDS.caseStatus.Resolved);
    // A late event for the finished conversation is not dropped: it goes on the same case.
    const late = await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm9', 'late'));
    assert.equal(late.status, 202);
    assert.equal(late.body.resumed, true);
    await waitFor('the late message on the case', () =>
      bridge.activitiesOf(result.caseId).some((a) => String(a.Title).includes('late')),
    );
  });

  it('closing as resolved without a Resolved Status ID records why the status was not changed', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'help'));
    await bridge.send(orgId, 'conversation.closed', ev.closed(s, 'resolved'));
    const result = await bridge.result(orgId, s);
    assert.equal(bridge.emu.tables.get('Case')!.get(result.caseId)!.StatusId, IDS.caseStatus.New);
    assert.ok(result.notes.some((n: { message: string }) => /no Resolved Status ID/.test(n.message)));
  });

  it('a settings change applies to a running conversation from its next step', async () => {
    const orgId = await bridge.connectOrg({ createCaseOnlyOnHandoff: true });
    const s = sid();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'one'));
    await waitFor('received', async () => (await bridge.session(orgId, s)).body?.messages?.received === 1);
    const put = await bridge.changeSettings(orgId, { createCaseOnlyOnHandoff: false });
    assert.equal(put.status, 200, put.text);
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'two'));
    const caseId = await caseOf(orgId, s);
    await waitFor('2 logged', async () => (await bridge.session(orgId, s)).body.messages.logged === 2);
    assert.deepEqual(messageTitles(caseId), ['[OpenCX] Customer: one', '[OpenCX] Customer: two']);
  });

  it('200 messages arriving in bursts become 200 activities in order, across continue-as-new', async (t) => {
    // Its own bridge, whose conversations continue as new at 150 events: 200 deliveries are at
    // least 200 events, so continue-as-new happens however the bursts are batched.
    const bridge = await new Bridge({ conversation: { maxHistoryEvents: 150 } }).start();
    t.after(() => bridge.close());
    const messageTitles = (caseId: string) =>
      bridge
        .activitiesOf(caseId)
        .map((a) => String(a.Title))
        .filter((title) => !title.includes('Conversation started') && !title.includes('Handed off'));
    const orgId = await bridge.connectOrg();
    const s = sid();
    // Ten bursts of twenty deliveries, each sent as soon as the previous one is acknowledged,
    // with a pause between bursts while the workflow is still logging.
    for (let burst = 0; burst < 10; burst++) {
      for (let j = 0; j < 20; j++) {
        const n = burst * 20 + j;
        const kind = n % 2 === 0 ? 'conversation.contact_response' : 'conversation.ai_response';
        const res = await bridge.send(orgId, kind, ev.message(s, `m${n}`, `message ${n}`));
        assert.equal(res.status, 202);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const caseId = await bridge.caseOf(orgId, s, 60_000);
    await waitFor(
      '200 logged',
      async () => (await bridge.session(orgId, s)).body.messages.logged === 200,
      180_000,
      500,
    );
    const titles = messageTitles(caseId);
    assert.equal(titles.length, 200);
    titles.forEach((t, n) => assert.ok(t.endsWith(`: message ${n}`), `activity ${n} is "${t}"`));
    // The run reaches 150 events during the logging or right after it: the last continue-as-new
    // may come just after the 200th write.
    const state = await waitFor('continue-as-new', async () => {
      const b = (await bridge.session(orgId, s)).body;
      return b.runs > 1 ? b : undefined;
    });
    assert.equal(state.messages.received, 200);
  });

  it('a failure retrying cannot fix is parked and visible, and resumes once fixed', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'first'));
    const caseId = await caseOf(orgId, s);
    await waitFor('1 logged', async () => (await bridge.session(orgId, s)).body.messages.logged === 1);
    const client = bridge.emu.clients.get('sandbox-client')!;
    client.denied = { Activity: ['create'] };
    try {
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'second'));
      const parked = await waitFor(
        'parked error',
        async () => (await bridge.session(orgId, s)).body.lastError,
      );
      assert.equal(parked.type, 'CreatioForbiddenError');
      assert.equal(parked.parked, true);
      assert.match(parked.message, /403/);
    } finally {
      client.denied = {};
    }
    await bridge.handle(orgId, s).signal('resume');
    await waitFor('2 logged', async () => (await bridge.session(orgId, s)).body.messages.logged === 2);
    assert.equal((await bridge.session(orgId, s)).body.lastError, null);
    assert.equal(messageTitles(caseId).length, 2);
  });

  describe('ingress rejects bad input with a 4xx naming it', () => {
    let orgId: string;
    before(async () => {
      orgId = await bridge.connectOrg();
    });
    const post = (body: string, headers: Record<string, string>) =>
      fetch(`${bridge.api.url}/webhooks/opencx`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body,
      }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as any,
      }));

    it('missing signature headers → 401', async () => {
      const r = await post('{}', {});
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'missing_signature');
      assert.match(r.body.error.message, /webhook-id, webhook-timestamp, webhook-signature/);
    });
    it('a wrong signature → 401', async () => {
      const r = await bridge.send(orgId, 'conversation.contact_response', ev.message(sid(), 'm', 'x'), {
        secret: 'whsec_d3Jvbmc=',
      });
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'invalid_signature');
    });
    it('a stale timestamp → 401 naming it', async () => {
      const r = await bridge.send(orgId, 'conversation.contact_response', ev.message(sid(), 'm', 'x'), {
        timestamp: Math.floor(Date.now() / 1000) - 600,
      });
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'stale_timestamp');
      assert.match(r.body.error.message, /webhook-timestamp/);
    });
    it('a signature over another body → 401', async () => {
      const r = await bridge.send(orgId, 'conversation.contact_response', ev.message(sid(), 'm', 'x'), {
        headers: { 'webhook-signature': 'v1,AAAA v1,BBBB' },
      });
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'invalid_signature');
    });
    it('an unknown organization → the same 401 as a wrong signature (nothing tells which orgs exist)', async () => {
      const unknown = await bridge.send(
        'no-such-org',
        'conversation.contact_response',
        ev.message(sid(), 'm', 'x'),
      );
      const wrong = await bridge.send(orgId, 'conversation.contact_response', ev.message(sid(), 'm', 'x'), {
        secret: `whsec_${Buffer.from('another-secret-entirely-0123456789').toString('base64')}`,
      });
      assert.equal(unknown.status, 401);
      assert.equal(unknown.body.error.code, 'invalid_signature');
      assert.deepEqual(unknown.body, wrong.body);
    });
    it('not JSON → 400', async () => {
      const r = await post('{nope', {
        'webhook-id': 'a',
        'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
        'webhook-signature': 'v1,x',
      });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, 'invalid_json');
    });
    it('a missing message id → 400 naming data.message.id', async () => {
      const r = await bridge.send(orgId, 'conversation.contact_response', {
        conversation_id: sid(),
        message: { text: 'x' },
        timestamp: new Date().toISOString(),
      });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.field, 'data.message.id');
    });
    it('a wrong type → 400 naming the field', async () => {
      const r = await bridge.send(orgId, 'conversation.closed', {
        ...ev.closed(sid()),
        resolution_status: 'maybe',
      });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.field, 'data.resolution_status');
    });
    it('a bad conversation id → 400', async () => {
      const r = await bridge.send(
        orgId,
        'conversation.contact_response',
        ev.message('bad id/../x', 'm', 'x'),
      );
      assert.equal(r.status, 400);
      assert.equal(r.body.error.field, 'data.conversation_id');
    });
    it('an event the bridge does not use → 202, ignored', async () => {
      const r = await bridge.send(orgId, 'csat.requested', { conversation_id: sid() });
      assert.equal(r.status, 202);
      assert.equal(r.body.status, 'ignored');
    });
    it('an unknown session → 404 on the state endpoint', async () => {
      const r = await bridge.session(orgId, sid());
      assert.equal(r.status, 404);
      assert.equal(r.body.error.code, 'session_not_found');
    });
  });
});
