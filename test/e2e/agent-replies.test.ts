import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import type { BusinessProcess } from '../../src/sandbox/emulators/creatio';
import { Bridge, ev, waitFor } from '../bridge-harness';
import { killWorkerProcess, startWorkerProcess } from '../fixtures/worker-processes';

const sid = () => `ar-${randomUUID().slice(0, 12)}`;

/** A connected organization, its Creatio processes, and a conversation whose case exists. */
async function conversation(
  bridge: Bridge,
  o: {
    settings?: Record<string, unknown>;
    processes?: BusinessProcess['kind'][];
    handoff?: boolean;
    agentReplyTypes?: string[];
  } = {},
) {
  const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved, ...o.settings });
  const url = await bridge.creatioWebhookUrl(orgId);
  for (const kind of o.processes ?? ['agent_reply', 'case_closure']) {
    bridge.emu.processes.push(
      kind === 'agent_reply'
        ? { kind, url, retries: 2, activityTypes: o.agentReplyTypes ?? ['Email'] }
        : { kind, url, retries: 2, statusNames: ['Resolved', 'Closed'] },
    );
  }
  const s = sid();
  await bridge.send(orgId, 'conversation.started', ev.started(s));
  await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'My order never arrived'));
  if (o.handoff) await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
  const caseId = await bridge.caseOf(orgId, s);
  await waitFor(
    'first message logged',
    async () => (await bridge.session(orgId, s)).body.messages.logged >= 1,
  );
  if (o.handoff) {
    await waitFor('handoff done', async () => (await bridge.session(orgId, s)).body.nextReplyCheckAt);
  }
  return { orgId, s, caseId, url };
}

function outgoingEmail(bridge: Bridge, caseId: string, text: string, extra: Record<string, unknown> = {}) {
  return bridge.emu.agentEmail(caseId, {
    title: `Re: ${text.slice(0, 30)}`,
    body: `<p>${text}</p>`,
    ownerId: IDS.contact.Supervisor,
    extra,
  });
}

const texts = (bridge: Bridge, s: string) => bridge.opencx.messagesFor(s).map((m) => m.text);

