/**
 * What continue-as-new carries stays under Temporal's 2 MB input limit whatever waits: events over
 * the carry budget (a busy conversation through a long outage, very long messages) are kept in the
 * bridge's store, sealed, in chunks, and read back one chunk at a time as the queue empties. Order
 * is kept: `queue`, then the stored chunks, then `incoming` (received while chunks wait).
 *
 * Runs with the `carry-bytes` patch (docs/decisions/0023-carry-in-bytes.md) measure in UTF-8
 * bytes, as Temporal does, and count everything the run carries, not only the queue; a failed
 * clean-up of chunks already read is retried and never fatal; and events still waiting when the
 * idle timeout ends the run are kept for the conversation's next run. Runs recorded without it
 * keep the character budget and the commands they had.
 */
import { log, proxyLocalActivities, sleep, workflowInfo } from '@temporalio/workflow';
import type { StoreActivities } from '../../activities';
import type { ConversationEvent, HeldEvents, LogEntry } from '../contract';
import { storeActivityOptions } from '../retry-policies';
import type { Conversation } from './context';
import { IdleWhileParked, isActivityFailure } from './steps';

/** Most characters of events a run carries in its continue-as-new input (runs without `carry-bytes`). */
export const CARRY_BUDGET_CHARS = 512_000;
/** Most characters of one stored chunk (runs without `carry-bytes`). */
const CHUNK_CHARS = 256_000;

/**
 * Most UTF-8 bytes of the whole continue-as-new input (Temporal refuses one over 2 MB): the
 * carried state and the events kept in memory together.
 */
export const CARRY_BUDGET_BYTES = 1_000_000;
/**
 * Most UTF-8 bytes of one stored chunk: read back, it is a local activity's result, recorded in the
 * history. One event larger than this (a message is at most ~100,000 characters) has a chunk alone.
 */
export const CHUNK_BYTES = 512_000;
/**
 * Most UTF-8 bytes of chunks read back between two timers: local activity results reach the
 * server in the task's completion, which gRPC limits to 4 MB (a run reading chunk after chunk
 * without waiting for anything else would otherwise send them all at once).
 */
const TASK_READ_BYTES = 1_000_000;
/** Chunk numbers already read whose deletion failed, carried to be tried again (oldest forgotten). */
const MAX_LEFT_TO_DROP = 1_000;
/** Where the list of a finished conversation's waiting events is stored (src/activities/store.ts). */
const HELD_CHUNK = -1;

/**
 * Bytes of a string in UTF-8, as Temporal's JSON payloads are encoded: 1 to 3 bytes per UTF-16
 * code unit, 4 per surrogate pair (a lone surrogate is written as U+FFFD, 3 bytes). Pure and
 * deterministic (the workflow sandbox has TextEncoder, but counting needs no buffer).
 */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Bytes of a value in a JSON payload. */
export function jsonBytes(v: unknown): number {
  return utf8Length(JSON.stringify(v) ?? '');
}

const charsOf = (e: ConversationEvent) => JSON.stringify(e).length;

/** Sizes computed once per event (a long message is measured once, not at every comparison). */
function sizer(bytes: boolean): (e: ConversationEvent) => number {
  const known = new Map<ConversationEvent, number>();
  return (e) => {
    let n = known.get(e);
    if (n === undefined) {
      n = bytes ? jsonBytes(e) + 1 : charsOf(e);
      known.set(e, n);
    }
    return n;
  };
}

/** The clean-up of chunks already read: a minute of tries, then left for later (never parked). */
const cleanup = proxyLocalActivities<Pick<StoreActivities, 'dropSpill'>>({
  ...storeActivityOptions,
  scheduleToCloseTimeout: '1 minute',
});

/**
 * Deletes the chunks already read back. A failure (after a minute of tries) is not fatal: the
 * numbers stay in `spill.read`, carried to the next run, which tries again; they are never read
 * as events again (only `spill.chunks` are read).
 */
export async function dropRead(c: Conversation): Promise<void> {
  const { spill } = c.run;
  if (spill.read.length === 0) return;
  const chunks = [...spill.read];
  try {
    await cleanup.dropSpill({ workflowId: workflowInfo().workflowId, chunks });
    spill.read = spill.read.filter((n) => !chunks.includes(n));
  } catch (err) {
    if (!isActivityFailure(err)) throw err;
    if (spill.read.length > MAX_LEFT_TO_DROP) spill.read = spill.read.slice(-MAX_LEFT_TO_DROP);
    log.warn('events read back could not be deleted from the store; tried again later', {
      orgId: c.orgId,
      sessionId: c.sessionId,
      chunks: spill.read.length,
    });
  }
}

