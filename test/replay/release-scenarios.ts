/**
 * Conversations driven into each state a running conversation can be in when a release is
 * replaced: open, handed off, resolved (closed in OpenCX), closed by Creatio's status after an
 * agent reply, parked on a Creatio write it may not do, and continued as new. Each uses only
 * what the release under test offers (its HTTP API and its emulators); a scenario the release
 * cannot play is skipped and said so.
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { ev, waitFor, type BridgeHttp, type ReleaseEmulators } from './releases-lib';

export interface ScenarioResult {
  name: string;
  /** What the scenario left the conversation in. */
  reached: 'open' | 'handed-off' | 'resolved' | 'closed-by-creatio' | 'parked' | 'continued-as-new';
  orgId: string;
  sessionId: string;
  workflowId: string;
  /** Whether the workflow has finished (its last run completed). */
  finished: boolean;
  /** Messages the bridge had logged in Creatio at the end of the scenario. */
  logged: number;
  /** The texts of the messages it sent (contact and AI), in order: `<session> #<n>`. */
  texts: string[];
  /** Agent replies it had Creatio send to OpenCX. */
  agentReplies: number;
  caseId: string | null;
  runs: number;
}

export interface ScenarioContext {
  api: BridgeHttp;
  emus: ReleaseEmulators;
  client: Client;
  /** Prefix of org and session ids (unique per recording). */
  prefix: string;
  /** At most this many messages to reach continue-as-new (the server's suggestion decides when). */
  continueAsNewMessages: number;
  log: (m: string) => void;
}

/** The latest run's status, read raw (no payload is decoded: a release may encrypt its memo). */
export async function completed(client: Client, workflowId: string): Promise<boolean> {
  const d = await client.workflowService.describeWorkflowExecution({
    namespace: client.options.namespace,
    execution: { workflowId },
  });
  return (
    d.workflowExecutionInfo?.status ===
    temporal.api.enums.v1.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED
  );
}

/** The task queue of the workflow's latest run (a continued run keeps its queue). */
export async function taskQueueOf(client: Client, workflowId: string): Promise<string | undefined> {
  const d = await client.workflowService.describeWorkflowExecution({
    namespace: client.options.namespace,
    execution: { workflowId },
  });
  return d.workflowExecutionInfo?.taskQueue ?? undefined;
}

/** The identities of the workers that poll the workflow tasks of `taskQueue` (lately). */
export async function pollersOf(client: Client, taskQueue: string): Promise<string[]> {
  const d = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue },
    taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  });
  return (d.pollers ?? []).map((p) => String(p.identity ?? ''));
}

/** How many runs are still running on `taskQueue` (visibility: it follows within a second or so). */
export async function runningOn(client: Client, taskQueue: string): Promise<number> {
  const r = await client.workflowService.countWorkflowExecutions({
    namespace: client.options.namespace,
    query: `TaskQueue = "${taskQueue}" AND ExecutionStatus = "Running"`,
  });
  return Number(r.count ?? 0);
}

async function finished(client: Client, workflowId: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(`${workflowId} to complete`, () => completed(client, workflowId), timeoutMs);
}

async function summary(
  ctx: ScenarioContext,
  name: string,
  reached: ScenarioResult['reached'],
  orgId: string,
  sessionId: string,
  texts: string[],
  replies = 0,
): Promise<ScenarioResult> {
  const s = await waitFor(`state of ${sessionId}`, () => ctx.api.session(orgId, sessionId));
  const workflowId = String(s.workflowId);
  return {
    name,
    reached,
    orgId,
    sessionId,
    workflowId,
    finished: await completed(ctx.client, workflowId),
    logged: Number(s.messages?.logged ?? 0),
    texts,
    agentReplies: replies,
    caseId: typeof s.caseId === 'string' ? s.caseId : null,
    runs: Number(s.runs ?? 1),
  };
}

const logged = (ctx: ScenarioContext, orgId: string, s: string, n: number) =>
  waitFor(
    `${n} logged in ${s}`,
    async () => Number((await ctx.api.session(orgId, s))?.messages?.logged) >= n,
  );

/** Sends message n of a conversation (contact, or AI) with the text `<session> #<n>`; returns the text. */
export async function sendMessage(
  api: BridgeHttp,
  orgId: string,
  s: string,
  n: number,
  from: 'contact' | 'ai' = 'contact',
): Promise<string> {
  const text = `${s} #${n}`;
  await api.send(
    orgId,
    from === 'contact' ? 'conversation.contact_response' : 'conversation.ai_response',
    ev.message(s, `m${n}`, text),
  );
  return text;
}

/** An agent's email on the case, the release's own way when its emulator has one (recipients, status). */
export function agentEmail(emus: ReleaseEmulators, caseId: string, o: { title: string; body: string }): void {
  if (emus.creatio.agentEmail) {
    emus.creatio.agentEmail(caseId, { ...o, ownerId: emus.ids.contact.Supervisor });
  } else {
    emus.creatio.insert('Activity', {
      CaseId: caseId,
      Title: o.title,
      Body: o.body,
      TypeId: emus.ids.activityType.Email,
      ...(emus.ids.messageType && { MessageTypeId: emus.ids.messageType.Outgoing }),
      OwnerId: emus.ids.contact.Supervisor,
    });
  }
}