describe('agent replies: what is sent, at any case size (real Temporal, both emulators)', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  it('after 250 messages logged by the bridge, an agent reply is still delivered', async () => {
    const { orgId, s, caseId } = await conversation(bridge);
    for (let i = 2; i <= 250; i++) {
      await bridge.send(
        orgId,
        i % 2 ? 'conversation.contact_response' : 'conversation.ai_response',
        ev.message(s, `m${i}`, `message number ${i}`),
      );
    }
    await waitFor(
      '250 logged',
      async () => (await bridge.session(orgId, s)).body.messages.logged === 250,
      120_000,
      250,
    );
    assert.ok(bridge.activitiesOf(caseId).length >= 251, 'the bridge wrote every message as an activity');
    outgoingEmail(bridge, caseId, 'Your refund was approved.');
    await waitFor('delivery', () => bridge.opencx.messagesFor(s)[0], 30_000);
    assert.deepEqual(texts(bridge, s), ['Your refund was approved.']);
  });

  it('a case with 5,000 bridge activities delivers its one reply with a handful of OData reads', async () => {
    const { orgId, s, caseId } = await conversation(bridge);
    const started = Date.parse('2026-11-20T08:00:00Z');
    for (let i = 0; i < 5_000; i++) {
      const at = new Date(started + i * 1_000).toISOString();
      bridge.emu.insert('Activity', {
        CaseId: caseId,
        Title: `[OpenCX] Customer: message ${i}`,
        Body: `message ${i}`,
        TypeId: IDS.activityType.Task,
        CreatedOn: at,
        StartDate: at,
      });
    }
    bridge.emu.calls.clear();
    outgoingEmail(bridge, caseId, 'One reply among thousands.');
    await waitFor('delivery', () => bridge.opencx.messagesFor(s)[0], 30_000);
    const reads = bridge.emu.count('GET Activity');
    console.log(
      `# 5,000 bridge activities + 1 reply: ${reads} GET Activity request(s), ${bridge.emu.odataCalls()} OData calls in all`,
    );
    assert.ok(reads >= 1 && reads <= 2, `paged in OData, not thousands of rows: ${reads} reads`);
    assert.deepEqual(texts(bridge, s), ['One reply among thousands.']);
    // The send is at OpenCX before its activity completes: the state follows a moment later.
    await waitFor(
      'the state counts it',
      async () => (await bridge.session(orgId, s)).body.agentRepliesDelivered === 1,
    );
  });

  it('internal Tasks, incoming and automatic emails never reach the customer with default settings', async () => {
    // The process fires on Tasks too (as the first README advised): the bridge must still filter.
    const { s, caseId } = await conversation(bridge, { agentReplyTypes: ['Email', 'Task'] });
    bridge.emu.insert('Activity', {
      CaseId: caseId,
      Title: 'Internal note',
      Body: 'flagged for fraud review, do not refund',
      TypeId: IDS.activityType.Task,
      OwnerId: IDS.contact.Supervisor,
    });
    outgoingEmail(bridge, caseId, 'Customer wrote back by email', {
      MessageTypeId: IDS.emailType.Incoming,
    });
    outgoingEmail(bridge, caseId, 'Your case SR0001 was registered (automatic notification)', {
      IsAutoSubmitted: true,
    });
    bridge.emu.insert('Activity', {
      CaseId: caseId,
      Title: 'Call with customer',
      Body: 'called, no answer',
      TypeId: IDS.activityType.Call,
    });
    // Positive control: a real agent reply after them all is delivered, and only it.
    outgoingEmail(bridge, caseId, 'Sentinel: this one is for the customer.');
    await waitFor('the sentinel', () => texts(bridge, s).includes('Sentinel: this one is for the customer.'));
    // Every process call made so far is handled before a later one: a second sentinel closes the window.
    await bridge.emu.processesIdle();
    outgoingEmail(bridge, caseId, 'Sentinel 2');
    await waitFor('the second sentinel', () => texts(bridge, s).includes('Sentinel 2'));
    assert.deepEqual(texts(bridge, s), ['Sentinel: this one is for the customer.', 'Sentinel 2']);
  });

  it('a Task type listed explicitly is sent, and the settings answer says so', async () => {
    const org = `explicit-${randomUUID().slice(0, 8)}`;
    const put = await bridge.api.request('PUT', `/v1/orgs/${org}/integrations/creatio`, {
      instanceUrl: bridge.emu.url,
      clientId: 'sandbox-client',
      clientSecret: 'sandbox-secret-change-me',
      agentReplyFilter: { activityTypes: ['Email', 'Task'] },
      opencx: { apiBaseUrl: bridge.opencx.url, apiKey: 'ocx_test_key' },
    });
    assert.equal(put.status, 201);
    const notice = put.body.notices.find(
      (n: { code: string }) => n.code === 'agent_reply_filter_includes_internal_types',
    );
    assert.ok(notice, JSON.stringify(put.body.notices));
    assert.match(notice.message, /"Task" activities on a case will be sent to the customer/);

    const { s, caseId } = await conversation(bridge, {
      settings: { agentReplyFilter: { activityTypes: ['Email', 'Task'] } },
      agentReplyTypes: ['Email', 'Task'],
    });
    bridge.emu.insert('Activity', {
      CaseId: caseId,
      Title: 'Reply as task',
      Body: 'We have re-sent the parcel.',
      TypeId: IDS.activityType.Task,
      OwnerId: IDS.contact.Supervisor,
    });
    outgoingEmail(bridge, caseId, 'And an email.');
    await waitFor('both', () => texts(bridge, s).length >= 2);
    assert.deepEqual(texts(bridge, s), ['We have re-sent the parcel.', 'And an email.']);
  });

  it('a reply committed with a CreatedOn older than the cursor (clock skew) is delivered once', async () => {
    const { s, caseId } = await conversation(bridge);
    const a = outgoingEmail(bridge, caseId, 'first');
    await waitFor('first', () => texts(bridge, s).length === 1);
    // Written by another app server whose clock is a minute behind, or committed late.
    outgoingEmail(bridge, caseId, 'late commit', {
      CreatedOn: new Date(Date.parse(String(a.CreatedOn)) - 60_000).toISOString(),
    });
    await waitFor('late commit', () => texts(bridge, s).length === 2);
    outgoingEmail(bridge, caseId, 'third');
    await waitFor('third', () => texts(bridge, s).length === 3);
    assert.deepEqual(texts(bridge, s), ['first', 'late commit', 'third']);
  });

  it("a reply's files go as attachments; a file over the size cap is named instead", async () => {
    // No process: the files are attached first, then the call comes (as Creatio fires on commit).
    const { s, caseId, url } = await conversation(bridge, { processes: [] });
    const reply = outgoingEmail(bridge, caseId, 'Invoice attached.');
    const pdf = Buffer.from('%PDF-1.4 invoice 42');
    bridge.emu.attachFile(reply.Id, 'invoice.pdf', pdf);
    bridge.emu.attachFile(reply.Id, 'video.mp4', Buffer.alloc(6 * 1024 * 1024, 1));
    const call = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ event_type: 'new_activity', caseId }),
    });
    assert.equal(call.status, 202);
    const m = await waitFor('delivery', () => bridge.opencx.messagesFor(s)[0]);
    assert.equal(m.attachments.length, 1);
    assert.equal(m.attachments[0]!.name, 'invoice.pdf');
    assert.equal(m.attachments[0]!.mimeType, 'application/pdf');
    assert.deepEqual(m.attachments[0]!.data, pdf);
    assert.equal(m.text, 'Invoice attached.\n\n[Attachment "video.mp4" could not be sent: it is too large.]');
  });
});