/** Before continue-as-new: moves what is over the budget to the store. */
export async function spillForCarry(c: Conversation): Promise<void> {
  if (!c.flow.carryBytes) return spillForCarryInChars(c);
  const { run } = c;
  const { queue, spill } = run;
  const { workflowId } = workflowInfo();
  await dropRead(c);
  const size = sizer(true);
  const rest = restBytes(c);
  const waiting = waitingBytes(c, size);
  if (rest + waiting <= CARRY_BUDGET_BYTES) return;
  // The head of the queue stays when it fits (it may be the event a step was interrupted in; the
  // next run looks in Creatio before it writes either way), then as much as half the room left.
  const room = CARRY_BUDGET_BYTES - rest;
  let kept = 0;
  let used = 0;
  while (kept < queue.length && used + size(queue[kept]!) <= (kept === 0 ? room : room / 2)) {
    used += size(queue[kept]!);
    kept++;
  }
  run.storingSpill = true;
  try {
    const before = await store(c, workflowId, queue.splice(kept), size, CHUNK_BYTES);
    const after = await store(c, workflowId, spill.incoming.splice(0), size, CHUNK_BYTES);
    spill.chunks = [...before, ...spill.chunks, ...after];
  } finally {
    run.storingSpill = false;
  }
  const carried = restBytes(c) + used;
  if (carried > CARRY_BUDGET_BYTES) {
    log.warn('the state carried to the next run is over its budget', {
      orgId: c.orgId,
      sessionId: c.sessionId,
      bytes: carried,
    });
  }
}

/**
 * Events wait in memory and the carry is over its budget with them: what came in after the last
 * spill (during its own writes, or while handlers finished) would be carried unmeasured.
 */
export function carryOverBudget(c: Conversation): boolean {
  if (!c.flow.carryBytes) return false;
  const waiting = waitingBytes(c, sizer(true));
  return waiting > 0 && restBytes(c) + waiting > CARRY_BUDGET_BYTES;
}

/** Bytes of the events waiting in memory (the queue, and what waits behind stored chunks). */
function waitingBytes(c: Conversation, size: (e: ConversationEvent) => number): number {
  const { queue, spill } = c.run;
  return [...queue, ...spill.incoming].reduce((n, e) => n + size(e), 0);
}

/** Bytes of everything the run carries but the events waiting in memory. */
function restBytes(c: Conversation): number {
  const carried = c.run.carryOver();
  return jsonBytes({
    ...carried,
    queue: [],
    ...(carried.spill && { spill: { ...carried.spill, incoming: [] } }),
  });
}

/** The character budget of runs recorded before `carry-bytes` (their commands, unchanged). */
async function spillForCarryInChars(c: Conversation): Promise<void> {
  const { queue, spill } = c.run;
  const { workflowId } = workflowInfo();
  if (spill.read.length > 0) {
    await c.peers.store.dropSpill({ workflowId, chunks: spill.read });
    spill.read = [];
  }
  const size = sizer(false);
  const total = [...queue, ...spill.incoming].reduce((n, e) => n + size(e), 0);
  if (total <= CARRY_BUDGET_CHARS) return;
  let kept = 0;
  let used = 0;
  while (kept < queue.length && (kept === 0 || used + size(queue[kept]!) <= CARRY_BUDGET_CHARS / 2)) {
    used += size(queue[kept]!);
    kept++;
  }
  const before = await store(c, workflowId, queue.splice(kept), size, CHUNK_CHARS);
  const after = await store(c, workflowId, spill.incoming.splice(0), size, CHUNK_CHARS);
  spill.chunks = [...before, ...spill.chunks, ...after];
}

async function store(
  c: Conversation,
  workflowId: string,
  events: ConversationEvent[],
  size: (e: ConversationEvent) => number,
  chunkMax: number,
): Promise<number[]> {
  const chunks: number[] = [];
  let chunk: ConversationEvent[] = [];
  let used = 0;
  const flush = async () => {
    if (chunk.length === 0) return;
    const id = c.run.spill.next++;
    const events = chunk;
    await c.steps.run(
      'keep waiting events in the store',
      () => c.peers.store.spillEvents({ workflowId, chunk: id, events }),
      { partOfContinueAsNew: true },
    );
    chunks.push(id);
    if (c.flow.carryBytes) (c.run.spill.counts ??= {})[id] = events.length;
    chunk = [];
    used = 0;
  };
  for (const e of events) {
    if (used + size(e) > chunkMax) await flush();
    chunk.push(e);
    used += size(e);
  }
  await flush();
  return chunks;
}

