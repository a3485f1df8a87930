/**
 * Histories written by the current code replay against it: conversations through the real bridge,
 * with the Creatio processes calling back and the state read (queried) meanwhile, as the console
 * and diagnose do. Queries and callbacks can split a workflow task between a local activity's
 * result and the commands after it; a branch decided there by patched() replayed differently
 * (nondeterminism on a finished conversation's query), so every patch is asked at the run's start
 * (docs/decisions/0016-replay-and-patching.md). The recorded corpus covers the other direction:
 * histories of earlier code against this code.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Worker } from '@temporalio/worker';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { workflowBundle } from '../../src/worker';
import { conversationWorkflowId } from '../../src/workflows/contract';
import { Bridge, ev } from '../bridge-harness';

describe('histories written by the current code replay against it', () => {
  const bridge = new Bridge({
    conversation: { replyCheckEvery: '1s', replyCheckMaxEvery: '2s', processCallGrace: '300ms' },
  });
  before(() => bridge.start());
  after(() => bridge.close());

  it('six finished conversations (handoff, process callbacks, state read throughout) replay', async () => {
    const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved });
    const url = await bridge.creatioWebhookUrl(orgId);
    bridge.emu.processes.push({ kind: 'agent_reply', url, retries: 2, activityTypes: ['Email'] });
    const ids = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const s = `lr-${randomUUID().slice(0, 10)}`;
        await bridge.send(orgId, 'conversation.started', ev.started(s));
        await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hello'));
        await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'are you there?'));
        await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
        const caseId = await bridge.caseOf(orgId, s); // reads the state until the case exists
        // The closure process is missing: the timer finds the status and finishes the conversation.
        bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Resolved });
        const result = await bridge.result(orgId, s, 30_000);
        assert.equal(result.status, 'closed');
        assert.equal(result.messages.logged, 2);
        return conversationWorkflowId(orgId, s);
      }),
    );
    const bundle = await workflowBundle(process.env.WORKFLOW_BUNDLE);
    for (const id of ids) {
      const history = await bridge.client.workflow.getHandle(id).fetchHistory();
      await Worker.runReplayHistory(
        { workflowBundle: bundle, dataConverter: { payloadCodecs: [bridge.codec] } },
        history,
        id,
      );
    }
  });
});
