/**
 * What continue-as-new carries stays under Temporal's 2 MB input limit whatever waits: events over
 * the carry budget (a busy conversation through a long outage, very long messages) are kept in the
 * bridge's store, sealed, in chunks, and read back one chunk at a time as the queue empties. Order
 * is kept: `queue`, then the stored chunks, then `incoming` (received while chunks wait).
 */
import { workflowInfo } from '@temporalio/workflow';
import type { ConversationEvent } from '../contract';
import type { Conversation } from './context';

/** Most characters of events a run carries in its continue-as-new input. */
export const CARRY_BUDGET_CHARS = 512_000;
/** Most characters of one stored chunk (one local activity result when read back). */
const CHUNK_CHARS = 256_000;

const sizeOf = (e: ConversationEvent) => JSON.stringify(e).length;

/** Before continue-as-new: moves what is over the budget to the store. */
export async function spillForCarry(c: Conversation): Promise<void> {
  const { queue, spill } = c.run;
  const { workflowId } = workflowInfo();
  if (spill.read.length > 0) {
    await c.peers.store.dropSpill({ workflowId, chunks: spill.read });
    spill.read = [];
  }
  const total = [...queue, ...spill.incoming].reduce((n, e) => n + sizeOf(e), 0);
  if (total <= CARRY_BUDGET_CHARS) return;
  // The head of the queue stays (it may be the event a step was interrupted in), then as much as fits.
  let kept = 0;
  let used = 0;
  while (kept < queue.length && (kept === 0 || used + sizeOf(queue[kept]!) <= CARRY_BUDGET_CHARS / 2)) {
    used += sizeOf(queue[kept]!);
    kept++;
  }
  const before = await store(c, workflowId, queue.splice(kept));
  const after = await store(c, workflowId, spill.incoming.splice(0));
  spill.chunks = [...before, ...spill.chunks, ...after];
}

async function store(c: Conversation, workflowId: string, events: ConversationEvent[]): Promise<number[]> {
  const chunks: number[] = [];
  let chunk: ConversationEvent[] = [];
  let size = 0;
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
    chunk = [];
    size = 0;
  };
  for (const e of events) {
    if (size + sizeOf(e) > CHUNK_CHARS) await flush();
    chunk.push(e);
    size += sizeOf(e);
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
    const events = await c.steps.run('read waiting events from the store', () =>
      c.peers.store.loadSpill({ workflowId, chunk }),
    );
    spill.chunks.shift();
    spill.read.push(chunk);
    queue.push(...events);
  }
  if (spill.chunks.length === 0 && spill.incoming.length > 0) queue.push(...spill.incoming.splice(0));
}
