/**
 * An OpenCX that keeps no custom data and serves no history cannot say whether it has a reply.
 * Replies still go out once; a send whose answer was lost is never sent blind nor retried for ever:
 * the step stops, named, for an operator.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { Bridge, ev, waitFor } from '../bridge-harness';

describe('agent replies when OpenCX cannot be asked whether it has one', () => {
  const bridge = new Bridge();
  before(() => {
    return bridge.start().then(() => {
      bridge.opencx.keepsCustomData = false;
      bridge.opencx.servesHistory = false;
    });
  });
  after(() => bridge.close());

  const texts = (s: string) => bridge.sentTexts(s);
  const reply = (caseId: string, text: string) => bridge.agentReply(caseId, text);

  async function conversation() {
    const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved });
    const url = await bridge.creatioWebhookUrl(orgId);
    bridge.emu.processes.push({ kind: 'agent_reply', url, retries: 2, activityTypes: ['Email'] });
    const s = `nv-${randomUUID().slice(0, 12)}`;
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'c1', 'Hello?'));
    return { orgId, s, caseId: await bridge.caseOf(orgId, s) };
  }

  it('replies go out once, also from a run that looks before it writes (a resumed conversation)', async () => {
    const { orgId, s, caseId } = await conversation();
    reply(caseId, 'first');
    await waitFor('first', () => texts(s).includes('first'));
    // OpenCX closes the conversation; the customer writes again: a resumed run, which asks OpenCX
    // before each send. OpenCX cannot tell; the bridge never started this send: it goes out.
    await bridge.send(orgId, 'conversation.closed', ev.closed(s, 'not_resolved'));
    await bridge.result(orgId, s);
    const back = await bridge.send(
      orgId,
      'conversation.contact_response',
      ev.message(s, 'c2', 'One more question'),
    );
    assert.equal(back.body.resumed, true);
    reply(caseId, 'second');
    await waitFor('second', () => texts(s).includes('second'));
    assert.deepEqual(texts(s), ['first', 'second']);
  });

  it('a send whose answer was lost: not sent again blind; the step stops, named in the state and diagnose; skip goes on', async () => {
    const { orgId, s, caseId } = await conversation();
    bridge.opencx.faults = { ...bridge.opencx.faults, acceptThenFail: 1 };
    reply(caseId, 'maybe twice');
    const st = await waitFor('the step stopped', async () => {
      const b = (await bridge.session(orgId, s)).body;
      return b.lastError?.parked ? b : undefined;
    });
    assert.equal(st.lastError.type, 'OpenCXReplyUnverifiableError');
    assert.match(st.lastError.message, /cannot tell/);
    assert.deepEqual(texts(s), ['maybe twice'], 'sent once (OpenCX accepted it), not again');
    const diag = await bridge.api.request('GET', `/v1/orgs/${orgId}/diagnose?sessionId=${s}`);
    assert.ok(
      (diag.body.findings as { code: string }[]).some((f) => f.code === 'reply_unverifiable'),
      JSON.stringify(diag.body),
    );
    // The operator sees the customer has it, and skips; the next reply goes out once.
    const skip = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/skip`, {
      reason: 'the customer has it (seen in OpenCX)',
    });
    assert.equal(skip.status, 200, skip.text);
    reply(caseId, 'after the skip');
    await waitFor('after the skip', () => texts(s).includes('after the skip'));
    assert.deepEqual(texts(s), ['maybe twice', 'after the skip']);
  });
});
