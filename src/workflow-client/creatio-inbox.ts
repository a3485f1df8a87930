import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Logger } from '../logger';
import type { Store } from '../store';
import { conversationEventSignal, type ConversationEvent } from '../workflows/contract';
import { Coalescer } from './coalesce';

/**
 * Turns the inbox of Creatio webhook calls into signals. A call is answered as soon as its row is
 * committed; the dispatcher then sends, per conversation, one signal per kind of call waiting (the
 * workflow reads everything new in Creatio, so one signal covers any number of calls) and deletes
 * the rows it covered. Rows left by a crash or a Temporal outage are picked up by the sweep.
 */
export class CreatioInbox {
  /** At most one dispatch per conversation every 250 ms: each makes the workflow read Creatio. */
  private readonly coalescer = new Coalescer(250);
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Dispatches under way: a signal retrying must not meet a closed connection. */
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly store: Store,
    private readonly client: Client,
    private readonly log: Logger,
  ) {}

  /** Sends what is waiting for this conversation (coalesced with sends already under way). */
  kick(workflowId: string): Promise<void> {
    const sent = this.coalescer
      .run(workflowId, () => this.dispatch(workflowId))
      .catch((err: unknown) => {
        this.log.warn({ err, workflowId }, 'could not signal the conversation yet; the sweep retries');
      })
      .finally(() => this.inflight.delete(sent));
    this.inflight.add(sent);
    return sent;
  }

  private async dispatch(workflowId: string): Promise<void> {
    if (this.stopped) return;
    const rows = await this.store.inboxFor(workflowId);
    if (rows.length === 0) return;
    const kinds = [...new Map(rows.map((r) => [r.kind, r])).values()];
    try {
      for (const r of kinds) {
        const event: ConversationEvent =
          r.kind === 'creatio_activity'
            ? {
                kind: 'creatio_activity',
                eventId: `creatio:${randomUUID()}`,
                timestamp: new Date().toISOString(),
              }
            : {
                kind: 'creatio_status',
                eventId: `creatio:${randomUUID()}`,
                timestamp: new Date().toISOString(),
                eventType: r.eventType,
              };
        await this.client.workflow.getHandle(workflowId).signal(conversationEventSignal, event);
      }
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      this.log.info({ workflowId, calls: rows.length }, 'Creatio calls for a closed conversation dropped');
    }
    await this.store.removeInbox(workflowId, rows[rows.length - 1]!.id);
  }

  /** Every `everyMs`, re-sends calls that have waited longer than `olderThanMs`. */
  startSweep(everyMs = 5_000, olderThanMs = 2_000): void {
    this.sweepTimer = setInterval(() => {
      this.store
        .staleInboxWorkflows(olderThanMs)
        .then((ids) => Promise.all(ids.map((id) => this.kick(id))))
        .catch((err: unknown) => this.log.warn({ err }, 'inbox sweep failed'));
    }, everyMs);
    this.sweepTimer.unref();
  }

  /** No new dispatch starts; resolves once those under way are done (before the client closes). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await Promise.allSettled([...this.inflight]);
  }
}