/** When the in-memory queue is empty: reads the next stored chunk, or takes what came in since. */
export async function refill(c: Conversation): Promise<void> {
  const { queue, spill } = c.run;
  if (queue.length > 0) return;
  const chunk = spill.chunks[0];
  if (chunk !== undefined) {
    const { workflowId } = workflowInfo();
    // Enough read since the last timer: another ends the workflow task (the reads before it are
    // sent with that task). Counted in the run's own terms, so that a replay decides the same.
    if (c.flow.carryBytes && c.run.readSinceTimer >= TASK_READ_BYTES) {
      await sleep(1);
      c.run.readSinceTimer = 0;
    }
    // A read under way is finished even when continue-as-new falls due (a quick local read; its
    // result would otherwise be read again by the next run).
    const events = await c.steps.run(
      'read waiting events from the store',
      () => c.peers.store.loadSpill({ workflowId, chunk }),
      c.flow.carryBytes ? { finishInFlight: true } : {},
    );
    if (c.flow.carryBytes) c.run.readSinceTimer += jsonBytes(events);
    spill.chunks.shift();
    spill.read.push(chunk);
    if (spill.counts) delete spill.counts[chunk];
    queue.push(...events);
  }
  if (spill.chunks.length === 0 && spill.incoming.length > 0) queue.push(...spill.incoming.splice(0));
}

/** Events waiting, in memory and in the store (chunks stored by older code count as unknown). */
export function waitingEvents(c: Conversation): number {
  const { queue, spill } = c.run;
  const stored = spill.chunks.reduce((n, id) => n + (spill.counts?.[id] ?? 0), 0);
  return queue.length + stored + spill.incoming.length;
}

/** A message taken but not yet written, as the event it came in (it is taken again by the next run). */
function asEvent(e: Extract<LogEntry, { kind: 'message' }>): ConversationEvent {
  return {
    kind: 'message',
    eventId: `held:${e.messageId}`,
    timestamp: e.timestamp,
    messageId: e.messageId,
    author: e.author,
    text: e.text,
    attachments: e.attachments,
    ...(e.agentName && { agentName: e.agentName }),
  };
}

/**
 * The idle timeout came while a step was parked: everything not yet written (the messages taken,
 * the queue, the stored chunks, what came in since) is kept in the store, in order, for the
 * conversation's next run, and the state says how many events wait and why. False when the store
 * could not take them (the run then goes on, and tries again at the next idle timeout).
 */
export async function holdForNextRun(c: Conversation, step: string): Promise<boolean> {
  const { run } = c;
  const { queue, spill, unlogged } = run;
  const { workflowId } = workflowInfo();
  await dropRead(c);
  const taken = unlogged.flatMap((e) => (e.kind === 'message' ? [asEvent(e)] : []));
  const takenIds = new Set(taken.map((e) => (e.kind === 'message' ? e.messageId : '')));
  const queued = queue.filter((e) => !(e.kind === 'message' && takenIds.has(e.messageId)));
  const events = waitingEvents(c) - queue.length + taken.length + queued.length;
  const size = sizer(true);
  try {
    const before = await store(c, workflowId, [...taken, ...queued], size, CHUNK_BYTES);
    const after = await store(c, workflowId, [...spill.incoming], size, CHUNK_BYTES);
    const held: HeldEvents = {
      chunks: [...before, ...spill.chunks, ...after],
      next: spill.next,
      events,
      step,
      at: new Date().toISOString(),
    };
    // The list this run was resumed from (if any) is replaced, not deleted later.
    spill.read = spill.read.filter((n) => n !== HELD_CHUNK);
    await c.steps.run(
      'keep waiting events in the store',
      () => c.peers.store.holdEvents({ workflowId, held }),
      { partOfContinueAsNew: true },
    );
  } catch (err) {
    if (!(err instanceof IdleWhileParked)) throw err;
    run.note('the events waiting could not be kept in the store: the conversation goes on and tries again');
    return false;
  }
  unlogged.splice(0);
  queue.splice(0);
  spill.incoming.splice(0);
  spill.chunks = [];
  run.state.waiting = {
    events,
    reason: `the idle timeout came while the step '${step}' was parked: kept in the store, handled first when the conversation's next event resumes it`,
  };
  return true;
}

/**
 * A resumed run: what the conversation's last run kept at its idle timeout is handled first, before
 * the events that resumed it.
 */
export async function takeHeld(c: Conversation): Promise<void> {
  const { run } = c;
  const { workflowId, runId } = workflowInfo();
  const held = await c.steps.run('read events kept at the idle timeout', () =>
    c.peers.store.findHeld({ workflowId, runId }),
  );
  if (!held) return;
  const { queue, spill } = run;
  spill.incoming.unshift(...queue.splice(0));
  spill.chunks = [...held.chunks, ...spill.chunks];
  spill.next = Math.max(spill.next, held.next);
  // The list itself goes with the chunks once they are read (a failed deletion is tried again).
  spill.read.push(HELD_CHUNK);
  run.note(
    `${held.events} events kept when the step '${held.step}' was parked at the last run's idle timeout are handled first`,
  );
}
