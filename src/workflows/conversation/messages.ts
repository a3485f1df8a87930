/**
 * OpenCX → Creatio: messages become activities on the case, in order and exactly once. The case is
 * created at the first customer message (or at handoff in handoff-only mode, see handoff.ts).
 */
import { upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import { SEARCH_ATTRIBUTE_KEYS } from '../../temporal/search-attributes';
import type { ConversationEvent, LogEntry, MessageEntry } from '../contract';
import type { Conversation } from './context';
import { isActivityFailure } from './steps';
import { messageFingerprint, type Door } from './heard';
import { jsonBytes } from './spill';

/** Most messages written by one activity when a burst is waiting. */
const BATCH = 25;
/** Most written by one first try (a local activity, which holds the workflow task meanwhile). */
const FIRST_TRY_BATCH = 5;

/**
 * Handoff-only mode keeps messages in the workflow until handoff. Past this many characters the
 * case is created early, so that what continue-as-new carries stays far under Temporal's 2 MB
 * (docs/decisions/0013-nothing-accepted-is-lost.md).
 */
export const HANDOFF_BUFFER_MAX_CHARS = 400_000;
/**
 * The same bound, and the most taken ahead of the queue for one batch, in UTF-8 bytes (runs with
 * `carry-bytes`): the messages not yet written are carried whole, and sent as one activity's input.
 */
export const HANDOFF_BUFFER_MAX_BYTES = 256_000;
export const TAKE_AHEAD_MAX_BYTES = 256_000;

const IN_PROGRESS_DESCRIPTION =
  'Conversation in progress in OpenCX. The AI summary is written here when the conversation is handed off.';

const labelOf = (e: LogEntry) => (e.kind === 'message' ? `message ${e.messageId}` : e.kind);

/**
 * The first try of a short Creatio write, as a local activity (no task round trip, one history
 * event). Undefined when it did not succeed: the caller then takes the durable activity, which
 * looks before it writes. Every write has a deterministic id, so even a first try that ran twice
 * (its worker died before the result was recorded) writes once.
 */
async function firstTry<T>(
  c: Conversation,
  write: (p: Conversation['peers']['creatioFirstTry']) => Promise<T>,
): Promise<T | undefined> {
  if (c.run.verifyWrites) return undefined;
  try {
    return await write(c.peers.creatioFirstTry);
  } catch (err) {
    if (!isActivityFailure(err)) throw err;
    c.run.verifyWrites = true;
    return undefined;
  }
}

/** Writes one entry; an operator may give it up (it is then only in the state and the skip note). */
export async function logEntry(c: Conversation, entry: LogEntry): Promise<void> {
  const at = { orgId: c.orgId, sessionId: c.sessionId, caseId: c.run.state.caseId! };
  if ((await firstTry(c, (p) => p.logEntry({ ...at, entry, verify: false }))) !== undefined) return;
  await c.steps.run(
    `log ${labelOf(entry)}`,
    (again) =>
      c.peers.creatio.logEntry({
        orgId: c.orgId,
        sessionId: c.sessionId,
        caseId: c.run.state.caseId!,
        entry,
        verify: again || c.run.verifyWrites,
      }),
    { onSkip: () => '' },
  );
}

/**
 * Creates the case (at most once, ever), then its first activity: the link to the session.
 * `withQueued`: the first try also writes the first queued messages, in the same local activity
 * (a new conversation's first message costs one Creatio first try, not three).
 */
export async function createCase(
  c: Conversation,
  description: string,
  registeredOn: string,
  withQueued = false,
): Promise<void> {
  const { state, unlogged } = c.run;
  const input = {
    orgId: c.orgId,
    sessionId: c.sessionId,
    contact: state.contact,
    channel: state.channel ?? 'web',
    description,
    registeredOn,
  };
  const link: LogEntry = {
    kind: 'session_link',
    contact: state.contact,
    channel: state.channel ?? 'web',
    timestamp: registeredOn,
  };
  const opened = (created: { caseId: string; caseNumber: string | null }) => {
    state.caseId = created.caseId;
    state.caseNumber = created.caseNumber;
    upsertSearchAttributes([{ key: SEARCH_ATTRIBUTE_KEYS.CreatioCaseId, value: created.caseId }]);
    upsertMemo({ caseId: created.caseId, caseNumber: created.caseNumber });
  };
  if (withQueued && c.flow.oneTryCaseOpening) {
    const queued = unlogged.slice(0, FIRST_TRY_BATCH - 1);
    const created = await firstTry(c, (p) => p.openCase({ ...input, entries: [link, ...queued] }));
    if (created !== undefined) {
      opened(created);
      unlogged.splice(0, queued.length);
      state.messages.logged += queued.filter((e) => e.kind === 'message').length;
      return;
    }
  }
  opened(
    (await firstTry(c, (p) => p.ensureCase(input))) ??
      (await c.steps.run('create case', () => c.peers.creatio.ensureCase(input))),
  );
  await logEntry(c, link);
}

/**
 * Logs every buffered entry, oldest first, up to BATCH per activity (one activity per message
 * when they come one by one, fewer under a burst). Entries leave the buffer once written. A batch
 * that fails for good is written again one entry at a time, so that one bad message parks alone
 * (and can be given up) instead of holding the whole batch.
 */
export async function drain(c: Conversation): Promise<void> {
  const { run } = c;
  const { state, unlogged } = run;
  while (state.caseId && unlogged.length > 0) {
    const batch = unlogged.slice(0, BATCH);
    const at = { orgId: c.orgId, sessionId: c.sessionId, caseId: state.caseId };
    // A first try writes a few entries only: it holds the workflow task (and the state query)
    // while it runs.
    const tried = batch.slice(0, FIRST_TRY_BATCH);
    // firstTry() written out: this is every message's path, and an async call less is a promise
    // (and its stack trace) less for the workflow thread.
    if (!run.verifyWrites) {
      try {
        await c.peers.creatioFirstTry.logEntries({ ...at, entries: tried, verify: false });
        unlogged.splice(0, tried.length);
        state.messages.logged += tried.filter((e) => e.kind === 'message').length;
        continue;
      } catch (err) {
        if (!isActivityFailure(err)) throw err;
        run.verifyWrites = true;
      }
    }
    let written = false;
    if (!written && batch.length > 1) {
      try {
        await c.steps.run(
          `log ${batch.length} messages from ${labelOf(batch[0]!)}`,
          () => c.peers.creatio.logEntries({ ...at, entries: batch, verify: run.verifyWrites }),
          { park: false },
        );
        written = true;
      } catch (err) {
        if (!isActivityFailure(err)) throw err;
        // Entries already written are found by the look-before-write below.
        run.verifyWrites = true;
      }
    }
    if (written) {
      unlogged.splice(0, batch.length);
      state.messages.logged += batch.filter((e) => e.kind === 'message').length;
      continue;
    }
    const entry = batch[0]!;
    const skipped = await c.steps.run(
      `log ${labelOf(entry)}`,
      (again) =>
        c.peers.creatio.logEntry({ ...at, entry, verify: again || run.verifyWrites }).then(() => false),
      { onSkip: () => true },
    );
    unlogged.shift();
    if (entry.kind !== 'message') continue;
    if (skipped) state.messages.skipped = (state.messages.skipped ?? 0) + 1;
    else state.messages.logged++;
  }
}

/**
 * The organization's mode (it matters only before the case exists); true for handoff-only. As the
 * event brought it when it did (the API's reading), else read from the store. Which one is taken
 * depends on the event in the history only, so a replay takes the same path.
 */
export async function readMode(c: Conversation, fromEvent?: boolean): Promise<boolean> {
  const handoffOnly =
    fromEvent ??
    (await c.steps.run('read settings', () => c.peers.store.getConversationSettings(c.orgId)))
      .createCaseOnlyOnHandoff;
  c.run.state.mode = handoffOnly ? 'handoff_only' : 'every_conversation';
  return handoffOnly;
}

const bufferedChars = (c: Conversation) =>
  c.run.unlogged.reduce((n, e) => n + (e.kind === 'message' ? e.text.length + 200 : 200), 0);

const unloggedBytes = (c: Conversation) => c.run.unlogged.reduce((n, e) => n + jsonBytes(e), 0);

/**
 * Takes a message into the buffer; false for a redelivery of one already taken, or (with the
 * history check) for one another door already brought (heard.ts: the `first_message` again as a
 * `contact_response`, a message the history check logged before its webhook came, the bridge's own
 * reply told back as an `agent_response`).
 */
function take(c: Conversation, m: MessageEntry, door: Door = 'w'): boolean {
  const { run } = c;
  if (!run.firstSight(m.messageId)) return false;
  // Claimed here, in order with the webhooks (history-lane.ts only looks).
  if (c.flow.historyCheck) {
    const fp = messageFingerprint(m.author, m.text);
    if (run.heard.take(door, { id: m.messageId, fp, at: m.timestamp })) return false;
  }
  run.state.messages.received++;
  run.unlogged.push(m);
  run.addToTranscript(m);
  return true;
}

/**
 * Logs a message (with any queued right behind it); answers whether it was new. `caseOnlyOnHandoff`:
 * the mode its event brought (readMode).
 */
export async function onMessage(
  c: Conversation,
  m: MessageEntry,
  door: Door = 'w',
  caseOnlyOnHandoff?: boolean,
): Promise<boolean> {
  const { run } = c;
  const fresh = take(c, m, door);
  // Messages queued right behind this one are written with it, in order, in one activity (a burst,
  // or the backlog after an outage, costs a few activities rather than one per message).
  // At most one batch is taken ahead: the rest stays in the queue (what continue-as-new carries
  // is bounded by the queue's spill, not by a buffer that grows through an outage).
  if (run.handlingHead && !run.state.closedAt) {
    const room = () => !c.flow.carryBytes || unloggedBytes(c) < TAKE_AHEAD_MAX_BYTES;
    while (run.queue[1]?.kind === 'message' && run.unlogged.length < BATCH && room()) {
      const next = run.queue.splice(1, 1)[0] as Extract<ConversationEvent, { kind: 'message' }>;
      take(c, toEntry(next), next.fromHistory ? 'h' : 'w');
    }
  }
  if (!fresh && run.unlogged.length === 0) return false; // a redelivery of a message already written
  if (!run.state.caseId) {
    if (await readMode(c, caseOnlyOnHandoff)) {
      const under = c.flow.carryBytes
        ? unloggedBytes(c) < HANDOFF_BUFFER_MAX_BYTES
        : bufferedChars(c) < HANDOFF_BUFFER_MAX_CHARS;
      if (under) return fresh;
      run.note(
        'handoff-only: the transcript waiting for handoff outgrew what the workflow carries; the case was created before handoff',
      );
    }
    const firstCustomer = run.unlogged.find((e) => e.kind === 'message' && e.author === 'customer');
    if (!firstCustomer && run.state.mode === 'every_conversation') return fresh;
    await createCase(c, IN_PROGRESS_DESCRIPTION, (firstCustomer ?? run.unlogged[0]!).timestamp, true);
  }
  await drain(c);
  return fresh;
}

export async function onStarted(
  c: Conversation,
  ev: Extract<ConversationEvent, { kind: 'started' }>,
): Promise<void> {
  const { state } = c.run;
  state.contact = { ...state.contact, ...ev.contact };
  state.channel = ev.channel;
  // The first message can arrive before `started`: the case then gets its contact now.
  if (state.caseId && (ev.contact.email || ev.contact.phone)) {
    const contact = state.contact;
    await c.steps.run(
      'attach contact',
      () => c.peers.creatio.attachContact({ orgId: c.orgId, caseId: state.caseId!, contact }),
      { onSkip: () => undefined },
    );
  }
  if (ev.firstMessage) {
    await onMessage(
      c,
      {
        kind: 'message',
        messageId: ev.firstMessage.id,
        author: 'customer',
        text: ev.firstMessage.text,
        attachments: [],
        timestamp: ev.timestamp,
      },
      'f',
      ev.caseOnlyOnHandoff,
    );
  }
}

/** A resumed run that has not yet looked for the case the conversation already has. */
export function needsPriorCase(c: Conversation): boolean {
  const { state } = c.run;
  return state.resumed === true && !state.caseId && !state.priorCaseChecked;
}

/**
 * A resumed run (an event after the conversation's workflow had finished): the case the
 * conversation already has is found and used, and made again if it was deleted in Creatio.
 */
export async function adoptPriorCase(c: Conversation): Promise<void> {
  const { state } = c.run;
  if (!needsPriorCase(c)) return;
  state.priorCaseChecked = true;
  const prior = await c.steps.run('find the case', () =>
    c.peers.store.findCase({ orgId: c.orgId, sessionId: c.sessionId }),
  );
  if (!prior) return;
  await createCase(c, IN_PROGRESS_DESCRIPTION, new Date().toISOString());
  const status = await c.steps.run(
    'read case status',
    () => c.peers.creatio.readCaseStatus({ orgId: c.orgId, caseId: state.caseId! }),
    { onSkip: () => null },
  );
  state.caseStatus = status?.name ?? null;
  if (status && (status.closes || status.isFinal)) {
    state.closedAt = new Date().toISOString();
    // When the case was closed, as far as Creatio tells (a message written before it is late, not new).
    if (c.flow.historyCheck) state.closeAt = status.modifiedOn ?? state.closedAt;
  }
  c.run.note(
    `an event after the conversation had finished: it goes on case ${state.caseNumber ?? state.caseId}`,
  );
}

export function toEntry(ev: Extract<ConversationEvent, { kind: 'message' }>): MessageEntry {
  return {
    kind: 'message',
    messageId: ev.messageId,
    author: ev.author,
    text: ev.text,
    attachments: ev.attachments,
    timestamp: ev.timestamp,
    ...(ev.agentName && { agentName: ev.agentName }),
  };
}
