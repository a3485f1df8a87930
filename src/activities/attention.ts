/**
 * The attention items of conversations (src/store/attention.ts), written where the fact is known:
 * the workflow's parked steps through `noteAttention` (a local activity), activities that keep
 * failing through `watchAttempts` (around every Creatio, OpenCX and AI-fields activity), and the
 * AI-fields and closure activities themselves. Every write is best effort: a failed write is
 * logged and never fails the activity or the conversation.
 */
import { Context } from '@temporalio/activity';
import { AttentionStore, type ConversationAttentionKind } from '../store/attention';
import type { Store } from '../store';
import type { OrgContexts } from './context';

/** From this attempt on, an activity still failing is listed (`step_retrying`). */
export const RETRYING_FROM_ATTEMPT = 5;

/** The conversation (organization, session) of the running activity, from its workflow id. */
export function runningConversation():
  { orgId: string; sessionId: string; attempt: number; activityType: string } | undefined {
  let info;
  try {
    info = Context.current().info;
  } catch {
    return undefined; // called outside an activity (a unit test)
  }
  const m = /^conversation:([^:]+):(.+)$/.exec(info.workflowExecution?.workflowId ?? '');
  if (!m) return undefined;
  return { orgId: m[1]!, sessionId: m[2]!, attempt: info.attempt, activityType: info.activityType };
}

/** The running activity's attempt (1 outside an activity). */
export function currentAttempt(): number {
  try {
    return Context.current().info.attempt;
  } catch {
    return 1;
  }
}

function warn(message: string, err: unknown): void {
  const reason = err instanceof Error ? err.message : String(err);
  try {
    Context.current().log.warn(message, { reason });
  } catch {
    // outside an activity: nothing to log to
  }
}

/** Sets and clears items of one conversation, never throwing. */
export class AttentionWriter {
  private readonly items: AttentionStore;

  constructor(store: Pick<Store, 'db'>) {
    this.items = new AttentionStore(store.db);
  }

  async set(
    orgId: string,
    sessionId: string,
    kind: ConversationAttentionKind,
    detail: string,
  ): Promise<void> {
    try {
      await this.items.set(orgId, sessionId, kind, detail);
    } catch (err) {
      warn(`could not record the attention item ${kind}`, err);
    }
  }

  async clear(orgId: string, sessionId: string, kinds: readonly ConversationAttentionKind[]): Promise<void> {
    try {
      await this.items.clear(orgId, sessionId, kinds);
    } catch (err) {
      warn(`could not clear the attention items ${kinds.join(', ')}`, err);
    }
  }
}

/** What the workflow asks of the attention items: set one, clear some (a local activity). */
export interface AttentionNote {
  orgId: string;
  sessionId: string;
  set?: { kind: ConversationAttentionKind; detail: string };
  clear?: ConversationAttentionKind[];
}

export function createAttentionActivities(orgs: OrgContexts) {
  const writer = new AttentionWriter(orgs.deps.store);
  return {
    /** Sets and clears the conversation's attention items (best effort: never fails). */
    async noteAttention(input: AttentionNote): Promise<void> {
      if (input.clear?.length) await writer.clear(input.orgId, input.sessionId, input.clear);
      if (input.set) await writer.set(input.orgId, input.sessionId, input.set.kind, input.set.detail);
    },
  };
}

export type AttentionActivities = ReturnType<typeof createAttentionActivities>;

type AnyActivity = (...args: never[]) => Promise<unknown>;

/**
 * Wraps every activity of a group: an attempt from RETRYING_FROM_ATTEMPT on that fails sets the
 * conversation's `step_retrying` (with the activity and the error); a later attempt that succeeds
 * clears it. First attempts cost nothing more.
 */
export function watchAttempts<T extends Record<string, AnyActivity>>(group: T, writer: AttentionWriter): T {
  const out: Record<string, AnyActivity> = {};
  for (const [name, fn] of Object.entries(group)) {
    out[name] = async (...args: never[]) => {
      try {
        const result = await fn(...args);
        const c = runningConversation();
        if (c && c.attempt > RETRYING_FROM_ATTEMPT)
          await writer.clear(c.orgId, c.sessionId, ['step_retrying']);
        return result;
      } catch (err) {
        const c = runningConversation();
        if (c && c.attempt >= RETRYING_FROM_ATTEMPT) {
          const message = err instanceof Error ? err.message : String(err);
          await writer.set(
            c.orgId,
            c.sessionId,
            'step_retrying',
            `${c.activityType}, attempt ${c.attempt}: ${message}`,
          );
        }
        throw err;
      }
    };
  }
  return out as T;
}
