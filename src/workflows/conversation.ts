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
import type { Activities, LogEntry } from '../activities';
import { SEARCH_ATTRIBUTE_KEYS } from '../temporal/search-attributes';
import {
  conversationEventSignal,
  conversationWorkflowId,
  resumeSignal,
  stateQuery,
  type ConversationEvent,
  type ConversationState,
} from './messages';
import { aiFieldsActivityOptions, creatioActivityOptions, localActivityOptions } from './retry-policies';
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
}

/** Everything a run hands to the next one on continue-as-new. */
export interface CarriedState {
  state: ConversationState;
  queue: ConversationEvent[];
  seenEvents: string[];
  seenMessages: string[];
  unlogged: LogEntry[];
  /** The conversation as text, for AI fields (bounded, most recent kept). */
  transcript: string[];
  /** CreatedOn of the newest agent reply delivered, and the ids delivered (replies go out once). */
  replyCursor: string | null;
  deliveredReplies: string[];
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
    aiFields: null,
    lastError: null,
    notes: [],
    runs: 0,
  };
  state.runs += 1;
  const queue: ConversationEvent[] = carried?.queue ?? [];
  const seenEvents = new Set(carried?.seenEvents);
  const seenMessages = new Set(carried?.seenMessages);
  const unlogged: LogEntry[] = carried?.unlogged ?? [];
  const transcript: string[] = carried?.transcript ?? [];
  let replyCursor = carried?.replyCursor ?? null;
  const deliveredReplies = new Set(carried?.deliveredReplies);
  let resumeRequested = false;

  const view = (): ConversationState => ({
    ...state,
    messages: { ...state.messages, pending: unlogged.filter((e) => e.kind === 'message').length },
  });

  setHandler(stateQuery, view);
  setHandler(conversationEventSignal, (event) => {
    if (seenEvents.has(event.eventId)) return;
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
    creatioActivityOptions(
      opencxTaskQueue(options.taskQueue, orgId),
      options.creatioRetryFor,
      options.creatioRetryMaxInterval,
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

  /** Delivers every agent reply written in Creatio since the last one, oldest first, each once. */
  async function deliverNewReplies(): Promise<void> {
    if (!state.caseId) return;
    const replies = await step('fetch agent replies', () =>
      creatio.fetchAgentReplies({ orgId, caseId: state.caseId!, since: replyCursor }),
    );
    for (const reply of replies) {
      if (deliveredReplies.has(reply.id)) continue;
      await step(`deliver agent reply ${reply.id}`, () => opencx.deliverReply({ orgId, sessionId, reply }));
      deliveredReplies.add(reply.id);
      state.agentRepliesDelivered++;
      if (!replyCursor || reply.createdOn > replyCursor) replyCursor = reply.createdOn;
    }
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
    await drain();
    await deliverNewReplies();
    await step('resolve OpenCX session', () => opencx.resolveSession({ orgId, sessionId }));
    note(`case status '${st.name}': the OpenCX session was resolved`);
    state.resolution = 'resolved';
    state.status = 'closed';
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
        return deliverNewReplies();
      case 'creatio_status':
        return onCaseStatus();
    }
  }

  const shouldContinueAsNew = () =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= options.maxHistoryEvents;

  while (state.status === 'open') {
    const active = await condition(() => queue.length > 0 || shouldContinueAsNew(), options.idleTimeout);
    if (!active) {
      note('no event for the idle timeout: conversation finished');
      state.status = 'closed';
      break;
    }
    if (queue.length > 0) {
      await handle(queue.shift()!);
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
        deliveredReplies: [...deliveredReplies].slice(-MAX_SEEN),
      },
    };
    await continueAsNew<typeof conversationWorkflow>(next);
  }
  if (queue.length > 0) note(`${queue.length} event(s) after the close were ignored`);
  return view();
}
