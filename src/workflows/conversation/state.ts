import { msToNumber } from '@temporalio/common/lib/time';
import { log } from '@temporalio/workflow';
import {
  conversationWorkflowId,
  REPLY_DEFAULTS,
  type CarriedState,
  type ConversationEvent,
  type ConversationInput,
  type ConversationState,
  type HistoryCheckState,
  type LogEntry,
  type MessageEntry,
  type ProcessEvidence,
  type SpillState,
} from '../contract';
import { Heard } from './heard';
import { jsonBytes, utf8Length } from './spill';
import { newHistoryCheck } from './history-lane';

/** Characters of transcript kept for AI fields. */
const TRANSCRIPT_CAP = 50_000;

/**
 * Dedupe keys kept across continue-as-new: enough for any redelivery window (a redelivery of an
 * older event is still caught by the webhook's delivery record and by the writes' deterministic
 * ids). 5,000 ids of ~45 characters each keep the carried input far under Temporal's 2 MB.
 */
const MAX_SEEN = 5_000;

/** Notes kept in the state (oldest dropped first). */
const MAX_NOTES = 50;

/**
 * Byte bounds of what runs with `carry-bytes` carry besides the events (spill.ts counts the whole
 * input against CARRY_BUDGET_BYTES): ids seen, messages heard, the transcript, an error message.
 */
const SEEN_BYTES = 100_000;
const HEARD_BYTES = 150_000;
const TRANSCRIPT_BYTES = 100_000;
const ERROR_MESSAGE_CHARS = 2_000;

/** The newest items whose UTF-8 bytes (as JSON) fit in `max`, oldest first. */
function newestWithin<T>(items: T[], max: number): T[] {
  let used = 0;
  let i = items.length;
  while (i > 0) {
    const n = jsonBytes(items[i - 1]) + 1;
    if (used + n > max) break;
    used += n;
    i--;
  }
  return i === 0 ? items : items.slice(i);
}

/** The start of a text, at most `max` UTF-8 bytes, never inside a surrogate pair. */
function cutToBytes(s: string, max: number): string {
  if (utf8Length(s) <= max) return s;
  let lo = 0;
  let hi = s.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (utf8Length(s.slice(0, mid)) <= max) lo = mid;
    else hi = mid - 1;
  }
  const c = s.charCodeAt(lo - 1);
  return s.slice(0, c >= 0xd800 && c <= 0xdbff ? lo - 1 : lo);
}

/** A conversation's periodic checks wait up to this share of their interval longer (checkSpread). */
export const CHECK_SPREAD = 0.25;

/**
 * How much longer than their interval a conversation's reply and history checks wait: 1 to
 * 1 + CHECK_SPREAD, fixed per conversation (from its workflow id, so replay finds the same). Each check
 * is scheduled from the last one, so conversations started or woken together (a warm-up, the end of
 * an outage) would otherwise check together for as long as they live; spread, they drift apart.
 */
