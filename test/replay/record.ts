/**
 * `npm run replay:record`: plays every flow of a conversation through the real bridge (Temporal
 * dev server, workers, emulators) and writes each workflow run's history under
 * test/replay/histories/. `npm test` replays them against the current workflow code
 * (test/unit/replay/replay.test.ts): a change that would break a running conversation fails there.
 * Record again only for a change that cannot break running histories (docs/decisions/0016).
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { createLogger } from '../../src/logger';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { startLlmEmulator } from '../../src/sandbox/emulators/llm';
import { startTemporal } from '../../src/temporal/launcher';
import { conversationWorkflowId } from '../../src/workflows/contract';
import { Bridge, ev, waitFor } from '../bridge-harness';

const DIR = path.join(__dirname, 'histories');

const { History } = temporal.api.history.v1;

/** A history as plain JSON (bytes in base64, 64-bit numbers as strings); History.fromObject reads it back. */
function toPlain(history: temporal.api.history.v1.IHistory): unknown {
  return History.toObject(History.fromObject(history), { longs: String, bytes: String });
}

async function main(): Promise<void> {
  const log = createLogger('error');
  const temporal = await startTemporal({ address: process.env.TEMPORAL_ADDRESS, log });
  const llm = await startLlmEmulator();
  llm.rule = () => ({ UsrProductName: 'Router X200' });
  const bridge = await new Bridge({
    temporalAddress: temporal.address,
    log,
    llmBaseUrl: llm.url,
    // Small histories, so that the recorded flows include continue-as-new.
    conversation: { maxHistoryEvents: 40 },
  }).start();
  const recorded: { name: string; workflowId: string }[] = [];
  const settled = async (name: string, orgId: string, s: string) => {
    await bridge.result(orgId, s, 60_000);
    recorded.push({ name, workflowId: conversationWorkflowId(orgId, s) });
  };
  try {
    const url = async (orgId: string) => bridge.creatioWebhookUrl(orgId);

    // 1. Every conversation: started, messages, handoff with AI fields, an agent reply, closure
    //    by the case status (Creatio's two processes calling back).
    {
      const orgId = await bridge.connectOrg({
        resolvedStatusId: IDS.caseStatus.Resolved,
        aiFields: [{ column: 'UsrProductName', title: 'Product', type: 'text', description: 'The product' }],
      });
      const hook = await url(orgId);
      bridge.emu.processes.push(
        { kind: 'agent_reply', url: hook, retries: 2, activityTypes: ['Email'] },
        { kind: 'case_closure', url: hook, statusNames: ['Resolved', 'Closed'], retries: 2 },
      );
      const s = 'replay-full';
      await bridge.send(
        orgId,
        'conversation.started',
        ev.started(s, { name: 'Ann', email: 'ann@example.com' }),
      );
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'My router is down'));
      await bridge.send(orgId, 'conversation.ai_response', ev.message(s, 'm2', 'Have you restarted it?'));
      await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
      const caseId = await bridge.caseOf(orgId, s);
      await waitFor(
        'AI fields',
        async () => (await bridge.session(orgId, s)).body?.aiFields?.status === 'done',
      );
      bridge.emu.agentEmail(caseId, {
        title: 'Re: router',
        body: '<p>A technician is on the way.</p>',
        ownerId: IDS.contact.Supervisor,
      });
      await waitFor('the reply at OpenCX', () => bridge.opencx.messagesFor(s).length > 0);
      bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Resolved });
      await settled('every-conversation, handoff, AI fields, reply, closure by status', orgId, s);
    }

    // 2. Handoff-only: nothing until handoff, then the case and the transcript; closed in OpenCX.
    {
      const orgId = await bridge.connectOrg({ createCaseOnlyOnHandoff: true });
      const s = 'replay-handoff-only';
      for (let i = 0; i < 3; i++) {
        await bridge.send(orgId, 'conversation.contact_response', ev.message(s, `m${i}`, `question ${i}`));
      }
      await bridge.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
      await bridge.caseOf(orgId, s);
      await bridge.send(orgId, 'conversation.closed', ev.closed(s));
      await settled('handoff-only, closed in OpenCX', orgId, s);
    }

    // 3. Long conversation: continue-as-new, then closed.
    {
      const orgId = await bridge.connectOrg();
      const s = 'replay-long';
      for (let i = 0; i < 60; i++) {
        await bridge.send(orgId, 'conversation.contact_response', ev.message(s, `m${i}`, `line ${i}`));
      }
      await waitFor(
        '60 logged',
        async () => (await bridge.session(orgId, s)).body?.messages?.logged === 60,
        60_000,
      );
      await bridge.send(orgId, 'conversation.closed', ev.closed(s));
      await settled('60 messages across continue-as-new', orgId, s);
    }

    // 4. A parked step: Creatio refuses a write, an operator resumes after the fix.
    {
      const orgId = await bridge.connectOrg();
      const s = 'replay-parked';
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'first'));
      await bridge.caseOf(orgId, s);
      const client = bridge.emu.clients.get('sandbox-client')!;
      client.denied = { Activity: ['create'] };
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'second'));
      await waitFor('parked', async () => (await bridge.session(orgId, s)).body?.lastError?.parked);
      client.denied = {};
      const res = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${s}/resume`);
      if (res.status !== 200) throw new Error(`resume answered ${res.status}: ${res.text}`);
      await waitFor('2 logged', async () => (await bridge.session(orgId, s)).body?.messages?.logged === 2);
      await bridge.send(orgId, 'conversation.closed', ev.closed(s, 'not_resolved'));
      await settled('a parked step resumed by an operator', orgId, s);
    }

    // 5. A late message after the close: a resumed run finds the case.
    {
      const orgId = await bridge.connectOrg();
      const s = 'replay-late';
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hello'));
      await bridge.caseOf(orgId, s);
      await bridge.send(orgId, 'conversation.closed', ev.closed(s));
      await bridge.result(orgId, s, 60_000);
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'one more thing'));
      await waitFor(
        'the late message',
        async () => (await bridge.session(orgId, s)).body?.messages?.logged === 1,
      );
      await bridge.send(orgId, 'conversation.closed', ev.closed(s));
      await settled('a late message after the close (resumed run)', orgId, s);
    }

    await rm(DIR, { recursive: true, force: true });
    await mkdir(DIR, { recursive: true });
    // The payloads are encrypted with this store's key (test data only); replay decrypts with it.
    await writeFile(path.join(DIR, 'payload-key.base64'), bridge.storeConfig.key.toString('base64'));
    let files = 0;
    for (const { name, workflowId } of recorded) {
      const runs = [];
      for await (const run of bridge.client.workflow.list({ query: `WorkflowId = "${workflowId}"` }))
        runs.push(run);
      runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
      for (const [i, run] of runs.entries()) {
        const history = await bridge.client.workflow.getHandle(workflowId, run.runId).fetchHistory();
        const file = `${workflowId.split(':').pop()!}-run${i + 1}.json`;
        await writeFile(
          path.join(DIR, file),
          `${JSON.stringify({ name, workflowId, history: toPlain(history) })}\n`,
        );
        files++;
      }
    }
    console.log(
      `recorded ${files} histories of ${recorded.length} conversations in ${path.relative(process.cwd(), DIR)}`,
    );
  } finally {
    await bridge.close();
    await llm.close();
    await temporal.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