describe('agent replies reach OpenCX exactly once, whatever happens after it accepts one', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  for (const keepsCustomData of [true, false]) {
    it(`OpenCX accepts then answers 502, or drops the connection: each reply once, in order (${keepsCustomData ? 'session marker' : 'history only'})`, async () => {
      bridge.opencx.keepsCustomData = keepsCustomData;
      // Without the marker, the check reads the history as OpenCX serves it: nested, in pages
      // (one item a page here, so that the second reply is found on the second page only).
      if (!keepsCustomData) bridge.opencx.historyPageSize = 1;
      try {
        const { s, caseId } = await conversation(bridge);
        bridge.opencx.faults = { ...bridge.opencx.faults, acceptThenFail: 1 };
        outgoingEmail(bridge, caseId, 'one');
        await waitFor('"one" accepted, then 502', () => bridge.opencx.faults.acceptThenFail === 0);
        bridge.opencx.faults = { ...bridge.opencx.faults, acceptThenDrop: 1 };
        outgoingEmail(bridge, caseId, 'two');
        await waitFor('"two" accepted, then dropped', () => bridge.opencx.faults.acceptThenDrop === 0);
        outgoingEmail(bridge, caseId, 'three');
        // Positive control: the last reply arrives, so any duplicate of the earlier ones would have too.
        await waitFor('three', () => texts(bridge, s).includes('three'), 60_000);
        assert.deepEqual(texts(bridge, s), ['one', 'two', 'three']);
      } finally {
        bridge.opencx.keepsCustomData = true;
        bridge.opencx.historyPageSize = 20;
        bridge.opencx.faults = { ...bridge.opencx.faults, acceptThenFail: 0, acceptThenDrop: 0 };
      }
    });
  }
});

describe('agent replies: a worker killed right after OpenCX accepted a send', () => {
  // opencxAttemptTimeout is lowered from the shipped 45 s so that the retry comes within the test.
  const bridge = new Bridge({ inProcessWorkers: false, conversation: { opencxAttemptTimeout: '4s' } });
  let child: ChildProcess | undefined;
  before(() => bridge.start());
  after(async () => {
    child?.kill('SIGKILL');
    await bridge.close();
  });

  const startWorker = () => startWorkerProcess(bridge);

  it('the reply is at OpenCX once, and the next one follows it', async () => {
    const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved });
    child = await startWorker();
    const url = await bridge.creatioWebhookUrl(orgId);
    bridge.emu.processes.push({ kind: 'agent_reply', url, retries: 2, activityTypes: ['Email'] });
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'Where is my order?'));
    const caseId = await bridge.caseOf(orgId, s);
    let killed = false;
    bridge.opencx.onAccepted = async (m) => {
      if (killed || m.sessionId !== s) return;
      killed = true;
      await killWorkerProcess(child!);
    };
    outgoingEmail(bridge, caseId, 'Your order ships today.');
    await waitFor('the worker killed after the send', () => killed, 60_000);
    bridge.opencx.onAccepted = undefined;
    child = await startWorker();
    outgoingEmail(bridge, caseId, 'Tracking number: 42.');
    await waitFor('the next reply', () => texts(bridge, s).includes('Tracking number: 42.'), 90_000);
    assert.deepEqual(texts(bridge, s), ['Your order ships today.', 'Tracking number: 42.']);
  });
});

