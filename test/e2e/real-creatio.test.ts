/**
 * The bridge against Creatio as its configuration defines it: a schema this Creatio lacks is
 * named when an admin connects and stops a step at once (never retried for a day); a reply read
 * that keeps failing holds nothing else back; only mail meant for the customer is sent; Creatio on
 * .NET Core (OData at /odata) works end to end.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { Bridge, ev, waitFor } from '../bridge-harness';
import { validSettings } from '../helpers';

const sid = () => `rc-${randomUUID().slice(0, 12)}`;

describe('real Creatio: schema checks, stops that retrying cannot fix, the reply lane, what is a reply', () => {
  const bridge = new Bridge({ conversation: { closureWaitsForReplies: '2 seconds' } });
  before(() => bridge.start());
  after(() => bridge.close());

  async function opened(settings: Record<string, unknown> = {}) {
    const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved, ...settings });
    const url = await bridge.creatioWebhookUrl(orgId);
    bridge.emu.processes.push(
      { kind: 'agent_reply', url, retries: 2, activityTypes: ['Email'] },
      { kind: 'case_closure', url, retries: 2, statusNames: ['Resolved', 'Closed'] },
    );
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'My order never arrived'));
    const caseId = await bridge.caseOf(orgId, s);
    await waitFor('m1 logged', async () => (await bridge.session(orgId, s)).body.messages.logged >= 1);
    return { orgId, s, caseId };
  }
  const texts = (s: string) => bridge.opencx.messagesFor(s).map((m) => m.text);

  it('Test & Save names a column this Creatio lacks (creatio_schema_missing, with the closest name) and stores nothing', async (t) => {
    t.after(() => bridge.emu.restoreModel());
    bridge.emu.removeFromModel('Activity', 'CaseId');
    const orgId = `org-schema-${randomUUID().slice(0, 8)}`;
    const res = await bridge.api.request(
      'PUT',
      `/v1/orgs/${orgId}/integrations/creatio`,
      validSettings(bridge.emu),
    );
    assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}: ${res.text}`);
    const body = res.body as { error: { code: string; message: string }; checks?: { code?: string }[] };
    assert.equal(body.error.code, 'creatio_schema_missing');
    assert.match(body.error.message, /no column "CaseId" on Activity/);
    assert.equal((await bridge.api.request('GET', `/v1/orgs/${orgId}/integrations/creatio`)).status, 404);
  });

  it('a connected Creatio that loses a column: the step parks at once (no retries) and diagnose names the column', async (t) => {
    t.after(() => bridge.emu.restoreModel());
    const { orgId, s, caseId } = await opened();
    bridge.emu.removeFromModel('Activity', 'Title');
    const posts = bridge.emu.count('POST Activity');
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'Still waiting'));
    const st = await waitFor(
      'the step parked',
      async () => {
        const b = (await bridge.session(orgId, s)).body;
        return b.lastError?.parked ? b : undefined;
      },
      20_000,
    );
    assert.equal(st.lastError.type, 'CreatioSchemaError');
    assert.match(st.lastError.message, /no column "Title" on Activity/);
    // Stopped at once: the first try (and the look before a second write), not a retry loop.
    assert.ok(
      bridge.emu.count('POST Activity') - posts <= 2,
      `${bridge.emu.count('POST Activity') - posts} writes`,
    );
    const d = await bridge.api.request('GET', `/v1/orgs/${orgId}/diagnose?sessionId=${s}`);
    const findings = (d.body as { findings: { code: string; message: string }[] }).findings;
    const f = findings.find((x) => x.code === 'creatio_schema_missing');
    assert.ok(f, JSON.stringify(findings));
    assert.match(f.message, /Title/);
    // Once Creatio has it again, a resume writes the message (once).
    bridge.emu.restoreModel();
    assert.equal((await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/resume`)).status, 200);
    await waitFor('m2 logged', () => bridge.customerTexts(caseId).includes('Still waiting'));
    assert.equal(bridge.customerTexts(caseId).filter((x) => x === 'Still waiting').length, 1);
  });

  it('the reply read fails on every try: messages, handoff and closure go on; the reply is delivered once when it recovers', async (t) => {
    const { orgId, s, caseId } = await opened();
    const replyRead = (set: string, url: URL) =>
      set === 'Activity' && (url.searchParams.get('$filter') ?? '').includes('not startswith(Title')
        ? ({ status: 503, message: 'Service Unavailable' } as const)
        : null;
    bridge.emu.setFaults({ failRead: replyRead });
    t.after(() => bridge.emu.setFaults({ failRead: null }));
    bridge.emu.agentEmail(caseId, { body: '<p>We are sending a replacement.</p>' });
    await bridge.emu.processesIdle();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'Any news?'));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm3', 'Hello?'));
    await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
    await waitFor('m2, m3 logged in order', () => {
      const c = bridge.customerTexts(caseId);
      return c.join('|') === 'My order never arrived|Any news?|Hello?';
    });
    await waitFor('the handoff written', async () => (await bridge.session(orgId, s)).body.handedOffAt);
    await waitFor('the handoff note', () =>
      bridge.activitiesOf(caseId).some((a) => /hand/i.test(String(a.Title))),
    );
    bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Resolved });
    await waitFor('the session resolved', () =>
      bridge.opencx.statusChanges.some((c) => c.sessionId === s && c.status === 'closed_resolved'),
    );
    assert.deepEqual(texts(s), [], 'nothing delivered while the read fails');
    bridge.emu.setFaults({ failRead: null });
    await waitFor('the reply delivered', () => texts(s).length > 0, 30_000);
    const result = await bridge.result(orgId, s);
    assert.equal(result.status, 'closed');
    assert.deepEqual(texts(s), ['We are sending a replacement.']);
  });

  it('drafts, Creatio’s automatic notifications, mail to others and inline images never reach the customer', async () => {
    const { s, caseId } = await opened();
    bridge.emu.agentEmail(caseId, { body: 'Draft: we will refund you', status: 'Not sent' });
    bridge.emu.agentEmail(caseId, {
      body: 'Your case was registered. Rate us!',
      headers: '[{"Name":"Auto-Submitted","Value":"auto-generated"}]',
    });
    bridge.emu.agentEmail(caseId, {
      body: 'To the warehouse: hold the replacement, fraud review',
      to: 'Warehouse <warehouse@supplier.example>;',
    });
    bridge.emu.agentEmail(caseId, {
      body: 'Both of you: see below',
      to: 'Jane Doe <jane@example.com>; Warehouse <warehouse@supplier.example>;',
    });
    const withImage = bridge.emu.agentEmail(caseId, { body: '<p>Here is your label.</p>' });
    bridge.emu.attachFile(withImage.Id, 'label.pdf', Buffer.from('%PDF-1.4 label'));
    const logo = bridge.emu.attachFile(withImage.Id, 'logo.png', Buffer.from('png'));
    bridge.emu.tables.get('ActivityFile')!.get(logo.Id)!.Inline = true;
    // Positive control: a reply to the customer (with a colleague in copy) after them all.
    bridge.emu.agentEmail(caseId, { body: 'Sentinel for the customer', cc: 'Lead <lead@example.com>;' });
    await waitFor('the sentinel', () => texts(s).includes('Sentinel for the customer'));
    assert.deepEqual(texts(s), ['Here is your label.', 'Sentinel for the customer']);
    const label = bridge.opencx.messagesFor(s)[0]!;
    assert.deepEqual(
      label.attachments.map((a) => a.name),
      ['label.pdf'],
    );
  });
});

describe('real Creatio on .NET Core: OData at /odata', () => {
  const bridge = new Bridge({ odataPath: '/odata' });
  before(() => bridge.start());
  after(() => bridge.close());

  it('connect, messages, handoff, reply and closure', async () => {
    const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved });
    const view = await bridge.api.request('GET', `/v1/orgs/${orgId}/integrations/creatio`);
    assert.equal((view.body as { odataPath: string }).odataPath, '/odata');
    const url = await bridge.creatioWebhookUrl(orgId);
    bridge.emu.processes.push(
      { kind: 'agent_reply', url, retries: 2, activityTypes: ['Email'] },
      { kind: 'case_closure', url, retries: 2, statusNames: ['Resolved'] },
    );
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'Where is my parcel?'));
    await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
    const caseId = await bridge.caseOf(orgId, s);
    await waitFor('handoff done', async () => (await bridge.session(orgId, s)).body.handedOffAt);
    bridge.emu.agentEmail(caseId, { body: '<p>It left the depot today.</p>' });
    await waitFor('the reply', () => bridge.opencx.messagesFor(s).length === 1);
    bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Resolved });
    const result = await bridge.result(orgId, s);
    assert.equal(result.status, 'closed');
    assert.deepEqual(
      bridge.opencx.messagesFor(s).map((m) => m.text),
      ['It left the depot today.'],
    );
    assert.deepEqual(bridge.customerTexts(caseId), ['Where is my parcel?']);
    assert.equal(bridge.emu.count('GET $metadata') > 0, true);
  });
});
