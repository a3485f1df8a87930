/**
 * The contract of the conversation workflow, shared by the workflow, the activities and the API:
 * the events it takes, its signals and queries, its options and state, and its id.
 */
import type { Duration } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { HeardEntry } from './conversation/heard';

/** Who wrote a message in the OpenCX conversation. */
export type Author = 'customer' | 'ai' | 'agent';

export interface Attachment {
  name: string;
  url: string;
  mimeType?: string;
}

export interface Contact {
  id?: string;
  name?: string;
  email?: string;
  phone?: string;
}

/** One OpenCX webhook delivery, as the workflow sees it. `eventId` is the `webhook-id`. */
export type ConversationEvent =
  | {
      kind: 'started';
      eventId: string;
      timestamp: string;
      contact: Contact;
      channel: string;
      firstMessage?: { id: string; text: string };
      /**
       * The organization's mode when the API took the event (its settings, cached up to 30 s):
       * spares a new conversation the store read. Absent from earlier releases' events and the
       * history check's; the workflow then reads it from the store.
       */
      caseOnlyOnHandoff?: boolean;
    }
  | {
      kind: 'message';
      eventId: string;
      timestamp: string;
      messageId: string;
      author: Author;
      text: string;
      attachments: Attachment[];
      agentName?: string;
      /** Found in the session's history by the bridge (no webhook told it). */
      fromHistory?: true;
      /** As on `started`. */
      caseOnlyOnHandoff?: boolean;
    }
  | {
      kind: 'handoff';
      eventId: string;
      timestamp: string;
      reason: string;
      summary: string;
      language: string;
      sentiment: string;
      /** As on `started`. */
      caseOnlyOnHandoff?: boolean;
    }
  | {
      kind: 'closed';
      eventId: string;
      timestamp: string;
      resolution: 'resolved' | 'not_resolved';
      summary: string;
      language: string;
      sentiment: string;
    }
  /**
   * OpenCX told of a message the bridge could not read (a signed event that did not validate):
   * the session's history is read soon for what is missing.
   */
  | { kind: 'history_check'; eventId: string; timestamp: string }
  /** Creatio's agent-reply process: the case has a new activity (maybe an agent's reply). */
  | { kind: 'creatio_activity'; eventId: string; timestamp: string }
  /** Creatio's closure process: the case status changed. */
  | { kind: 'creatio_status'; eventId: string; timestamp: string; eventType: string };

/** One activity the bridge writes on the case (a message, the session link, the handoff note, a note). */
export type LogEntry =
  | { kind: 'session_link'; contact: Contact; channel: string; timestamp: string }
  | {
      kind: 'message';
      messageId: string;
      author: Author;
      text: string;
      attachments: Attachment[];
      agentName?: string;
      timestamp: string;
    }
  | {
      kind: 'handoff_note';
      reason: string;
      summary: string;
      language: string;
      sentiment: string;
      timestamp: string;
    }
  | { kind: 'note'; key: string; title: string; text: string; timestamp: string };

export type MessageEntry = Extract<LogEntry, { kind: 'message' }>;

/** Every event reaches the workflow through this one signal, so their order is the order received. */
export const conversationEventSignal = defineSignal<[ConversationEvent]>('conversationEvent');

/** Retry a step that failed with an error retrying could not fix (after the cause was fixed). */
export const resumeSignal = defineSignal('resume');

/** Retry the parked step now; rejected (validator) when no step is parked. Answers the step's name. */
export const resumeStepUpdate = defineUpdate<{ step: string }>('resumeStep');

/**
 * Give up the parked step: recorded in the state and as a note on the case, and the conversation
 * goes on. Rejected when no step is parked, or when the step cannot be given up (the case itself).
 */
export const skipStepUpdate = defineUpdate<{ step: string }, [{ reason: string }]>('skipStep');

/** Failure types of the resume and skip validators (the API maps them to 409 codes). */
export const NOTHING_PARKED = 'NothingParked';
export const STEP_NOT_SKIPPABLE = 'StepNotSkippable';

