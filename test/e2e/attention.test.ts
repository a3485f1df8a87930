/**
 * "Needs attention": the conversations that need a person now, listed per organization and for
 * the operator, written where the fact is known (a parked step, AI fields left blank, a closure
 * that could not resolve the OpenCX session) and cleared when it no longer holds. Real Temporal
 * test server, the Creatio, OpenCX and LLM emulators.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { startLlmEmulator, type LlmEmulator } from '../../src/sandbox/emulators/llm';
import { AttentionStore } from '../../src/store/attention';
import { Bridge, ev, waitFor } from '../bridge-harness';

const sid = () => `att-${randomUUID().slice(0, 12)}`;
const POISON = (set: string, v: Record<string, unknown>) =>
  set === 'Activity' && String(v.Title).includes('POISON')
    ? 'Column "Title" holds a value Creatio will not take'
    : null;

interface Item {
  orgId: string;
  sessionId: string | null;
  kind: string;
  message: string;
  fix: string;
  since: string;
  detail: string;
  links: { inspector: string | null; temporal: string | null };
}

describe('needs attention: conversations that need a person now (real Temporal, emulators)', () => {
  let llm: LlmEmulator;
  let bridge: Bridge;
  before(async () => {
    llm = await startLlmEmulator();
    bridge = await new Bridge({ llmBaseUrl: llm.url }).start();
  });
  after(async () => {
    await bridge?.close();
    await llm?.close();
  });

  const list = async (orgId: string, headers: Record<string, string> = {}) =>
    bridge.api.request('GET', `/v1/orgs/${orgId}/attention`, undefined, headers);
  const itemsOf = async (orgId: string): Promise<Item[]> => {
    const r = await list(orgId);
    assert.equal(r.status, 200, r.text);
    return (r.body as { items: Item[] }).items;
  };
  const find = (items: Item[], s: string, kind: string) =>
    items.find((i) => i.sessionId === s && i.kind === kind);

  it('a parked step is listed (with its links) while parked, and unlisted once it succeeds after the fix', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    // Positive control first: a conversation that goes well is never listed.
    const fine = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(fine));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(fine, 'm1', 'all fine'));
    await bridge.caseOf(orgId, fine);

    bridge.emu.setFaults({ rejectWrite: POISON });
    try {
      await bridge.send(orgId, 'conversation.started', ev.started(s));
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'POISON text'));
      const item = await waitFor('the parked step listed', async () =>
        find(await itemsOf(orgId), s, 'step_parked'),
      );
      assert.match(item.message, /parked/);
      assert.match(item.detail, /log message m1: CreatioValidationError/);
      assert.ok(Date.parse(item.since) > 0);
      assert.equal(
        item.links.inspector,
        `https://bridge.example.com/admin/#inspector?orgId=${orgId}&sessionId=${s}`,
      );
      assert.equal(
        item.links.temporal,
        `http://localhost:8233/namespaces/default/workflows/${encodeURIComponent(`conversation:${orgId}:${s}`)}`,
      );
      const st = (await bridge.session(orgId, s)).body;
      assert.equal(st.lastError.parked, true);
      assert.equal(find(await itemsOf(orgId), fine, 'step_parked'), undefined, 'the fine one is not listed');

      // The gauge counts it at the scrape.
      const metrics = await (await fetch(`${bridge.api.url}/metrics`)).text();
      const parked = /bridge_attention_conversations\{kind="step_parked"\} (\d+)/.exec(metrics);
      assert.ok(parked && Number(parked[1]) >= 1, metrics.slice(0, 200));

      // Resumed while the cause is still there: parked again, still listed, since kept.
      let r = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/resume`);
      assert.equal(r.status, 200, r.text);
      await waitFor('parked again', async () => (await bridge.session(orgId, s)).body?.lastError?.parked);
      assert.equal(find(await itemsOf(orgId), s, 'step_parked')?.since, item.since);

      bridge.emu.setFaults({ rejectWrite: null });
      r = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/resume`);
      assert.equal(r.status, 200, r.text);
      await waitFor(
        'the message logged',
        async () => (await bridge.session(orgId, s)).body?.messages?.logged === 1,
      );
      await waitFor('unlisted', async () => find(await itemsOf(orgId), s, 'step_parked') === undefined);
    } finally {
      bridge.emu.setFaults({ rejectWrite: null });
    }
  });

  it('an activity that keeps failing is listed as step_retrying from its 5th attempt, and unlisted when it succeeds', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hello'));
    await bridge.caseOf(orgId, s);
    await waitFor('m1 logged', async () => (await bridge.session(orgId, s)).body?.messages?.logged === 1);
    assert.equal(find(await itemsOf(orgId), s, 'step_retrying'), undefined, 'positive control');
    bridge.emu.setFaults({
      rejectWrite: (set, v) =>
        set === 'Activity' && String(v.Title).includes('FLAKY')
          ? { status: 503, message: 'Service Unavailable' }
          : null,
    });
    try {
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'FLAKY text'));
      const item = await waitFor(
        'step_retrying listed',
        async () => find(await itemsOf(orgId), s, 'step_retrying'),
        60_000,
      );
      assert.match(item.detail, /, attempt \d+: /);
      assert.equal(find(await itemsOf(orgId), s, 'step_parked'), undefined, 'retrying, not parked');
    } finally {
      bridge.emu.setFaults({ rejectWrite: null });
    }
    await waitFor(
      'm2 logged',
      async () => (await bridge.session(orgId, s)).body?.messages?.logged === 2,
      60_000,
    );
    await waitFor('unlisted', async () => find(await itemsOf(orgId), s, 'step_retrying') === undefined);
  });

  it("an organization's token reads its own organization's items only; the bridge-wide list is the operator's", async () => {
    const a = await bridge.connectOrg();
    const b = await bridge.connectOrg();
    const items = new AttentionStore(bridge.store.db);
    await items.set(a, 'sa', 'step_retrying', 'CreatioUnavailableError');
    await items.set(b, 'sb', 'step_parked', 'log message m1');
    const created = await bridge.api.request('POST', `/v1/orgs/${a}/admin-tokens`, { label: 'ops' });
    assert.equal(created.status, 201, created.text);
    const auth = { authorization: `Bearer ${(created.body as { token: string }).token}` };

    const own = await list(a, auth);
    assert.equal(own.status, 200, own.text);
    const body = own.body as { items: Item[]; counts: Record<string, number> };
    assert.deepEqual(
      body.items.map((i) => [i.sessionId, i.kind]),
      [['sa', 'step_retrying']],
    );
    assert.equal(body.counts.step_retrying, 1);
    assert.equal(body.counts.step_parked, 0);

    const other = await list(b, auth);
    assert.equal(other.status, 403, other.text);
    assert.equal((other.body as { error: { code: string } }).error.code, 'forbidden_organization');
    const all = await bridge.api.request('GET', '/v1/attention', undefined, auth);
    assert.equal(all.status, 403, all.text);

    // The operator sees both, newest first.
    const op = await bridge.api.request('GET', '/v1/attention?limit=5000');
    assert.equal(op.status, 200, op.text);
    const opItems = (op.body as { items: Item[] }).items;
    assert.ok(find(opItems, 'sa', 'step_retrying'));
    assert.ok(find(opItems, 'sb', 'step_parked'));
    const times = opItems.map((i) => i.since);
    assert.deepEqual(times, [...times].sort().reverse());

    // Set again: the first `since` stays. Cleared: gone.
    const first = find(await itemsOf(a), 'sa', 'step_retrying')!.since;
    await items.set(a, 'sa', 'step_retrying', 'attempt 9');
    assert.equal(find(await itemsOf(a), 'sa', 'step_retrying')!.since, first);
    assert.equal(find(await itemsOf(a), 'sa', 'step_retrying')!.detail, 'attempt 9');
    assert.equal(await items.clear(a, 'sa', ['step_retrying']), 1);
    assert.equal(find(await itemsOf(a), 'sa', 'step_retrying'), undefined);

    const bad = await bridge.api.request('GET', `/v1/orgs/${a}/attention?limit=0`);
    assert.equal(bad.status, 400, bad.text);
  });

  it('AI fields left blank by a failing LLM are listed; fields the LLM filled are not', async () => {
    const mappings = [
      { column: 'UsrProductName', title: 'Product', type: 'text', description: 'The product asked about.' },
    ];
    const orgId = await bridge.connectOrg({ aiFields: mappings });
    // Positive control: the LLM answering leaves nothing listed.
    llm.rule = () => ({ UsrProductName: 'Router X200' });
    const ok = sid();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(ok, 'm1', 'My X200 is down'));
    await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(ok));
    await waitFor(
      'AI fields written',
      async () => (await bridge.session(orgId, ok)).body?.aiFields?.status === 'done',
    );

    llm.faults = { ...llm.faults, errorStatus: 503, failCount: Number.POSITIVE_INFINITY };
    const s = sid();
    try {
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'My X200 is down'));
      await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
      const item = await waitFor('ai_fields_blank listed', async () =>
        find(await itemsOf(orgId), s, 'ai_fields_blank'),
      );
      assert.match(item.detail, /UsrProductName: LLM answered 503/);
      assert.match(item.fix, /LLM_BASE_URL/);
    } finally {
      llm.faults = { ...llm.faults, errorStatus: 0, failCount: 0 };
    }
    assert.equal(find(await itemsOf(orgId), ok, 'ai_fields_blank'), undefined);
  });

  it('a case closed in Creatio whose OpenCX session cannot be resolved is listed as closure_mismatch', async () => {
    const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved });
    const url = await bridge.creatioWebhookUrl(orgId);
    bridge.emu.processes.push({ kind: 'case_closure', url, retries: 2, statusNames: ['Resolved', 'Closed'] });
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hello'));
    const caseId = await bridge.caseOf(orgId, s);
    await waitFor('logged', async () => (await bridge.session(orgId, s)).body?.messages?.logged === 1);
    bridge.opencx.faults.writeErrorStatus = 403;
    try {
      bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Resolved });
      const item = await waitFor('closure_mismatch listed', async () =>
        find(await itemsOf(orgId), s, 'closure_mismatch'),
      );
      assert.match(item.message, /closed in Creatio/);
      assert.match(item.detail, /403/);
      // The step that resolves the session parks too.
      await waitFor('step_parked listed', async () => find(await itemsOf(orgId), s, 'step_parked'));
    } finally {
      bridge.opencx.faults.writeErrorStatus = 0;
    }
    const r = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/resume`);
    assert.equal(r.status, 200, r.text);
    await waitFor('closed', async () => (await bridge.session(orgId, s)).body?.status === 'closed');
    await waitFor('unlisted', async () => {
      const items = await itemsOf(orgId);
      return !find(items, s, 'closure_mismatch') && !find(items, s, 'step_parked');
    });
  });

  it('organization-level items: a business process that never calls, and refused webhook calls', async () => {
    const orgId = await bridge.connectOrg();
    // Positive control: a fresh organization has none.
    assert.deepEqual(
      (await itemsOf(orgId)).map((i) => i.kind),
      [],
    );
    await bridge.store.db.query(
      `INSERT INTO case_sessions (org_id, case_id, session_id, workflow_id, created_at)
       VALUES ($1, $2, 'old-one', 'wf', now() - interval '2 days')`,
      [orgId, randomUUID()],
    );
    await bridge.store.recordCreatioWebhookCall(orgId, 'stale_token', 'Invalid token');
    await bridge.store.recordCreatioWebhookCall(orgId, 'closure');
    const items = await itemsOf(orgId);
    const notCalling = items.filter((i) => i.kind === 'process_not_calling');
    assert.deepEqual(
      notCalling.map((i) => i.detail),
      ['agent-reply process'],
    );
    assert.equal(notCalling[0]!.sessionId, null);
    assert.equal(notCalling[0]!.links.inspector, null);
    const refused = items.find((i) => i.kind === 'webhook_refused');
    assert.match(refused!.message, /1 call from Creatio was refused \(401 Invalid token\)/);
  });
});