describe('agent replies and closure when a Creatio business process never calls (the timer)', () => {
  // Shorter than the shipped 2 minutes / 15 s so the test takes seconds; the logic is the same.
  const bridge = new Bridge({
    conversation: { replyCheckEvery: '1s', replyCheckMaxEvery: '2s', processCallGrace: '300ms' },
  });
  before(() => bridge.start());
  after(() => bridge.close());

  it('agent-reply process missing: the reply still goes out, and the state names the process', async () => {
    const { orgId, s, caseId } = await conversation(bridge, { processes: ['case_closure'], handoff: true });
    outgoingEmail(bridge, caseId, 'Found by the timer.');
    await waitFor('delivery by the timer', () => texts(bridge, s)[0], 15_000);
    const st = await waitFor('the finding', async () => {
      const b = (await bridge.session(orgId, s)).body;
      return b.processes.agentReply.finding ? b : undefined;
    });
    assert.equal(st.processes.agentReply.calls, 0);
    assert.equal(st.processes.agentReply.missed, 1);
    assert.match(
      st.processes.agentReply.finding,
      /agent-reply business process is missing, inactive or filtered/,
    );
    assert.deepEqual(texts(bridge, s), ['Found by the timer.']);
    const diagnosis = await bridge.api.request('GET', `/v1/orgs/${orgId}/diagnose?sessionId=${s}`);
    assert.equal(diagnosis.status, 200, diagnosis.text);
    assert.deepEqual(
      diagnosis.body.findings.map((f: { code: string; scenario: string }) => [f.code, f.scenario]),
      [['agent_reply_process_not_calling', 'agent_replies_not_reaching_customers']],
    );
  });

  it('with the process active, nothing is recorded against it', async () => {
    const { orgId, s, caseId } = await conversation(bridge, { handoff: true });
    outgoingEmail(bridge, caseId, 'Delivered on the call.');
    await waitFor('delivery', () => texts(bridge, s)[0]);
    const deliveredAt = Date.now();
    // Positive control: wait until the timer has looked at the case after the delivery.
    await waitFor('a timer check after the delivery', async () => {
      const b = (await bridge.session(orgId, s)).body;
      return Date.parse(b.nextReplyCheckAt) > deliveredAt + 1_500 ? b : undefined;
    });
    const st = (await bridge.session(orgId, s)).body;
    assert.ok(st.processes.agentReply.calls >= 1);
    assert.equal(st.processes.agentReply.missed, 0);
    assert.equal(st.processes.agentReply.finding, null);
    const diagnosis = await bridge.api.request('GET', `/v1/orgs/${orgId}/diagnose?caseId=${st.caseId}`);
    assert.deepEqual(diagnosis.body.findings, [], 'a healthy conversation has no finding');
    assert.equal(diagnosis.body.sessionId, s);
  });

  it('closure process missing: a case in a closure status resolves the session on the timer, recorded', async () => {
    const { orgId, s, caseId } = await conversation(bridge, { processes: ['agent_reply'], handoff: true });
    bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Resolved });
    const result = await bridge.result(orgId, s, 20_000);
    assert.equal(result.status, 'closed');
    assert.equal(result.processes.closure.calls, 0);
    assert.equal(result.processes.closure.missed, 1);
    assert.match(result.processes.closure.finding, /case-closure business process did not call/);
    assert.deepEqual(
      bridge.opencx.statusChanges.filter((c) => c.sessionId === s),
      [{ sessionId: s, status: 'closed_resolved' }],
    );
    const diagnosis = await bridge.api.request('GET', `/v1/orgs/${orgId}/diagnose?sessionId=${s}`);
    assert.ok(
      diagnosis.body.findings.some(
        (f: { code: string; scenario: string }) =>
          f.code === 'closure_process_not_calling' && f.scenario === 'case_closure_not_syncing',
      ),
      diagnosis.text,
    );
  });
});