export function checkSpread(workflowId: string): number {
  // FNV-1a (32 bits) of the id: deterministic and cheap, evenly spread enough for this.
  let h = 0x811c9dc5;
  for (let i = 0; i < workflowId.length; i++) {
    h ^= workflowId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return 1 + (CHECK_SPREAD * h) / 2 ** 32;
}

/** `ms` stretched by the conversation's spread (checkSpread; 1 for runs without `spreadChecks`). */
export function spreadWait(c: { spread: number }, ms: number): number {
  return Math.round(ms * c.spread);
}

/** The conversation's timings, in milliseconds, read once from the options. */
export interface Timings {
  replyCheckEvery: number;
  replyCheckMax: number;
  lookback: number;
  processCallGrace: number;
  idle: number;
  closureWaitsForReplies: number;
}

export function timingsOf(options: ConversationInput['options']): Timings {
  return {
    replyCheckEvery: msToNumber(options.replyCheckEvery ?? REPLY_DEFAULTS.replyCheckEvery),
    replyCheckMax: msToNumber(options.replyCheckMaxEvery ?? REPLY_DEFAULTS.replyCheckMaxEvery),
    lookback: msToNumber(options.replyLookback ?? REPLY_DEFAULTS.replyLookback),
    processCallGrace: msToNumber(options.processCallGrace ?? REPLY_DEFAULTS.processCallGrace),
    idle: msToNumber(options.idleTimeout),
    closureWaitsForReplies: msToNumber(
      options.closureWaitsForReplies ?? REPLY_DEFAULTS.closureWaitsForReplies,
    ),
  };
}

/**
 * Everything one conversation holds between events: the public state (what the query shows), the
 * queue of events not yet handled, the dedupe sets, the messages waiting for their case, and the
 * reply cursor. `carryOver()` is the one place that decides what survives continue-as-new.
 */
/** Messages listed in the state query's messageLog (the most recent). */
const MESSAGE_LOG_SIZE = 200;

export class ConversationRun {
  readonly state: ConversationState;
  readonly queue: ConversationEvent[];
  readonly seenEvents: Set<string>;
  readonly seenMessages: Set<string>;
  /** Entries waiting to be written, oldest first (all of them before the case exists). */
  readonly unlogged: LogEntry[];
  readonly transcript: string[];
  replyCursor: string | null;
  /** Replies delivered, by activity id, with their CreatedOn; pruned past the look-back window. */
  readonly deliveredReplies: Map<string, string>;
  lastEventAt: number;
  readonly replyCheck: { nextAt: number | null; delayMs: number };
  /** Writes look in Creatio first (a resumed run, or one that continued-as-new mid-step). */
  verifyWrites: boolean;
  /** The head of the queue is being handled (it leaves the queue once done). */
  handlingHead = false;
  /** A reply read the last run asked for and did not do (the reply lane does it first). */
  replyReadPending: CarriedState['replyReadPending'];
  /**
   * Events in order are: `queue` (in memory), then `spill.chunks` (in the store), then
   * `spill.incoming` (received while chunks wait). See spill.ts.
   */
  readonly spill: SpillState;
  /** Messages taken, by id and by content, through every door (heard.ts). */
  readonly heard: Heard;
  /** When the session's OpenCX history is read next (history-lane.ts). */
  readonly historyCheck: HistoryCheckState;
  /** This run checks the history (its flow has `historyCheck`): only then is the check's state carried. */
  historyCheckOn = false;
  /** This run measures what it carries in bytes and bounds all of it (its flow has `carryBytes`). */
  carryBytes = false;
  /** Its flow has `carryMeasuredLast` (what comes in while the surplus is stored waits behind it). */
  carryMeasuredLast = false;
  /** The surplus is being stored before continue-as-new (not carried: a run ends or goes on after). */
  storingSpill = false;
  /** Bytes of stored chunks read back since the last timer that ended a workflow task (spill.ts). */
  readSinceTimer = 0;

  constructor(input: ConversationInput, timings: Timings) {
    const { orgId, sessionId } = input;
    const carried = input.carried;
    this.state = carried?.state ?? {
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
    this.state.runs += 1;
    // A step parked in the last run is tried again here before it parks (if it does) again: until
    // then it is not parked, and resume or skip would find nothing to act on.
    if (this.state.lastError?.parked) this.state.lastError = { ...this.state.lastError, parked: false };
    this.state.processes ??= { agentReply: noEvidence(), closure: noEvidence() };
    this.queue = carried?.queue ?? [];
    this.seenEvents = new Set(carried?.seenEvents);
    this.seenMessages = new Set(carried?.seenMessages);
    this.unlogged = carried?.unlogged ?? [];
    this.transcript = carried?.transcript ?? [];
    this.replyCursor = carried?.replyCursor ?? null;
    const cursor = this.replyCursor;
    this.deliveredReplies = new Map<string, string>(
      (carried?.deliveredReplies ?? []).map((d) =>
        typeof d === 'string' ? [d, cursor ?? new Date(0).toISOString()] : d,
      ),
    );
    this.lastEventAt = carried?.lastEventAt ?? Date.now();
    this.replyCheck = carried?.replyCheck ?? { nextAt: null, delayMs: timings.replyCheckEvery };
    this.verifyWrites = carried?.verifyWrites ?? input.resumed === true;
    this.spill = carried?.spill ?? { chunks: [], incoming: [], next: 0, read: [] };
    this.replyReadPending = carried?.replyReadPending;
    this.heard = new Heard(
      carried?.heard,
      carried?.heardForgottenUpTo,
      () => this.historyCheck.idsAgree === true,
    );
    // A run carried from code without the history check knows the messages by webhook ids only:
    // like a resumed run, it judges only what comes after it.
    this.historyCheck =
      carried?.historyCheck ?? newHistoryCheck(input.resumed === true || carried !== undefined);
    if (input.resumed && !carried) this.state.resumed = true;
  }

  /** What the state query answers. */
  view(): ConversationState {
    const { nextAt } = this.replyCheck;
    return {
      ...this.state,
      nextReplyCheckAt: nextAt === null ? null : new Date(nextAt).toISOString(),
      messages: {
        ...this.state.messages,
        pending: this.unlogged.filter((e) => e.kind === 'message').length,
      },
      messageLog: this.messageLog(),
    };
  }

  /**
   * The most recent messages with where each stands: `logged` in Creatio, `pending` (not written
   * yet: in the queue, behind a parked step, or held until handoff), or `skipped` by an operator.
   */
  private messageLog(): ConversationState['messageLog'] {
    const pending = new Set(this.unlogged.flatMap((e) => (e.kind === 'message' ? [e.messageId] : [])));
    const skipped = new Set(
      (this.state.skipped ?? []).flatMap((s) => /^log message (.+)$/.exec(s.step)?.slice(1) ?? []),
    );
    const seen = [...this.seenMessages].slice(-MESSAGE_LOG_SIZE).map((id) => ({
      id,
      status: skipped.has(id)
        ? ('skipped' as const)
        : pending.has(id)
          ? ('pending' as const)
          : ('logged' as const),
    }));
    const queued = this.queue.flatMap((e) =>
      e.kind === 'message' && !this.seenMessages.has(e.messageId)
        ? [{ id: e.messageId, status: 'pending' as const }]
        : [],
    );
    return [...seen, ...queued].slice(-MESSAGE_LOG_SIZE);
  }

  /**
   * Takes an event from the signal. Redeliveries are dropped; any number of waiting "new activity"
   * calls are one check (it reads everything new). Process calls count as evidence either way.
   */
  accept(event: ConversationEvent): void {
    if (this.seenEvents.has(event.eventId)) return;
    this.lastEventAt = Date.now();
    if (event.kind === 'creatio_activity') called(this.state.processes.agentReply);
    if (event.kind === 'creatio_status') called(this.state.processes.closure);
    // A check already under way may have read Creatio before this call's activity was written.
    const waiting = [...(this.handlingHead ? this.queue.slice(1) : this.queue), ...this.spill.incoming];
    if (event.kind === 'creatio_activity' && waiting.some((e) => e.kind === 'creatio_activity')) return;
    this.seenEvents.add(event.eventId);
    // Behind spilled events, new ones wait in `incoming` so that the order stays the order received.
    if (this.behindSpill()) this.spill.incoming.push(event);
    else this.queue.push(event);
  }

  /**
   * Queues an event the conversation found itself (a message of the OpenCX history): after every
   * event received, without counting as activity for the idle timeout.
   */
  enqueue(event: ConversationEvent): void {
    if (this.seenEvents.has(event.eventId)) return;
    this.seenEvents.add(event.eventId);
    if (this.behindSpill()) this.spill.incoming.push(event);
    else this.queue.push(event);
  }

  /**
   * New events wait behind stored ones: chunks are stored, or are being stored (the events taken
   * from the queue for them are older than what comes in meanwhile).
   */
  private behindSpill(): boolean {
    return this.spill.chunks.length > 0 || (this.carryMeasuredLast && this.storingSpill);
  }

  /** Events are waiting, in memory or in the store. */
  hasWork(): boolean {
    return this.queue.length > 0 || this.spill.chunks.length > 0 || this.spill.incoming.length > 0;
  }

  /** True the first time a message id is seen. */
  firstSight(messageId: string): boolean {
    if (this.seenMessages.has(messageId)) return false;
    this.seenMessages.add(messageId);
    return true;
  }

  /** Adds a message to the transcript that AI fields read (bounded, most recent kept). */
  addToTranscript(m: MessageEntry): void {
    const who = m.author === 'customer' ? 'Customer' : m.author === 'ai' ? 'AI agent' : 'Agent';
    this.transcript.push(`${who}: ${m.text}`);
    while (this.transcript.length > 1 && this.transcript.join('\n').length > TRANSCRIPT_CAP) {
      this.transcript.shift();
    }
  }

  /** Something skipped on purpose or worth an operator's eye, with the reason. */
  note(message: string): void {
    this.state.notes.push({ at: new Date().toISOString(), message });
    if (this.state.notes.length > MAX_NOTES) this.state.notes.shift();
    log.info(message, { orgId: this.state.orgId, sessionId: this.state.sessionId });
  }

  /** What the next run starts from. */
  carryOver(): CarriedState {
    const carried = this.carryAll();
    return this.carryBytes ? bounded(carried) : carried;
  }

  private carryAll(): CarriedState {
    return {
      state: this.state,
      queue: this.queue,
      seenEvents: [...this.seenEvents].slice(-MAX_SEEN),
      seenMessages: [...this.seenMessages].slice(-MAX_SEEN),
      unlogged: this.unlogged,
      transcript: this.transcript,
      replyCursor: this.replyCursor,
      deliveredReplies: [...this.deliveredReplies],
      lastEventAt: this.lastEventAt,
      replyCheck: this.replyCheck,
      ...(this.replyReadPending && { replyReadPending: this.replyReadPending }),
      ...(this.verifyWrites && { verifyWrites: true }),
      ...((this.spill.chunks.length > 0 || this.spill.incoming.length > 0 || this.spill.read.length > 0) && {
        spill: this.spill,
      }),
      ...(this.heard.entries.length > 0 && { heard: this.heard.entries }),
      ...(this.heard.forgottenUpTo && { heardForgottenUpTo: this.heard.forgottenUpTo }),
      ...(this.historyCheckOn && { historyCheck: this.historyCheck }),
    };
  }
}

/**
 * What a run with `carry-bytes` carries: everything but the events and the messages not yet written
 * is cut to its byte bound, the most recent kept (the dedupe ids and messages heard forget their
 * oldest, as they do at their count bounds).
 */
function bounded(c: CarriedState): CarriedState {
  const { state } = c;
  const lastError =
    state.lastError && state.lastError.message.length > ERROR_MESSAGE_CHARS
      ? { ...state.lastError, message: state.lastError.message.slice(0, ERROR_MESSAGE_CHARS) }
      : state.lastError;
  const transcript = newestWithin(c.transcript, TRANSCRIPT_BYTES);
  const newest = c.transcript[c.transcript.length - 1];
  if (transcript.length === 0 && newest !== undefined) transcript.push(cutToBytes(newest, TRANSCRIPT_BYTES));
  let heard = c.heard;
  let heardForgottenUpTo = c.heardForgottenUpTo;
  if (c.heard) {
    heard = newestWithin(c.heard, HEARD_BYTES);
    for (const e of c.heard.slice(0, c.heard.length - heard.length)) {
      if (!heardForgottenUpTo || e.at > heardForgottenUpTo) heardForgottenUpTo = e.at;
    }
  }
  return {
    ...c,
    state: lastError === state.lastError ? state : { ...state, lastError },
    seenEvents: newestWithin(c.seenEvents, SEEN_BYTES),
    seenMessages: newestWithin(c.seenMessages, SEEN_BYTES),
    transcript,
    ...(heard && { heard }),
    ...(heardForgottenUpTo && { heardForgottenUpTo }),
  };
}

export function noEvidence(): ProcessEvidence {
  return { calls: 0, lastCallAt: null, missed: 0, lastMissedAt: null, finding: null };
}

export function called(e: ProcessEvidence): void {
  e.calls++;
  e.lastCallAt = new Date().toISOString();
}

export function missed(e: ProcessEvidence, finding: string): void {
  e.missed++;
  e.lastMissedAt = new Date().toISOString();
  e.finding = finding;
}
