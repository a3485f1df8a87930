/**
 * GET /v1/orgs/:orgId/diagnose, one test per scenario of the troubleshooting page (each must
 * produce its finding), and a conversation where everything worked (it must produce none).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { doctor } from '../../src/diagnose/doctor';
import { Bridge, ev, waitFor } from '../bridge-harness';
import { ADMIN_TOKEN } from '../helpers';

const sid = () => `dg-${randomUUID().slice(0, 12)}`;
const POISON = (set: string, v: Record<string, unknown>) =>
  set === 'Activity' && String(v.Title).includes('POISON') ? 'Column "Title" holds a bad value' : null;

interface Finding {
  code: string;
  scenario: string;
  message: string;
  fix: string;
}

describe('diagnose: the troubleshooting page, scenario by scenario (real Temporal, emulators)', () => {
  const bridge = new Bridge({ conversation: { replyCheckEvery: '1h', replyCheckMaxEvery: '1h' } });
  before(() => bridge.start());
  after(() => bridge.close());

  async function diagnose(orgId: string, q: string): Promise<Finding[]> {
    const res = await bridge.api.request('GET', `/v1/orgs/${orgId}/diagnose?${q}`);
    assert.equal(res.status, 200, res.text);
    for (const f of res.body.findings as Finding[]) {
      assert.ok(f.message && f.fix, `finding ${f.code} has a message and a fix`);
    }
    return res.body.findings;
  }
  const codes = (fs: Finding[]) => fs.map((f) => f.code);
  const one = (fs: Finding[], code: string) => {
    const f = fs.find((x) => x.code === code);
    assert.ok(f, `no ${code} in ${JSON.stringify(fs, null, 2)}`);
    return f;
  };

  /** A conversation with its case and first message logged. */
  async function started(orgId: string, o: { handoff?: boolean } = {}) {
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'My order never arrived'));
    const caseId = await bridge.caseOf(orgId, s);
    await waitFor('m1 logged', async () => (await bridge.session(orgId, s)).body.messages.logged === 1);
    if (o.handoff) {
      await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
      await waitFor('handoff done', async () => (await bridge.session(orgId, s)).body.aiFields);
    }
    return { s, caseId };
  }

  async function withProcesses(
    kinds: ('agent_reply' | 'case_closure')[],
    settings: Record<string, unknown> = {},
  ) {
    const orgId = await bridge.connectOrg(settings);
    const url = await bridge.creatioWebhookUrl(orgId);
    for (const kind of kinds) {
      bridge.emu.processes.push(
        kind === 'agent_reply'
          ? { kind, url, retries: 2, activityTypes: ['Email'] }
          : { kind, url, retries: 2, statusNames: ['Resolved', 'Closed'] },
      );
    }
    return { orgId, url };
  }

  const reply = (caseId: string, type: string = IDS.activityType.Email) =>
    bridge.emu.agentEmail(caseId, {
      title: 'Re: order',
      body: '<p>It ships today.</p>',
      ownerId: IDS.contact.Supervisor,
      extra: { TypeId: type },
    });

  it('all is well: handoff, an agent reply delivered through the process, the case resolved → no findings', async () => {
    const { orgId } = await withProcesses(['agent_reply', 'case_closure']);
    const { s, caseId } = await started(orgId, { handoff: true });
    reply(caseId);
    await waitFor('the reply delivered', () =>
      bridge.opencx.messagesFor(s).some((m) => m.text.includes('ships today')),
    );
    bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Resolved });
    await waitFor('closed', async () => (await bridge.session(orgId, s)).body.status === 'closed');
    assert.deepEqual(await diagnose(orgId, `sessionId=${s}`), []);
    // By case ID too, and the answer names the conversation.
    const res = await bridge.api.request('GET', `/v1/orgs/${orgId}/diagnose?caseId=${caseId.toUpperCase()}`);
    assert.equal(res.body.sessionId, s);
    assert.equal(res.body.workflowId, `conversation:${orgId}:${s}`);
    assert.deepEqual(res.body.findings, []);
  });

  it('invalid credentials: a secret revoked in Creatio after saving', async () => {
    const client = bridge.emu.addClient({
      clientId: `diag-${randomUUID().slice(0, 6)}`,
      clientSecret: 's3cret-one',
    });
    const orgId = await bridge.connectOrg({ clientId: client.clientId, clientSecret: 's3cret-one' });
    const { s } = await started(orgId);
    assert.deepEqual(codes(await diagnose(orgId, `sessionId=${s}`)), [], 'positive control: fine before');
    client.clientSecret = 's3cret-regenerated';
    bridge.emu.revokeTokens();
    const f = one(await diagnose(orgId, `sessionId=${s}`), 'credentials_rejected');
    assert.equal(f.scenario, 'invalid_credentials');
    assert.match(f.fix, /client secret/);
  });

  it('cases not created: handoff-only mode, before the handoff and after the AI resolved it', async () => {
    const orgId = await bridge.connectOrg({ createCaseOnlyOnHandoff: true });
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hi'));
    await waitFor('received', async () => (await bridge.session(orgId, s)).body?.messages.received === 1);
    assert.equal(
      one(await diagnose(orgId, `sessionId=${s}`), 'no_case_until_handoff').scenario,
      'cases_not_created',
    );
    await bridge.send(orgId, 'conversation.closed', ev.closed(s));
    await waitFor('closed', async () => (await bridge.session(orgId, s)).body.status === 'closed');
    const f = one(await diagnose(orgId, `sessionId=${s}`), 'no_case_handoff_only');
    assert.match(f.fix, /Create case only on handoff/);
  });

  it('cases not created: the OAuth application lost its permission on Case', async () => {
    const client = bridge.emu.addClient({
      clientId: `perm-${randomUUID().slice(0, 6)}`,
      clientSecret: 's3cret-perm',
    });
    const orgId = await bridge.connectOrg({ clientId: client.clientId, clientSecret: 's3cret-perm' });
    const { s } = await started(orgId);
    client.denied = { Case: ['update'] };
    // The handoff writes summary, language and sentiment on the case: refused, the step parks.
    await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
    await waitFor('parked', async () => (await bridge.session(orgId, s)).body.lastError?.parked);
    const f = one(await diagnose(orgId, `sessionId=${s}`), 'case_permission_denied');
    assert.equal(f.scenario, 'cases_not_created');
    assert.match(f.message, /Insufficient permissions to edit records in the "Case" object/);
    assert.ok(
      !codes(await diagnose(orgId, `sessionId=${s}`)).includes('step_parked'),
      'named once, by its cause',
    );

    // Read taken away too: the case the bridge created cannot be seen.
    client.denied = { Case: ['update', 'read'] };
    assert.match(
      one(await diagnose(orgId, `sessionId=${s}`), 'case_missing_in_creatio').message,
      /may no longer read Case/,
    );
  });

  it('cases not created: the events of a conversation never reached the bridge', async () => {
    const orgId = await bridge.connectOrg();
    const f = one(await diagnose(orgId, 'sessionId=never-seen-1'), 'session_unknown');
    assert.match(f.fix, /\/webhooks\/opencx/);
  });

  it('agent replies not reaching customers: the process never called for this organization, or not for this case', async () => {
    const { orgId } = await withProcesses([]);
    const { s, caseId } = await started(orgId, { handoff: true });
    assert.deepEqual(codes(await diagnose(orgId, `sessionId=${s}`)), [], 'no reply yet: nothing to say');
    reply(caseId);
    const reads = bridge.emu.count('GET $metadata');
    const f = one(await diagnose(orgId, `sessionId=${s}`), 'agent_reply_process_never_called');
    assert.equal(f.scenario, 'agent_replies_not_reaching_customers');
    // The organization's client (and its $metadata) is kept between diagnoses.
    assert.equal(bridge.emu.count('GET $metadata'), reads);
    assert.match(f.message, /^The case has 1 agent reply/);
    assert.match(f.fix, /new_activity/);

    // The process calls for Email replies; the agents of this case reply with Tasks (listed in the
    // organization's filter): the process never fires for them.
    const o2 = await withProcesses(['agent_reply'], {
      agentReplyFilter: { activityTypes: ['Email', 'Task'], activityCategories: [] },
    });
    const c1 = await started(o2.orgId, { handoff: true });
    reply(c1.caseId);
    await waitFor('delivered', () => bridge.opencx.messagesFor(c1.s).length > 0);
    const c2 = await started(o2.orgId, { handoff: true });
    reply(c2.caseId, IDS.activityType.Task);
    one(await diagnose(o2.orgId, `sessionId=${c2.s}`), 'agent_reply_process_not_called_for_case');
  });

  it('agent replies not reaching customers: a chat customer with no email address and an Email-only filter', async () => {
    const chatOnly = async (settings: Record<string, unknown>) => {
      const orgId = await bridge.connectOrg(settings);
      const s = sid();
      await bridge.send(orgId, 'conversation.started', ev.started(s, { name: 'Chat visitor' }, 'web'));
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hi, anyone?'));
      await bridge.caseOf(orgId, s);
      return diagnose(orgId, `sessionId=${s}`);
    };
    const f = one(await chatOnly({}), 'agent_replies_need_contact_email');
    assert.equal(f.scenario, 'agent_replies_not_reaching_customers');
    assert.match(f.fix, /Reply to customer/);
    // Listing the type agents use for chat replies answers it.
    const listed = await chatOnly({ agentReplyFilter: { activityTypes: ['Email', 'Task'] } });
    assert.ok(!codes(listed).includes('agent_replies_need_contact_email'), JSON.stringify(listed));
    // The settings answer says what will and will not be sent.
    const orgId = await bridge.connectOrg();
    const view = (await bridge.api.request('GET', `/v1/orgs/${orgId}/integrations/creatio`)).body;
    assert.match(view.agentReplyRules.sent.join('\n'), /addressed To the case's contact and no one else/);
    assert.match(view.agentReplyRules.neverSent.join('\n'), /Drafts/);
    assert.match(view.agentReplyRules.neverSent.join('\n'), /no email address/);
  });

  it('case closure not syncing: a final status not among the closure names (both names given); the process never called', async () => {
    const { orgId } = await withProcesses(['agent_reply', 'case_closure'], {
      closureStatusNames: ['Resolved'],
    });
    const { s, caseId } = await started(orgId, { handoff: true });
    assert.deepEqual(codes(await diagnose(orgId, `sessionId=${s}`)), [], 'positive control: fine before');
    bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Closed });
    const f = one(await diagnose(orgId, `sessionId=${s}`), 'closure_status_name_mismatch');
    assert.equal(f.scenario, 'case_closure_not_syncing');
    assert.match(
      f.message,
      /final status "Closed", which is not one of the closure status names \("Resolved"\)/,
    );
    assert.match(f.fix, /Add "Closed"/);

    // Names right, no closure process: the case is resolved and nothing called the bridge.
    const o2 = await withProcesses(['agent_reply']);
    const c2 = await started(o2.orgId, { handoff: true });
    bridge.emu.modify('Case', c2.caseId, { StatusId: IDS.caseStatus.Resolved });
    one(await diagnose(o2.orgId, `sessionId=${c2.s}`), 'closure_process_never_called');
  });

  it('case closure not syncing: a case the bridge did not create', async () => {
    const orgId = await bridge.connectOrg();
    const res = await bridge.api.request('GET', `/v1/orgs/${orgId}/diagnose?caseId=${randomUUID()}`);
    assert.equal(res.body.sessionId, null);
    assert.deepEqual(codes(res.body.findings), ['case_not_created_by_bridge']);
  });

  it('AI fields blank: the mapping disabled, and no LLM configured', async () => {
    const orgId = await bridge.connectOrg({
      aiFields: [
        { column: 'UsrProductName', title: 'Product', type: 'text', description: 'The product' },
        {
          column: 'UsrOrderNumber',
          title: 'Order',
          type: 'text',
          description: 'The order number',
          enabled: false,
        },
      ],
    });
    const { s } = await started(orgId, { handoff: true });
    const fs = (await diagnose(orgId, `sessionId=${s}`)).filter((f) => f.scenario === 'ai_fields_blank');
    assert.deepEqual(codes(fs).sort(), ['ai_field_llm_not_configured', 'ai_field_mapping_disabled']);
    assert.match(one(fs, 'ai_field_llm_not_configured').fix, /LLM_BASE_URL/);
    assert.match(one(fs, 'ai_field_mapping_disabled').fix, /Enable the mapping/);
  });

  it('webhook errors: calls on a rotated URL (401) and malformed bodies (400), with counts and the last reason', async () => {
    const { orgId, url } = await withProcesses(['agent_reply', 'case_closure']);
    const { s, caseId } = await started(orgId);
    const post = (u: string, body: string) =>
      fetch(u, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.deepEqual(codes(await diagnose(orgId, `sessionId=${s}`)), [], 'positive control: fine before');
    await bridge.api.request('POST', `/v1/orgs/${orgId}/integrations/creatio/webhook-token`);
    const overlap = bridge.store.rotation.overlapMs;
    bridge.store.rotation.overlapMs = 0; // past the rotation overlap
    try {
      for (let i = 0; i < 2; i++) {
        assert.equal((await post(url, JSON.stringify({ event_type: 'new_activity', caseId }))).status, 401);
      }
    } finally {
      bridge.store.rotation.overlapMs = overlap;
    }
    const current = await bridge.creatioWebhookUrl(orgId);
    // A reason that quotes a NUL the caller sent is still counted (PostgreSQL text takes none).
    assert.equal((await post(current, JSON.stringify({ event_type: 'x\u0000y', caseId }))).status, 400);
    await waitFor('the NUL reason counted', async () =>
      (await bridge.store.creatioWebhookCalls(orgId)).some((c) => c.lastReason?.includes('"xy"')),
    );
    assert.equal((await post(current, JSON.stringify({ caseId }))).status, 400);
    const fs = await diagnose(orgId, `sessionId=${s}`);
    assert.match(
      one(fs, 'webhook_stale_token').message,
      /^2 calls from Creatio used a webhook URL .* before its last rotation/,
    );
    const bad = one(fs, 'webhook_bad_request');
    assert.match(bad.message, /^2 calls from Creatio answered 400, .*: event_type is required/);
    assert.equal(bad.scenario, 'webhook_errors');
  });

  it('Creatio downtime: unreachable now; and a parked step', async () => {
    const orgId = await bridge.connectOrg();
    const { s } = await started(orgId);
    bridge.emu.setFaults({ rejectWrite: POISON });
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'POISON'));
    await waitFor('parked', async () => (await bridge.session(orgId, s)).body.lastError?.parked);
    bridge.emu.setFaults({ rejectWrite: null });
    assert.equal(one(await diagnose(orgId, `sessionId=${s}`), 'step_parked').scenario, 'creatio_downtime');
    bridge.emu.setFaults({ outage: 'http503' });
    bridge.emu.revokeTokens();
    try {
      const f = one(await diagnose(orgId, `sessionId=${s}`), 'creatio_unreachable');
      assert.equal(f.scenario, 'creatio_downtime');
    } finally {
      bridge.emu.setFaults({ outage: false });
    }
  });

  it('none of the above: a conversation whose workflow was terminated', async () => {
    const orgId = await bridge.connectOrg();
    const { s } = await started(orgId);
    await bridge.handle(orgId, s).terminate('by an operator');
    const f = one(await diagnose(orgId, `sessionId=${s}`), 'workflow_not_running');
    assert.equal(f.scenario, 'none');
  });

  it('npm run doctor prints the findings with their fixes (exit 1), and says when all is well (exit 0)', async () => {
    const { orgId } = await withProcesses([]);
    const { s, caseId } = await started(orgId, { handoff: true });
    const run = async (args: string[]) => {
      const lines: string[] = [];
      const prev = { url: process.env.BRIDGE_URL, token: process.env.ADMIN_API_TOKEN };
      process.env.BRIDGE_URL = bridge.api.url;
      process.env.ADMIN_API_TOKEN = ADMIN_TOKEN;
      try {
        return { code: await doctor(args, (l) => lines.push(l)), text: lines.join('\n') };
      } finally {
        process.env.BRIDGE_URL = prev.url;
        process.env.ADMIN_API_TOKEN = prev.token;
        if (prev.url === undefined) delete process.env.BRIDGE_URL;
        if (prev.token === undefined) delete process.env.ADMIN_API_TOKEN;
      }
    };
    let r = await run(['--org', orgId, '--session', s]);
    assert.equal(r.code, 0, r.text);
    assert.match(r.text, /Nothing is wrong with this conversation/);
    reply(caseId);
    r = await run(['--org', orgId, '--case', caseId]);
    assert.equal(r.code, 1, r.text);
    assert.match(r.text, new RegExp(`conversation ${s}, case ${caseId}`));
    assert.match(
      r.text,
      /✖ agent_reply_process_never_called \[agent_replies_not_reaching_customers\]\n .*\n {2}Fix: /,
    );
    r = await run(['--org', orgId]);
    assert.equal(r.code, 2);
    assert.match(r.text, /usage: npm run doctor/);
  });

  it('names what is wrong with the question itself', async () => {
    const orgId = await bridge.connectOrg();
    for (const [q, code, status] of [
      ['', 'missing_field', 400],
      ['caseId=SR0001', 'invalid_field', 400],
    ] as const) {
      const res = await bridge.api.request('GET', `/v1/orgs/${orgId}/diagnose?${q}`);
      assert.equal(res.status, status);
      assert.equal(res.body.error.code, code);
    }
    const res = await bridge.api.request('GET', '/v1/orgs/not-connected/diagnose?sessionId=x');
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'org_not_found');
  });
});
