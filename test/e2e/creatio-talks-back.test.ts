import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { Bridge, ev, waitFor } from '../bridge-harness';

const sid = () => `cb-${randomUUID().slice(0, 12)}`;

describe('Creatio talks back: agent replies and closure (real Temporal, both emulators)', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  /** A connected organization with both business processes pointing at the bridge, and a conversation with a case. */
  async function conversation(overrides: Record<string, unknown> = {}, processes = true) {
    const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved, ...overrides });
    const url = await bridge.creatioWebhookUrl(orgId);
    if (processes) {
      bridge.emu.processes.push(
        { kind: 'agent_reply', url, retries: 2 },
        { kind: 'case_closure', url, statusNames: ['Resolved', 'Closed'], retries: 2 },
      );
    }
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'My order never arrived'));
    await bridge.send(
      orgId,
      'conversation.ai_response',
      ev.message(s, 'm2', 'Let me hand you to a colleague.'),
    );
    const caseId = await bridge.caseOf(orgId, s);
    await waitFor('2 logged', async () => (await bridge.session(orgId, s)).body.messages.logged === 2);
    return { orgId, s, caseId, url };
  }

  const agentEmail = (caseId: string, text: string) =>
    bridge.emu.agentEmail(caseId, {
      title: `Re: ${text.slice(0, 20)}`,
      body: `<p>${text}</p>`,
      ownerId: IDS.contact.Supervisor,
    });

  it("an agent reply added in Creatio reaches the customer exactly once; the bridge's own activities never do", async () => {
    const { s, caseId } = await conversation();
    await bridge.emu.processesIdle();
    // The agent-reply process fired for the bridge's own Task activities (echo) and changed nothing.
    assert.ok(bridge.emu.processLog.filter((c) => c.kind === 'agent_reply').length >= 3);
    assert.equal(bridge.opencx.messagesFor(s).length, 0);

    agentEmail(caseId, 'Hello, your parcel was re-sent today.');
    const sent = await waitFor('delivery', () => bridge.opencx.messagesFor(s)[0]);
    assert.equal(sent.text, 'Hello, your parcel was re-sent today.');
    assert.equal(sent.sender, 'agent');
    assert.equal(sent.agentName, 'Supervisor');
    assert.equal(sent.takeOver, true);
    await bridge.emu.processesIdle();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(bridge.opencx.messagesFor(s).length, 1, 'delivered once');
  });

  it('five replies added quickly arrive in order, each once, even when the same call repeats', async () => {
    const { orgId, s, caseId, url } = await conversation();
    for (let i = 1; i <= 5; i++) agentEmail(caseId, `reply ${i}`);
    // Creatio's element retries on timeouts: the same call several times more.
    for (let i = 0; i < 3; i++) {
      const r = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ event_type: 'new_activity', caseId }),
      });
      assert.equal(r.status, 202);
    }
    await waitFor('5 deliveries', () => bridge.opencx.messagesFor(s).length >= 5);
    await bridge.emu.processesIdle();
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(
      bridge.opencx.messagesFor(s).map((m) => m.text),
      ['reply 1', 'reply 2', 'reply 3', 'reply 4', 'reply 5'],
    );
    assert.equal((await bridge.session(orgId, s)).body.agentRepliesDelivered, 5);
  });

  it('a reply written in Creatio the instant the case is created is delivered', async () => {
    const orgId = await bridge.connectOrg();
    const url = await bridge.creatioWebhookUrl(orgId);
    // Filtered to Email, as recommended: the bridge's own (Task) activities do not call back.
    bridge.emu.processes.push({ kind: 'agent_reply', url, retries: 2, activityTypes: ['Email'] });
    const s = sid();
    // An agent (or a process acting for one) sends an email as soon as a case appears.
    const auto = (set: string, row: Record<string, unknown>) => {
      if (set === 'Case' && String(row.Subject).includes(`(session ${s})`)) {
        bridge.emu.off('added', auto);
        bridge.emu.agentEmail(String(row.Id), { title: 'Welcome', body: 'We got your request.' });
      }
    };
    bridge.emu.on('added', auto);
    // Creatio answers the case POST slowly: the process's call arrives before the answer does.
    bridge.emu.setFaults({ afterWriteLatencyMs: 1_000 });
    try {
      await bridge.send(orgId, 'conversation.started', ev.started(s));
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'Hi'));
      const sent = await waitFor('delivery', () => bridge.opencx.messagesFor(s)[0], 15_000);
      assert.equal(sent.text, 'We got your request.');
    } finally {
      bridge.emu.setFaults({ afterWriteLatencyMs: 0 });
    }
  });

  it('only the configured activity types count as replies', async () => {
    const { s, caseId } = await conversation({ agentReplyFilter: { activityTypes: ['Email'] } });
    bridge.emu.insert('Activity', {
      CaseId: caseId,
      Title: 'Call back tomorrow',
      Body: 'internal to-do',
      TypeId: IDS.activityType.Task,
    });
    agentEmail(caseId, 'This one is for the customer.');
    await waitFor('delivery', () => bridge.opencx.messagesFor(s)[0]);
    await bridge.emu.processesIdle();
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      bridge.opencx.messagesFor(s).map((m) => m.text),
      ['This one is for the customer.'],
    );
  });

  it('a closure with a matching status resolves the session and ends the workflow', async () => {
    const { orgId, s, caseId } = await conversation();
    agentEmail(caseId, 'Solved: refund issued.');
    bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Resolved });
    const result = await bridge.result(orgId, s);
    assert.equal(result.status, 'closed');
    assert.equal(result.caseStatus, 'Resolved');
    assert.deepEqual(
      bridge.opencx.statusChanges.filter((c) => c.sessionId === s),
      [{ sessionId: s, status: 'closed_resolved' }],
    );
    // The reply written before the closure went out first.
    assert.deepEqual(
      bridge.opencx.messagesFor(s).map((m) => m.text),
      ['Solved: refund issued.'],
    );
  });

  it('a status whose name differs in case does not close, and the session state says why', async () => {
    const { orgId, s, caseId, url } = await conversation({}, false);
    // The tenant renamed its status; the process still fires on it.
    bridge.emu.modify('CaseStatus', IDS.caseStatus.Resolved, { Name: 'resolved' });
    try {
      bridge.emu.processes.push({ kind: 'case_closure', url, statusNames: ['resolved'] });
      bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Resolved });
      const state = await waitFor('the mismatch note', async () => {
        const st = (await bridge.session(orgId, s)).body;
        return st.notes.some((n: { message: string }) => n.message.includes('names are case-sensitive'))
          ? st
          : undefined;
      });
      assert.ok(
        state.notes.some((n: { message: string }) =>
          n.message.startsWith(
            "status 'resolved' is not one of ['Resolved', 'Closed'] (names are case-sensitive)",
          ),
        ),
      );
      assert.equal(state.status, 'open');
      assert.equal(bridge.opencx.statusChanges.filter((c) => c.sessionId === s).length, 0);
    } finally {
      bridge.emu.modify('CaseStatus', IDS.caseStatus.Resolved, { Name: 'Resolved' });
    }
  });

  it('a case reopened before the closure is processed keeps the conversation open', async () => {
    const { orgId, s, caseId, url } = await conversation({}, false);
    await bridge.stopWorkers();
    try {
      bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Resolved });
      const r = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ event_type: 'case_resolved', caseId }),
      });
      assert.equal(r.status, 202);
      bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Reopened });
    } finally {
      await bridge.startWorkers();
    }
    const st = await waitFor('status read', async () => {
      const b = (await bridge.session(orgId, s)).body;
      return b.caseStatus ? b : undefined;
    });
    assert.equal(st.caseStatus, 'Reopened');
    assert.equal(st.status, 'open');
  });

  it('replies and a closure sent while Creatio is down are delivered once it answers, in order', async () => {
    const { orgId, s, caseId, url } = await conversation({}, false);
    bridge.emu.setFaults({ outage: 'http503' });
    const post = (body: unknown) =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    try {
      // The records exist in Creatio's database; its API is what is down.
      const a = bridge.emu.agentEmail(caseId, { title: 'r1', body: 'first' });
      bridge.emu.agentEmail(caseId, { title: 'r2', body: 'second' });
      assert.equal((await post({ event_type: 'new_activity', caseId, activityId: a.Id })).status, 202);
      bridge.emu.tables.get('Case')!.get(caseId)!.StatusId = IDS.caseStatus.Closed;
      assert.equal((await post({ event_type: 'case_closed', caseId })).status, 202);
      await new Promise((r) => setTimeout(r, 3_000));
      assert.equal(bridge.opencx.messagesFor(s).length, 0);
    } finally {
      bridge.emu.setFaults({ outage: false });
    }
    const result = await bridge.result(orgId, s);
    assert.equal(result.status, 'closed');
    assert.deepEqual(
      bridge.opencx.messagesFor(s).map((m) => m.text),
      ['first', 'second'],
    );
    assert.equal(bridge.opencx.statusChanges.filter((c) => c.sessionId === s).length, 1);
  });

  it('30 % OpenCX 5xx and a 429 burst lose and duplicate no reply', async () => {
    const { s, caseId } = await conversation();
    bridge.opencx.faults = { ...bridge.opencx.faults, errorRate: 0.3, rateLimitBurst: 5, retryAfterSec: 1 };
    try {
      for (let i = 1; i <= 8; i++) agentEmail(caseId, `faulty ${i}`);
      await waitFor('8 deliveries', () => bridge.opencx.messagesFor(s).length >= 8, 90_000, 200);
    } finally {
      bridge.opencx.faults = { ...bridge.opencx.faults, errorRate: 0, rateLimitBurst: 0 };
    }
    await bridge.emu.processesIdle();
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(
      bridge.opencx.messagesFor(s).map((m) => m.text),
      Array.from({ length: 8 }, (_, i) => `faulty ${i + 1}`),
    );
  });

  describe('ingress: every 4xx with its status and code', () => {
    let url: string;
    let caseId: string;
    before(async () => {
      ({ url, caseId } = await conversation({}, false));
    });
    const post = async (body: string, target = url, contentType = 'application/json') => {
      const r = await fetch(target, { method: 'POST', headers: { 'content-type': contentType }, body });
      return { status: r.status, body: (await r.json()) as any };
    };

    it('a wrong token → 401 Invalid token, with the fix', async () => {
      const r = await post(
        JSON.stringify({ event_type: 'new_activity', caseId }),
        url.replace(/[^/]+$/, 'not-the-token'),
      );
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'invalid_token');
      assert.equal(r.body.error.message, 'Invalid token');
      assert.match(r.body.error.fix, /webhook URL/);
    });
    it('a rotated token: the old URL works for the overlap, then stops', async () => {
      const other = await bridge.connectOrg();
      const oldUrl = await bridge.creatioWebhookUrl(other);
      const rotated = await bridge.api.request(
        'POST',
        `/v1/orgs/${other}/integrations/creatio/webhook-token`,
      );
      assert.equal(rotated.status, 200);
      assert.ok(rotated.body.previousValidUntil, 'the answer says until when the old URL works');
      const during = await post(JSON.stringify({ event_type: 'new_activity', caseId }), oldUrl);
      assert.notEqual(during.status, 401, 'within the overlap');
      const overlap = bridge.store.rotation.overlapMs;
      bridge.store.rotation.overlapMs = 0; // as if the overlap had passed
      let r;
      try {
        r = await post(JSON.stringify({ event_type: 'new_activity', caseId }), oldUrl);
      } finally {
        bridge.store.rotation.overlapMs = overlap;
      }
      assert.equal(r.status, 401);
      const fresh = await post(
        JSON.stringify({ event_type: 'new_activity', caseId }),
        await bridge.creatioWebhookUrl(other),
      );
      assert.equal(fresh.status, 200, "the new URL works (the case is not this organization's)");
    });
    it('not JSON → 400', async () => {
      const r = await post('event_type=new_activity');
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, 'invalid_json');
    });
    it('event_type missing → 400 naming it', async () => {
      const r = await post(JSON.stringify({ caseId }));
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, 'missing_field');
      assert.equal(r.body.error.field, 'event_type');
    });
    it('caseId missing → 400 naming it', async () => {
      const r = await post(JSON.stringify({ event_type: 'new_activity' }));
      assert.equal(r.status, 400);
      assert.equal(r.body.error.field, 'caseId');
      assert.match(r.body.error.message, /must be a string/);
    });
    it('caseId not a string → 400', async () => {
      const r = await post(JSON.stringify({ event_type: 'new_activity', caseId: 12345 }));
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, 'invalid_field');
      assert.equal(r.body.error.field, 'caseId');
    });
    it('caseId not a GUID → 400', async () => {
      const r = await post(JSON.stringify({ event_type: 'new_activity', caseId: 'SR00001234' }));
      assert.equal(r.status, 400);
      assert.equal(r.body.error.field, 'caseId');
    });
    it('an unknown event_type → 400 listing the accepted ones', async () => {
      const r = await post(JSON.stringify({ event_type: 'case_deleted', caseId }));
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, 'unknown_event_type');
      assert.match(r.body.error.message, /new_activity, case_closed, case_resolved, case_status_changed/);
    });
    it('a case no conversation owns → 200, no-op, with the reason', async () => {
      const r = await post(JSON.stringify({ event_type: 'new_activity', caseId: randomUUID() }));
      assert.equal(r.status, 200);
      assert.equal(r.body.status, 'ignored');
      assert.match(r.body.reason, /no matching OpenCX session/);
    });
    it('JSON sent as text/plain is accepted', async () => {
      const r = await post(JSON.stringify({ event_type: 'new_activity', caseId }), url, 'text/plain');
      assert.equal(r.status, 202);
    });
    it('misconfigured business processes see the same answers', async () => {
      const others = bridge.emu.processes.splice(0);
      await bridge.emu.processesIdle();
      const before = bridge.emu.processLog.length;
      bridge.emu.processes.push(
        { kind: 'agent_reply', url: url.replace(/[^/]+$/, 'stale-token') },
        { kind: 'agent_reply', url, body: () => ({ event_type: 'new_activity' }) },
      );
      try {
        bridge.emu.insert('Activity', {
          CaseId: caseId,
          Title: 'x',
          Body: 'y',
          TypeId: IDS.activityType.Email,
        });
        await bridge.emu.processesIdle();
      } finally {
        bridge.emu.processes.splice(0, bridge.emu.processes.length, ...others);
      }
      const calls = bridge.emu.processLog
        .slice(before)
        .map((c) => c.status)
        .sort();
      assert.deepEqual(calls, [400, 401]);
    });
  });
});