export interface SkippedStep {
  step: string;
  reason: string;
  at: string;
}

export interface StepError {
  step: string;
  type: string;
  message: string;
  at: string;
  /** True while the workflow waits for a fix (resume signal or the next periodic try). */
  parked: boolean;
  /** Whether an operator may give this step up (POST …/skip). */
  skippable?: boolean;
}

export interface AiFieldsState {
  status: 'done' | 'failed';
  reason?: string;
  /** What the bridge wrote on the case, by column (a later handoff keeps what agents changed). */
  written?: Record<string, string | number | boolean | null>;
  fields: {
    column: string;
    title: string;
    outcome: string;
    value?: string | number | boolean;
    reason?: string;
  }[];
}

/**
 * What the bridge knows of one of the customer's Creatio business processes for this case: the
 * calls it made, and what the bridge found on its own timer that the process never told it about.
 */
export interface ProcessEvidence {
  calls: number;
  lastCallAt: string | null;
  /** Replies delivered (or a closure acted on) only because the timer found them. */
  missed: number;
  lastMissedAt: string | null;
  /** Set once something was missed: the likely cause, for operators and the diagnose endpoint. */
  finding: string | null;
}

export interface ConversationState {
  orgId: string;
  sessionId: string;
  workflowId: string;
  mode: 'every_conversation' | 'handoff_only';
  status: 'open' | 'closed';
  caseId: string | null;
  caseNumber: string | null;
  contact: Contact;
  channel: string | null;
  messages: { received: number; logged: number; pending: number; skipped?: number };
  handedOffAt: string | null;
  /** Status name last read from Creatio after a closure call. */
  caseStatus: string | null;
  resolution: 'resolved' | 'not_resolved' | null;
  agentRepliesDelivered: number;
  /** The Creatio processes that call the bridge back, as seen from this conversation. */
  processes: { agentReply: ProcessEvidence; closure: ProcessEvidence };
  /** When the timer next looks for replies and closure on its own (after handoff, while open). */
  nextReplyCheckAt: string | null;
  /** What happened to each AI field at handoff, so "AI fields blank" is always explained. */
  aiFields: AiFieldsState | null;
  lastError: StepError | null;
  /** Steps an operator gave up, with the reason (most recent 50). */
  skipped?: SkippedStep[];
  /** When OpenCX or Creatio closed the conversation (a later customer message is a late event). */
  closedAt?: string | null;
  /**
   * The close's own time, as the side that closed tells it (OpenCX's event timestamp, the case's
   * ModifiedOn): a customer message written before it does not reopen the case.
   */
  closeAt?: string | null;
  /** This run picked up a conversation whose earlier run had finished (late events). */
  resumed?: boolean;
  /** A resumed run looked for the conversation's earlier case. */
  priorCaseChecked?: boolean;
  /** Things skipped on purpose, with the reason (e.g. no Resolved Status ID configured). */
  notes: { at: string; message: string }[];
  runs: number;
  /** The last read of the session's OpenCX history, and what it found (missing messages logged). */
  history?: {
    lastCheckAt: string | null;
    found: number;
    /** Why the last read failed (named: session unknown to OpenCX, key refused, ...); null when it worked. */
    finding: string | null;
  };
  /** The most recent messages (up to 200), oldest first, with where each stands. */
  messageLog?: { id: string; status: 'logged' | 'pending' | 'skipped' }[];
  /**
   * Events not handled when the run finished, and why (the idle timeout came while a step was
   * parked): they are kept in the bridge's store and handled first by the conversation's next run,
   * which its next event starts.
   */
  waiting?: { events: number; reason: string };
}

export const stateQuery = defineQuery<ConversationState>('state');

