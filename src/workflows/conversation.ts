import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import type { Activities, LogEntry } from '../activities';
import { SEARCH_ATTRIBUTE_KEYS } from '../temporal/search-attributes';
import {
  conversationEventSignal,
  conversationWorkflowId,
  resumeSignal,
  type ProcessEvidence,
  stateQuery,
  type ConversationEvent,
  type ConversationState,
} from './messages';
import {
  aiFieldsActivityOptions,
  creatioActivityOptions,
  localActivityOptions,
  opencxActivityOptions,
} from './retry-policies';
import { creatioTaskQueue, opencxTaskQueue } from './task-queues';

export interface ConversationOptions {
  /** Base task queue; Creatio activities run on creatioTaskQueue(taskQueue, orgId). */
  taskQueue: string;
  /** How long a Creatio write keeps retrying through an outage before the step is parked. */
  creatioRetryFor: Duration;
  /** Longest pause between two tries of a failing Creatio call. */
  creatioRetryMaxInterval: Duration;
  /** How often a parked step (a failure retrying cannot fix) is tried again without a resume signal. */
  parkedRetryEvery: Duration;
  /** Continue-as-new at this history length at the latest (the server may suggest it earlier). */
  maxHistoryEvents: number;
  /** Longest time AI field evaluation may take at handoff (retries included). */
  aiFieldsDeadline: Duration;
  /** A conversation with no event for this long is finished. */
  idleTimeout: Duration;
  /**
   * After handoff, how often the bridge looks for agent replies and closure on its own, in case the
   * Creatio process is missing, inactive or filtered (doubling while quiet, up to the max).
   */
  replyCheckEvery?: Duration;
  replyCheckMaxEvery?: Duration;
  /** Each reply read looks this far before the cursor again (late commits, clock skew). */
  replyLookback?: Duration;
  /** A process that has not called this long after a reply or status change counts as not calling. */
  processCallGrace?: Duration;
  /** Longest single OpenCX call attempt; a worker that died mid-send is retried after this. */
  opencxAttemptTimeout?: Duration;
}

export const REPLY_DEFAULTS = {
  replyCheckEvery: '2 minutes',
  replyCheckMaxEvery: '30 minutes',
  replyLookback: '10 minutes',
  processCallGrace: '15 seconds',
  opencxAttemptTimeout: '45 seconds',
} as const;

/** Everything a run hands to the next one on continue-as-new. */
export interface CarriedState {
  state: ConversationState;
  queue: ConversationEvent[];
  seenEvents: string[];
  seenMessages: string[];
  unlogged: LogEntry[];
  /** The conversation as text, for AI fields (bounded, most recent kept). */
  transcript: string[];
  /** CreatedOn of the newest reply-like activity seen, and the replies delivered in the look-back window. */
  replyCursor: string | null;
  /** `[activityId, createdOn]` (a bare id from the first release). */
  deliveredReplies: (string | [string, string])[];
  /** Workflow time of the last event handled (for the idle timeout), and the reply timer. */
  lastEventAt?: number;
  replyCheck?: { nextAt: number | null; delayMs: number };
}

export interface ConversationInput {
  orgId: string;
  sessionId: string;
  options: ConversationOptions;
  carried?: CarriedState;
}

/** Characters of transcript kept for AI fields. */
const TRANSCRIPT_CAP = 50_000;

/** Most messages written by one activity when a burst is waiting. */
const BATCH = 25;

/** Dedupe keys kept across continue-as-new: enough for any redelivery window. */
const MAX_SEEN = 20_000;

const IN_PROGRESS_DESCRIPTION =
  'Conversation in progress in OpenCX. The AI summary is written here when the conversation is handed off.';

/**
 * One OpenCX conversation, from its first event to its close. Events arrive through one signal
 * and are handled strictly in arrival order by the main loop; every Creatio write is an activity
 * with a deterministic id, so nothing is written twice and nothing is skipped.
 */
