import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { evaluateAiFields } from '../../src/activities/ai-fields';
import { CreatioClient } from '../../src/creatio/client';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { SANDBOX_CLIENT } from '../../src/sandbox/emulators/creatio';
import { startLlmEmulator, type LlmEmulator } from '../../src/sandbox/emulators/llm';
import { Bridge, ev, waitFor } from '../bridge-harness';

const sid = () => `ai-${randomUUID().slice(0, 12)}`;

const MAPPINGS = [
  {
    column: 'UsrProductName',
    title: 'Product',
    type: 'text',
    description: 'The product the customer asks about.',
  },
  {
    column: 'PriorityId',
    title: 'Priority',
    type: 'dropdown',
    description: 'Pick "High" for outages or data loss, "Medium" for bugs, "Low" for questions.',
  },
  { column: 'UsrUrgent', title: 'Urgent', type: 'text', description: 'yes if the customer needs help today' },
  { column: 'UsrOrderNumber', title: 'Order', type: 'text', description: 'The order number', enabled: false },
];

describe('AI fields at handoff (real Temporal, Creatio and LLM emulators)', () => {
  let llm: LlmEmulator;
  let bridge: Bridge;
  before(async () => {
    llm = await startLlmEmulator();
    bridge = await new Bridge({ llmBaseUrl: llm.url }).start();
  });
  after(async () => {
    await bridge.close();
    await llm.close();
  });

  async function handoff(orgId: string, s: string) {
    await bridge.send(
      orgId,
      'conversation.contact_response',
      ev.message(s, 'm1', 'My X200 router is down, whole office offline!'),
    );
    await bridge.send(
      orgId,
      'conversation.ai_response',
      ev.message(s, 'm2', 'Sorry to hear that, connecting you to a human.'),
    );
    await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
    return waitFor('AI fields outcome', async () => {
      const st = (await bridge.session(orgId, s)).body;
      return st?.aiFields ? st : undefined;
    });
  }

  it('writes text and dropdown fields with the right types, a lookup name as its GUID; disabled mappings are not sent', async () => {
    llm.rule = () => ({ UsrProductName: 'Router X200', PriorityId: 'high', UsrUrgent: 'yes' });
    const orgId = await bridge.connectOrg({ aiFields: MAPPINGS });
    const s = sid();
    const st = await handoff(orgId, s);
    assert.equal(st.aiFields.status, 'done');
    const byColumn = Object.fromEntries(st.aiFields.fields.map((f: { column: string }) => [f.column, f]));
    assert.equal(byColumn.UsrProductName.outcome, 'written');
    assert.equal(byColumn.PriorityId.outcome, 'written');
    assert.equal(byColumn.UsrUrgent.outcome, 'written');
    assert.equal(byColumn.UsrOrderNumber.outcome, 'mapping_disabled');
    const c = await waitFor('patched case', () => {
      const row = bridge.emu.tables.get('Case')!.get(st.caseId)!;
      return row.UsrProductName === 'Router X200' ? row : undefined;
    });
    assert.equal(c.PriorityId, IDS.casePriority.High);
    assert.equal(c.UsrUrgent, true);
    const sent = llm.requests.at(-1)!;
    assert.deepEqual(Object.keys(sent.schema.properties).sort(), [
      'PriorityId',
      'UsrProductName',
      'UsrUrgent',
    ]);
    // In the order the description lists them (OData promises no row order).
    assert.deepEqual(sent.schema.properties.PriorityId!.enum, ['High', 'Medium', 'Low', null]);
    assert.match(sent.messages.at(-1)!.content, /X200 router is down/);
  });

  it('a second handoff keeps what an agent changed since the first, and updates the rest', async () => {
    llm.rule = () => ({ UsrProductName: 'Router X200', PriorityId: 'high', UsrUrgent: 'yes' });
    const orgId = await bridge.connectOrg({ aiFields: MAPPINGS.slice(0, 3) });
    const s = sid();
    const first = await handoff(orgId, s);
    const row = () => bridge.emu.tables.get('Case')!.get(first.caseId)!;
    await waitFor('first handoff written', () => row().UsrProductName === 'Router X200');
    // An agent corrects two fields in Creatio.
    bridge.emu.modify('Case', first.caseId, {
      UsrProductName: 'Router X300',
      PriorityId: IDS.casePriority.Low,
    });
    // The conversation goes back to the AI and is handed off again; the LLM reads it differently.
    llm.rule = () => ({ UsrProductName: 'Router X200', PriorityId: 'medium', UsrUrgent: 'no' });
    await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
    const st = await waitFor('the second handoff evaluated', async () => {
      const b = (await bridge.session(orgId, s)).body;
      return b.aiFields?.fields.some((f: { outcome: string }) => f.outcome === 'kept_agent_value')
        ? b
        : undefined;
    });
    const byColumn = Object.fromEntries(st.aiFields.fields.map((f: { column: string }) => [f.column, f]));
    assert.equal(byColumn.UsrProductName.outcome, 'kept_agent_value');
    assert.equal(byColumn.PriorityId.outcome, 'kept_agent_value');
    assert.equal(byColumn.UsrUrgent.outcome, 'written');
    await waitFor('the unchanged field updated', () => row().UsrUrgent === false);
    assert.equal(row().UsrProductName, 'Router X300', "the agent's value stays");
    assert.equal(row().PriorityId, IDS.casePriority.Low, "the agent's value stays");
  });

  it('drops an answer outside the allowed values and says why', async () => {
    llm.rule = () => ({ UsrProductName: null, PriorityId: 'Urgent', UsrUrgent: 'maybe' });
    const orgId = await bridge.connectOrg({ aiFields: MAPPINGS.slice(0, 3) });
    const s = sid();
    const st = await handoff(orgId, s);
    const byColumn = Object.fromEntries(st.aiFields.fields.map((f: { column: string }) => [f.column, f]));
    assert.equal(byColumn.PriorityId.outcome, 'rejected_value');
    assert.match(byColumn.PriorityId.reason, /"Urgent" is not one of the allowed values/);
    assert.equal(byColumn.UsrProductName.outcome, 'left_blank');
    assert.equal(byColumn.UsrUrgent.outcome, 'rejected_value');
    assert.equal(bridge.emu.tables.get('Case')!.get(st.caseId)!.PriorityId, IDS.casePriority.Medium);
  });

  it('a misspelled column that slipped in is recorded at handoff without blocking the case', async () => {
    llm.rule = () => ({ UsrProductName: 'Router X200' });
    const orgId = await bridge.connectOrg();
    const stored = (await bridge.store.getOrg(orgId))!;
    await bridge.store.saveOrg(orgId, {
      ...stored.settings,
      aiFields: [
        {
          column: 'priorityid',
          title: 'Priority',
          type: 'dropdown',
          description: '"High" or "Low"',
          enabled: true,
        },
        { column: 'UsrProductName', title: 'Product', type: 'text', description: 'product', enabled: true },
      ],
    });
    const s = sid();
    const st = await handoff(orgId, s);
    const byColumn = Object.fromEntries(st.aiFields.fields.map((f: { column: string }) => [f.column, f]));
    assert.equal(byColumn.priorityid.outcome, 'column_missing');
    assert.match(byColumn.priorityid.reason, /did you mean "PriorityId"/);
    assert.equal(byColumn.UsrProductName.outcome, 'written');
    assert.equal(st.messages.logged, 2);
  });

  it('LLM down: the case and the transcript are complete, and every mapped field says why it is blank', async () => {
    llm.rule = () => ({ UsrProductName: 'never' });
    llm.faults = { ...llm.faults, errorStatus: 503, failCount: Number.POSITIVE_INFINITY };
    try {
      const orgId = await bridge.connectOrg({ aiFields: MAPPINGS });
      const s = sid();
      const st = await handoff(orgId, s);
      assert.equal(st.aiFields.status, 'failed');
      assert.match(st.aiFields.reason, /LLM answered 503/);
      assert.deepEqual(
        st.aiFields.fields.map((f: any) => [f.column, f.outcome]),
        [
          ['UsrOrderNumber', 'mapping_disabled'],
          ['UsrProductName', 'llm_error'],
          ['PriorityId', 'llm_error'],
          ['UsrUrgent', 'llm_error'],
        ],
      );
      for (const f of st.aiFields.fields.filter((x: any) => x.outcome === 'llm_error')) {
        assert.equal(f.reason, 'LLM answered 503');
      }
      const findings = (await bridge.api.request('GET', `/v1/orgs/${orgId}/diagnose?sessionId=${s}`)).body
        .findings;
      assert.deepEqual(
        findings.filter((f: any) => f.scenario === 'ai_fields_blank').map((f: any) => f.code),
        ['ai_field_mapping_disabled', 'ai_field_llm_error', 'ai_field_llm_error', 'ai_field_llm_error'],
      );
      await waitFor('handoff note', () =>
        bridge.activitiesOf(st.caseId).some((a) => String(a.Title).includes('Handed off')),
      );
      assert.equal((await bridge.session(orgId, s)).body.messages.logged, 2);
      assert.equal(bridge.emu.tables.get('Case')!.get(st.caseId)!.UsrProductName, '');
    } finally {
      llm.faults = { ...llm.faults, errorStatus: 0, failCount: 0 };
    }
  });

  it('the LLM endpoint dropping the connection: each field names it in words, not only as a socket code', async () => {
    llm.faults = { ...llm.faults, dropConnection: true };
    try {
      const orgId = await bridge.connectOrg({ aiFields: MAPPINGS.slice(0, 2) });
      const st = await handoff(orgId, sid());
      assert.equal(st.aiFields.status, 'failed');
      assert.equal(st.aiFields.fields.length, 2);
      for (const f of st.aiFields.fields) {
        assert.equal(f.outcome, 'llm_error');
        assert.equal(f.reason, 'The LLM endpoint closed the connection before answering (UND_ERR_SOCKET)');
      }
    } finally {
      llm.faults = { ...llm.faults, dropConnection: false };
    }
  });

  it('a short LLM outage is retried within the deadline', async () => {
    llm.rule = () => ({ UsrProductName: 'Router X200' });
    llm.faults = { ...llm.faults, errorStatus: 429, failCount: 2 };
    const orgId = await bridge.connectOrg({ aiFields: MAPPINGS.slice(0, 1) });
    const st = await handoff(orgId, sid());
    assert.equal(st.aiFields.fields[0].outcome, 'written');
  });

  it('handoff-only mode gets the fields too', async () => {
    llm.rule = () => ({ UsrProductName: 'Router X200' });
    const orgId = await bridge.connectOrg({ createCaseOnlyOnHandoff: true, aiFields: MAPPINGS.slice(0, 1) });
    const st = await handoff(orgId, sid());
    assert.equal(st.aiFields.fields[0].outcome, 'written');
    await waitFor(
      'patched',
      () => bridge.emu.tables.get('Case')!.get(st.caseId)!.UsrProductName === 'Router X200',
    );
  });

  it('Test & Save names dropdown values that are not in the lookup', async () => {
    const res = await bridge.api.request(
      'PUT',
      `/v1/orgs/org-${randomUUID().slice(0, 8)}/integrations/creatio`,
      {
        instanceUrl: bridge.emu.url,
        ...SANDBOX_CLIENT,
        aiFields: [
          {
            column: 'PriorityId',
            title: 'Priority',
            type: 'dropdown',
            description: 'Pick "High", "Urgent" or "Low"',
          },
        ],
      },
    );
    assert.equal(res.status, 422);
    assert.equal(res.body.error.code, 'ai_field_value_not_found');
    assert.match(res.body.error.message, /"Urgent"/);
    assert.equal(res.body.error.field, 'aiFields.0.description');
  });

  it('no LLM configured: every enabled field says so', async () => {
    const client = new CreatioClient({
      instanceUrl: bridge.emu.url,
      identityServiceUrl: bridge.emu.url,
      ...SANDBOX_CLIENT,
    });
    const r = await evaluateAiFields({
      client,
      mappings: MAPPINGS.map((m) => ({
        ...m,
        type: m.type as 'text' | 'dropdown',
        enabled: m.enabled ?? true,
      })),
      llm: undefined,
      transcript: 'x',
      budgetChars: 100,
    });
    assert.deepEqual(r.outcomes.map((o) => o.outcome).sort(), [
      'llm_not_configured',
      'llm_not_configured',
      'llm_not_configured',
      'mapping_disabled',
    ]);
    assert.deepEqual(r.patch, {});
  });
});