export interface ConversationOptions {
  /** Base task queue (workflows); activities run on creatioTaskQueue() and opencxTaskQueue() of it. */
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
  /**
   * How long a closure from Creatio waits for agent replies still being read before it resolves the
   * session anyway (a reply read that keeps failing never holds the closure back for longer).
   */
  closureWaitsForReplies?: Duration;
  /**
   * While the conversation is open, its OpenCX history is read this long after its last event, for
   * messages no webhook told (then less often while nothing is missing, up to the max).
   */
  historyCheckAfter?: Duration;
  historyCheckMaxEvery?: Duration;
}

export const REPLY_DEFAULTS = {
  replyCheckEvery: '2 minutes',
  replyCheckMaxEvery: '30 minutes',
  replyLookback: '10 minutes',
  processCallGrace: '15 seconds',
  opencxAttemptTimeout: '45 seconds',
  closureWaitsForReplies: '30 seconds',
  historyCheckAfter: '2 minutes',
  historyCheckMaxEvery: '6 hours',
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
  /** Workflow time of the last event received (for the idle timeout), and the reply timer. */
  lastEventAt?: number;
  /**
   * The previous run continued-as-new in the middle of a step (a long outage): the next run
   * looks in Creatio before each write until the interrupted event is handled again.
   */
  verifyWrites?: boolean;
  replyCheck?: { nextAt: number | null; delayMs: number };
  /** A read of agent replies asked for and not done when the run ended (the reply lane's). */
  replyReadPending?: 'webhook' | 'closure' | 'timer';
  /**
   * Events kept in the store because the run could not carry them (oldest chunk first), events
   * received since (they come after the spilled ones), the next chunk number, and chunks already
   * read back (deleted once their read is in the history).
   */
  spill?: SpillState;
  /** Messages taken, by id and content (heard.ts), and the history check's schedule. */
  heard?: HeardEntry[];
  /** The newest time of an entry dropped from `heard` (older history is not judged). */
  heardForgottenUpTo?: string;
  historyCheck?: HistoryCheckState;
}

/** Where the check of the session's OpenCX history stands (history-lane.ts). */
export interface HistoryCheckState {
  /** Workflow time of the next check; null when none is due (closed, or not yet scheduled). */
  nextAt: number | null;
  delayMs: number;
  /** History items before this time are not judged (a resumed run knows nothing older). */
  since: string | null;
  /** Workflow time of the first event not yet followed by a check (a busy conversation is still checked). */
  pendingSince?: number;
  /** OpenCX gives a webhook's message the history item's id (seen once): ids alone then decide. */
  idsAgree?: boolean;
  /** OpenCX's close asked for a last check that a continue-as-new cut off: the next run does it. */
  closeCheckPending?: boolean;
}

export interface SpillState {
  chunks: number[];
  incoming: ConversationEvent[];
  next: number;
  read: number[];
  /** Events in each stored chunk, by chunk number (chunks stored by runs that count in bytes). */
  counts?: Record<number, number>;
}

/**
 * What a conversation kept in the store when it finished with events not handled (the idle
 * timeout came while a step was parked): its chunks, in order, for its next (resumed) run.
 */
export interface HeldEvents {
  chunks: number[];
  /** The next free chunk number (the resumed run stores its own chunks after these). */
  next: number;
  events: number;
  /** The step that was parked. */
  step: string;
  at: string;
  /** The run that took the list (it reads its chunks); no later run takes it again. */
  takenBy?: string;
}

export interface ConversationInput {
  orgId: string;
  sessionId: string;
  options: ConversationOptions;
  carried?: CarriedState;
  /** The conversation's earlier run had finished (closed or idle): this run picks up its case. */
  resumed?: boolean;
}

export function conversationWorkflowId(orgId: string, sessionId: string): string {
  return `conversation:${orgId}:${sessionId}`;
}

/** The organization of a conversation's workflow id (organization ids hold no ":"). */
export function orgOfWorkflowId(workflowId: string | undefined): string | undefined {
  return workflowId ? /^conversation:([^:]+):/.exec(workflowId)?.[1] : undefined;
}