/** Runs every scenario the release supports, one after the other; returns where each stopped. */
export async function runScenarios(ctx: ScenarioContext): Promise<ScenarioResult[]> {
  const { api, emus } = ctx;
  const out: ScenarioResult[] = [];
  const org = async (name: string, overrides: Record<string, unknown> = {}) => {
    const orgId = `${ctx.prefix}-${name}`;
    await api.connectOrg(orgId, emus, overrides);
    return orgId;
  };

  {
    const orgId = await org('open');
    const s = `${ctx.prefix}-open`;
    await api.send(orgId, 'conversation.started', ev.started(s));
    const texts = [await sendMessage(api, orgId, s, 0), await sendMessage(api, orgId, s, 1, 'ai')];
    await logged(ctx, orgId, s, 2);
    out.push(await summary(ctx, 'open, two messages logged', 'open', orgId, s, texts));
    ctx.log(`open: ${s}`);
  }

  {
    const orgId = await org('handoff');
    const s = `${ctx.prefix}-handoff`;
    await api.send(orgId, 'conversation.started', ev.started(s));
    const texts = [await sendMessage(api, orgId, s, 0)];
    await api.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
    await waitFor('the handoff', async () => (await api.session(orgId, s))?.handedOffAt);
    await logged(ctx, orgId, s, 1);
    out.push(await summary(ctx, 'handed off, left open', 'handed-off', orgId, s, texts));
    ctx.log(`handed off: ${s}`);
  }

  {
    const orgId = await org('resolved');
    const s = `${ctx.prefix}-resolved`;
    await api.send(orgId, 'conversation.started', ev.started(s));
    const texts = [await sendMessage(api, orgId, s, 0), await sendMessage(api, orgId, s, 1, 'ai')];
    await api.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
    await api.send(orgId, 'conversation.closed', ev.closed(s));
    const { workflowId } = await waitFor('state', () => api.session(orgId, s));
    await finished(ctx.client, String(workflowId));
    out.push(await summary(ctx, 'handed off, then resolved in OpenCX', 'resolved', orgId, s, texts));
    ctx.log(`resolved: ${s}`);
  }

  if (emus.creatio.processes && emus.opencx) {
    const orgId = await org('creatio', { resolvedStatusId: emus.ids.caseStatus.Resolved });
    const s = `${ctx.prefix}-creatio`;
    const hook = await api.creatioWebhookUrl(orgId);
    emus.creatio.processes.push(
      { kind: 'agent_reply', url: hook, retries: 2, activityTypes: ['Email'] },
      { kind: 'case_closure', url: hook, statusNames: ['Resolved', 'Closed'], retries: 2 },
    );
    await api.send(orgId, 'conversation.started', ev.started(s));
    const texts = [await sendMessage(api, orgId, s, 0)];
    await api.send(orgId, 'conversation.handoff_to_human', ev.handoff(s));
    const caseId = String(await waitFor('the case', async () => (await api.session(orgId, s))?.caseId));
    await waitFor('the handoff', async () => (await api.session(orgId, s))?.handedOffAt);
    agentEmail(emus, caseId, { title: 'Re: invoice', body: '<p>The corrected invoice is attached.</p>' });
    await waitFor('the agent reply at OpenCX', () => emus.opencx!.messagesFor(s).length > 0);
    emus.creatio.modify('Case', caseId, { StatusId: emus.ids.caseStatus.Resolved });
    const { workflowId } = await waitFor('state', () => api.session(orgId, s));
    await finished(ctx.client, String(workflowId));
    emus.creatio.processes.length = 0;
    out.push(
      await summary(
        ctx,
        'agent reply from Creatio, closed by the case status',
        'closed-by-creatio',
        orgId,
        s,
        texts,
        1,
      ),
    );
    ctx.log(`closed by Creatio: ${s}`);
  } else {
    ctx.log('closed by Creatio: skipped (this release has no Creatio processes in its emulator)');
  }

  {
    const orgId = await org('parked');
    const s = `${ctx.prefix}-parked`;
    const texts = [await sendMessage(api, orgId, s, 0)];
    await waitFor('the case', async () => (await api.session(orgId, s))?.caseId);
    const client = emus.creatio.clients.get(emus.sandboxClient.clientId)!;
    client.denied = { Activity: ['create'] };
    try {
      texts.push(await sendMessage(api, orgId, s, 1));
      await waitFor('parked', async () => (await api.session(orgId, s))?.lastError?.parked);
    } finally {
      // Fixed in Creatio; the step stays parked until an operator resumes it (or the hourly try).
      client.denied = {};
    }
    out.push(await summary(ctx, 'a Creatio write refused: the step is parked', 'parked', orgId, s, texts));
    ctx.log(`parked: ${s}`);
  }

  if (ctx.continueAsNewMessages > 0) {
    const orgId = await org('long');
    const s = `${ctx.prefix}-long`;
    // Ten messages at a time until the run has continued as new (a release that writes several
    // messages per workflow task needs more of them to reach the server's suggestion).
    const texts: string[] = [];
    let n = 0;
    while (Number((await api.session(orgId, s))?.runs ?? 1) < 2) {
      if (n >= ctx.continueAsNewMessages) throw new Error(`${s}: no continue-as-new after ${n} messages`);
      for (let i = 0; i < 10; i++, n++) {
        texts.push(await sendMessage(api, orgId, s, n));
      }
      await logged(ctx, orgId, s, n);
    }
    out.push(await summary(ctx, `${n} messages across continue-as-new`, 'continued-as-new', orgId, s, texts));
    ctx.log(`continued as new: ${s}`);
  }
  return out;
}