export async function conversationWorkflow(input: ConversationInput): Promise<ConversationState> {
  const { orgId, sessionId, options } = input;
  const carried = input.carried;

  // State first; handlers after it, so buffered signals always find it initialised.
  const state: ConversationState = carried?.state ?? {
    orgId,
    sessionId,
    workflowId: conversationWorkflowId(orgId, sessionId),
    mode: 'every_conversation',
    status: 'open',
    caseId: null,
    caseNumber: null,
    contact: {},
    channel: null,
    messages: { received: 0, logged: 0, pending: 0 },
    handedOffAt: null,
    caseStatus: null,
    resolution: null,
    agentRepliesDelivered: 0,
    processes: { agentReply: noEvidence(), closure: noEvidence() },
    nextReplyCheckAt: null,
    aiFields: null,
    lastError: null,
    notes: [],
    runs: 0,
  };
  state.runs += 1;
  state.processes ??= { agentReply: noEvidence(), closure: noEvidence() };
  const replyCheckEveryMs = msToNumber(options.replyCheckEvery ?? REPLY_DEFAULTS.replyCheckEvery);
  const replyCheckMaxMs = msToNumber(options.replyCheckMaxEvery ?? REPLY_DEFAULTS.replyCheckMaxEvery);
  const lookbackMs = msToNumber(options.replyLookback ?? REPLY_DEFAULTS.replyLookback);
  const graceMs = msToNumber(options.processCallGrace ?? REPLY_DEFAULTS.processCallGrace);
  const idleMs = msToNumber(options.idleTimeout);
  const queue: ConversationEvent[] = carried?.queue ?? [];
  const seenEvents = new Set(carried?.seenEvents);
  const seenMessages = new Set(carried?.seenMessages);
  const unlogged: LogEntry[] = carried?.unlogged ?? [];
  const transcript: string[] = carried?.transcript ?? [];
  let replyCursor = carried?.replyCursor ?? null;
  /** Replies delivered, by activity id, with their CreatedOn; pruned past the look-back window. */
  const deliveredReplies = new Map<string, string>(
    (carried?.deliveredReplies ?? []).map((d) =>
      typeof d === 'string' ? [d, replyCursor ?? new Date(0).toISOString()] : d,
    ),
  );
  let lastEventAt = carried?.lastEventAt ?? Date.now();
  const replyCheck = carried?.replyCheck ?? { nextAt: null, delayMs: replyCheckEveryMs };
  let resumeRequested = false;

  const view = (): ConversationState => ({
    ...state,
    nextReplyCheckAt: replyCheck.nextAt === null ? null : new Date(replyCheck.nextAt).toISOString(),
    messages: { ...state.messages, pending: unlogged.filter((e) => e.kind === 'message').length },
  });

  setHandler(stateQuery, view);
  setHandler(conversationEventSignal, (event) => {
    if (seenEvents.has(event.eventId)) return;
    if (event.kind === 'creatio_activity') called(state.processes.agentReply);
    if (event.kind === 'creatio_status') called(state.processes.closure);
    // One pending "new activity" check covers any number of calls: it reads everything new.
    if (event.kind === 'creatio_activity' && queue.some((e) => e.kind === 'creatio_activity')) return;
    seenEvents.add(event.eventId);
    queue.push(event);
  });
  setHandler(resumeSignal, () => {
    resumeRequested = true;
  });

  const creatio = proxyActivities<Activities>(
    creatioActivityOptions(
      creatioTaskQueue(options.taskQueue, orgId),
      options.creatioRetryFor,
      options.creatioRetryMaxInterval,
    ),
  );
  const opencx = proxyActivities<Activities>(
    opencxActivityOptions(
      opencxTaskQueue(options.taskQueue, orgId),
      options.creatioRetryFor,
      options.creatioRetryMaxInterval,
      options.opencxAttemptTimeout ?? REPLY_DEFAULTS.opencxAttemptTimeout,
    ),
  );
  const ai = proxyActivities<Activities>(
    aiFieldsActivityOptions(creatioTaskQueue(options.taskQueue, orgId), options.aiFieldsDeadline),
  );
  const local = proxyLocalActivities<Activities>(localActivityOptions);

  const note = (message: string) => {
    state.notes.push({ at: new Date().toISOString(), message });
    if (state.notes.length > 50) state.notes.shift();
    log.info(message, { orgId, sessionId });
  };

  /**
   * Runs an activity until it succeeds. Transient failures are retried by Temporal (retry
   * policy); a failure it will not retry parks the step, visible in the state query, until a
   * resume signal or the next periodic try. The conversation waits rather than skipping data.
   */
  async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        const result = await fn();
        if (state.lastError?.step === name) state.lastError = null;
        return result;
      } catch (err) {
        if (!(err instanceof ActivityFailure)) throw err;
        const cause = err.cause;
        const type =
          cause instanceof ApplicationFailure
            ? (cause.type ?? 'ApplicationFailure')
            : (cause?.name ?? 'Error');
        state.lastError = {
          step: name,
          type,
          message: cause?.message ?? err.message,
          at: new Date().toISOString(),
          parked: true,
        };
        log.warn('conversation step failed; parked until fixed', { orgId, sessionId, step: name, type });
        resumeRequested = false;
        await condition(() => resumeRequested, options.parkedRetryEvery);
        state.lastError.parked = false;
      }
    }
  }

  const logEntry = (entry: LogEntry) =>
    step(`log ${entry.kind === 'message' ? `message ${entry.messageId}` : entry.kind}`, () =>
      creatio.logEntry({ orgId, sessionId, caseId: state.caseId!, entry }),
    );

  async function createCase(description: string, registeredOn: string): Promise<void> {
    const created = await step('create case', () =>
      creatio.ensureCase({
        orgId,
        sessionId,
        contact: state.contact,
        channel: state.channel ?? 'web',
        description,
        registeredOn,
      }),
    );
    state.caseId = created.caseId;
    state.caseNumber = created.caseNumber;
    upsertSearchAttributes([{ key: SEARCH_ATTRIBUTE_KEYS.CreatioCaseId, value: created.caseId }]);
    upsertMemo({ caseId: created.caseId, caseNumber: created.caseNumber });
    await logEntry({
      kind: 'session_link',
      contact: state.contact,
      channel: state.channel ?? 'web',
      timestamp: registeredOn,
    });
  }

  /**
   * Logs every buffered message, oldest first, up to BATCH per activity (one activity per message
   * when they come one by one, fewer under a burst). Entries leave the buffer once written.
   */
  async function drain(): Promise<void> {
    while (state.caseId && unlogged.length > 0) {
      const batch = unlogged.slice(0, BATCH);
      const first = batch[0]!;
      const label = first.kind === 'message' ? `message ${first.messageId}` : first.kind;
      await step(
        `log ${batch.length > 1 ? `${batch.length} messages from ${label}` : label}`,
        (): Promise<unknown> =>
          batch.length === 1
            ? creatio.logEntry({ orgId, sessionId, caseId: state.caseId!, entry: first })
            : creatio.logEntries({ orgId, sessionId, caseId: state.caseId!, entries: batch }),
      );
      unlogged.splice(0, batch.length);
      state.messages.logged += batch.filter((e) => e.kind === 'message').length;
    }
  }

  async function readMode(): Promise<boolean> {
    const s = await step('read settings', () => local.getConversationSettings(orgId));
    state.mode = s.createCaseOnlyOnHandoff ? 'handoff_only' : 'every_conversation';
    return s.createCaseOnlyOnHandoff;
  }

  async function onMessage(m: Extract<LogEntry, { kind: 'message' }>): Promise<void> {
    if (seenMessages.has(m.messageId)) return;
    seenMessages.add(m.messageId);
    state.messages.received++;
    unlogged.push(m);
    const who = m.author === 'customer' ? 'Customer' : m.author === 'ai' ? 'AI agent' : 'Agent';
    transcript.push(`${who}: ${m.text}`);
    while (transcript.length > 1 && transcript.join('\n').length > TRANSCRIPT_CAP) transcript.shift();
    if (!state.caseId) {
      // The mode is read when it matters: before the case exists.
      if (await readMode()) return;
      const firstCustomer = unlogged.find((e) => e.kind === 'message' && e.author === 'customer');
      if (!firstCustomer) return;
      await createCase(IN_PROGRESS_DESCRIPTION, firstCustomer.timestamp);
    }
    await drain();
  }

  async function onHandoff(ev: Extract<ConversationEvent, { kind: 'handoff' }>): Promise<void> {
    state.handedOffAt = ev.timestamp;
    const handoff = {
      summary: ev.summary,
      language: ev.language,
      sentiment: ev.sentiment,
      reason: ev.reason,
    };
    if (!state.caseId) {
      await readMode();
      const first = unlogged[0]?.timestamp ?? ev.timestamp;
      await createCase(
        [
          ev.summary,
          '',
          `Language: ${ev.language || 'unknown'}`,
          `Sentiment: ${ev.sentiment || 'unknown'}`,
          `Handoff reason: ${ev.reason || 'unknown'}`,
        ].join('\n'),
        first,
      );
      await drain();
    } else {
      await drain();
      await step('write handoff summary', () =>
        creatio.applyHandoff({ orgId, caseId: state.caseId!, ...handoff }),
      );
    }
    await aiFields();
    await logEntry({ kind: 'handoff_note', ...handoff, timestamp: ev.timestamp });
  }

  /**
   * AI fields, from the transcript: evaluated with a deadline, then written in their own PATCH so
   * that a bad value never blocks the case or the transcript. Failures give up the fields only.
   */
  async function aiFields(): Promise<void> {
    let result;
    try {
      result = await ai.evaluateAiFields({ orgId, transcript: transcript.join('\n') });
    } catch (err) {
      const cause = err instanceof ActivityFailure ? (err.cause ?? err) : err;
      const reason = `LLM error: ${cause instanceof Error ? cause.message : String(cause)}`;
      state.aiFields = { status: 'failed', reason, fields: [] };
      note(`AI fields left blank: ${reason}`);
      return;
    }
    state.aiFields = { status: 'done', fields: result.outcomes };
    if (Object.keys(result.patch).length > 0) {
      await step('write AI fields', () =>
        creatio.writeAiFields({ orgId, caseId: state.caseId!, patch: result.patch }),
      );
    }
  }

  async function onClosed(ev: Extract<ConversationEvent, { kind: 'closed' }>): Promise<void> {
    state.resolution = ev.resolution;
    if (state.caseId) {
      await drain();
      if (ev.resolution === 'resolved') {
        const r = await step('resolve case', () => creatio.resolveCase({ orgId, caseId: state.caseId! }));
        if (!r.done) note(`case status not changed: ${r.reason}`);
      }
    } else {
      note(
        state.mode === 'handoff_only'
          ? 'closed without handoff in handoff-only mode: no case was created'
          : 'closed before any customer message: no case was created',
      );
    }
    state.status = 'closed';
  }

  /**
   * Delivers every agent reply written in Creatio since the last read, oldest first, each once.
   * `source` says who asked: a process call, the closure, or the bridge's own timer; a reply that
   * only the timer found, well after it was written, is evidence that the process did not call.
   */
  async function deliverNewReplies(source: 'webhook' | 'closure' | 'timer'): Promise<number> {
    if (!state.caseId) return 0;
    let delivered = 0;
    for (;;) {
      const page = await step('fetch agent replies', () =>
        creatio.fetchAgentReplies({
          orgId,
          caseId: state.caseId!,
          since: replyCursor,
          lookbackMs,
          delivered: [...deliveredReplies.keys()],
        }),
      );
      for (const reply of page.replies) {
        if (deliveredReplies.has(reply.id)) continue;
        const firstTriedAt = new Date().toISOString();
        let tries = 0;
        const r = await step(`deliver agent reply ${reply.id}`, () =>
          opencx.deliverReply({ orgId, sessionId, reply, verify: tries++ > 0, firstTriedAt }),
        );
        deliveredReplies.set(reply.id, reply.createdOn);
        state.agentRepliesDelivered++;
        delivered++;
        if (r.omittedAttachments.length > 0) {
          note(`agent reply ${reply.id}: not attached (too large): ${r.omittedAttachments.join(', ')}`);
        }
        if (source === 'timer' && Date.now() - Date.parse(reply.createdOn) > graceMs) {
          missed(
            state.processes.agentReply,
            "Agent replies reach the customer only through the bridge's periodic check: the agent-reply business process is missing, inactive or filtered (it did not call the webhook for this case)",
          );
        }
      }
      if (page.cursor && (!replyCursor || Date.parse(page.cursor) > Date.parse(replyCursor))) {
        replyCursor = page.cursor;
      }
      const windowStart = replyCursor ? Date.parse(replyCursor) - lookbackMs : 0;
      for (const [id, createdOn] of deliveredReplies) {
        if (Date.parse(createdOn) < windowStart) deliveredReplies.delete(id);
      }
      if (!page.more) return delivered;
    }
  }

  /** The case is in a closure status: deliver what is left, resolve the session, finish. */
  async function closeFromCreatio(statusName: string): Promise<void> {
    await drain();
    await deliverNewReplies('closure');
    await step('resolve OpenCX session', () => opencx.resolveSession({ orgId, sessionId }));
    note(`case status '${statusName}': the OpenCX session was resolved`);
    state.resolution = 'resolved';
    state.status = 'closed';
  }

  async function onCaseStatus(): Promise<void> {
    if (!state.caseId) return;
    const st = await step('read case status', () => creatio.readCaseStatus({ orgId, caseId: state.caseId! }));
    state.caseStatus = st.name;
    if (!st.closes) {
      note(
        `status '${st.name}' is not one of [${st.closureStatusNames.map((n) => `'${n}'`).join(', ')}] (names are case-sensitive): the OpenCX session stays open`,
      );
      return;
    }
    await closeFromCreatio(st.name);
  }

  /** Wakes the reply timer sooner when something happens (it backs off only while all is quiet). */
  function replyCheckSoon(): void {
    if (!state.handedOffAt || !state.caseId) return;
    replyCheck.delayMs = replyCheckEveryMs;
    const soon = Date.now() + replyCheckEveryMs;
    replyCheck.nextAt = replyCheck.nextAt === null ? soon : Math.min(replyCheck.nextAt, soon);
  }

  /**
   * The timer's own look at the case, for when a business process never calls: new replies are
   * delivered, and a case in a closure status resolves the session. Both are recorded as evidence.
   */
  async function checkCaseOnTimer(): Promise<void> {
    const found = await deliverNewReplies('timer');
    const st = await step('read case status', () => creatio.readCaseStatus({ orgId, caseId: state.caseId! }));
    state.caseStatus = st.name;
    if (st.closes) {
      if (!st.modifiedOn || Date.now() - Date.parse(st.modifiedOn) > graceMs) {
        missed(
          state.processes.closure,
          `The case is in the closure status '${st.name}' but the case-closure business process did not call the webhook: it is missing, inactive or its status filter does not match`,
        );
      }
      await closeFromCreatio(st.name);
      return;
    }
    replyCheck.delayMs = found > 0 ? replyCheckEveryMs : Math.min(replyCheck.delayMs * 2, replyCheckMaxMs);
    replyCheck.nextAt = Date.now() + replyCheck.delayMs;
  }

  async function handle(ev: ConversationEvent): Promise<void> {
    switch (ev.kind) {
      case 'started':
        state.contact = { ...state.contact, ...ev.contact };
        state.channel = ev.channel;
        if (ev.firstMessage) {
          await onMessage({
            kind: 'message',
            messageId: ev.firstMessage.id,
            author: 'customer',
            text: ev.firstMessage.text,
            attachments: [],
            timestamp: ev.timestamp,
          });
        }
        return;
      case 'message':
        return onMessage({
          kind: 'message',
          messageId: ev.messageId,
          author: ev.author,
          text: ev.text,
          attachments: ev.attachments,
          timestamp: ev.timestamp,
          ...(ev.agentName && { agentName: ev.agentName }),
        });
      case 'handoff':
        return onHandoff(ev);
      case 'closed':
        return onClosed(ev);
      case 'creatio_activity':
        await deliverNewReplies('webhook');
        return;
      case 'creatio_status':
        return onCaseStatus();
    }
  }

  const shouldContinueAsNew = () =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= options.maxHistoryEvents;

  while (state.status === 'open') {
    const idleAt = lastEventAt + idleMs;
    const wakeAt = replyCheck.nextAt === null ? idleAt : Math.min(idleAt, replyCheck.nextAt);
    const active = await condition(
      () => queue.length > 0 || shouldContinueAsNew(),
      Math.max(1, wakeAt - Date.now()),
    );
    if (!active) {
      if (Date.now() >= idleAt) {
        note('no event for the idle timeout: conversation finished');
        state.status = 'closed';
        break;
      }
      replyCheck.nextAt = null;
      await checkCaseOnTimer();
      continue;
    }
    if (queue.length > 0) {
      await handle(queue.shift()!);
      lastEventAt = Date.now();
      if (state.status === 'open') replyCheckSoon();
      continue;
    }
    await condition(allHandlersFinished);
    const next: ConversationInput = {
      orgId,
      sessionId,
      options,
      carried: {
        state,
        queue,
        seenEvents: [...seenEvents].slice(-MAX_SEEN),
        seenMessages: [...seenMessages].slice(-MAX_SEEN),
        unlogged,
        transcript,
        replyCursor,
        deliveredReplies: [...deliveredReplies],
        lastEventAt,
        replyCheck,
      },
    };
    await continueAsNew<typeof conversationWorkflow>(next);
  }
  if (queue.length > 0) note(`${queue.length} event(s) after the close were ignored`);
  return view();
}

function noEvidence(): ProcessEvidence {
  return { calls: 0, lastCallAt: null, missed: 0, lastMissedAt: null, finding: null };
}

function called(e: ProcessEvidence): void {
  e.calls++;
  e.lastCallAt = new Date().toISOString();
}

function missed(e: ProcessEvidence, finding: string): void {
  e.missed++;
  e.lastMissedAt = new Date().toISOString();
  e.finding = finding;
}
