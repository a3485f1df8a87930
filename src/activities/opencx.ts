/** Activities that talk to OpenCX: agent replies to the customer, and resolving the session. */
import { ApplicationFailure } from '@temporalio/activity';
import {
  DEFAULT_REPLY_LIMITS,
  deliver,
  outgoingText,
  planAttachments,
  type AgentReply,
} from './agent-replies';
import { AttentionWriter, currentAttempt } from './attention';
import { isRetry, type OrgContexts } from './context';
import { withFailures } from './failures';
import type { Attachment, Author } from '../workflows/contract';
import { messageFingerprint } from '../workflows/conversation/heard';

/** One message of the session's history, as the workflow takes it (history-lane.ts). */
export interface HistoryMessage {
  id: string;
  author: Author;
  text: string;
  createdAt: string;
  senderName?: string;
  attachments: Attachment[];
}

/**
 * Most bytes of messages one history read returns, as serialised (Temporal refuses a result over
 * 2 MB); the rest comes with the next read.
 */
const HISTORY_READ_BYTES = 1_000_000;
/** A history message longer than this is cut (the case's activity is cut at its own limit anyway). */
const HISTORY_TEXT_MAX = 100_000;

/** From this attempt on, a closure that cannot resolve the OpenCX session is listed (`closure_mismatch`). */
export const CLOSURE_MISMATCH_FROM_ATTEMPT = 3;

export function createOpenCXActivities(orgs: OrgContexts) {
  const replyLimits = { ...DEFAULT_REPLY_LIMITS, ...orgs.deps.replyLimits };
  const attention = new AttentionWriter(orgs.deps.store);
  return {
    /**
     * Delivers an agent reply to the customer through OpenCX, taking the session over from the AI.
     * A retry (or a step tried again) first asks OpenCX whether an earlier attempt got through.
     */
    async deliverReply(input: {
      orgId: string;
      sessionId: string;
      reply: AgentReply;
      /** The case the reply was written on (runs recorded before it was passed leave it out). */
      caseId?: string;
      verify?: boolean;
      firstTriedAt: string;
    }): Promise<{ sent: boolean; omittedAttachments: string[]; fp?: string }> {
      return withFailures(async () => {
        const { store } = orgs.deps;
        // One read answers both questions: already delivered, and whether a send ever started.
        const state = await store.replyState(input.orgId, input.reply.id);
        if (state === 'delivered') {
          const { omitted } = planAttachments(input.reply, replyLimits);
          const text = outgoingText(input.reply, omitted);
          return { sent: false, omittedAttachments: omitted, fp: messageFingerprint('agent', text) };
        }
        const record = {
          orgId: input.orgId,
          activityId: input.reply.id,
          caseId: input.caseId ?? '',
          sessionId: input.sessionId,
        };
        const verify = input.verify === true || isRetry();
        const out = await deliver(
          await orgs.creatio(input.orgId),
          await orgs.opencx(input.orgId),
          {
            ...input,
            verify,
            // Runs recorded before sends were recorded: unknown, so treated as started.
            ...(verify && input.caseId !== undefined && { attempted: state === 'sending' }),
            beforeSend: () => store.recordReplyAttempt(record),
          },
          replyLimits,
        );
        if (out.sent) orgs.deps.metrics?.repliesDelivered.inc();
        // Recorded before the activity completes: if this fails, the retry finds the send
        // through OpenCX (verify) and records it then.
        await store.recordDeliveredReply(record);
        // The text as the customer sees it, fingerprinted: its history item is then recognised
        // as the bridge's own reply (heard.ts), not as a message to log on the case.
        const { text, ...rest } = out;
        return { ...rest, ...(text !== undefined && { fp: messageFingerprint('agent', text) }) };
      });
    },

    /**
     * The session's messages from OpenCX's history (all pages, oldest first) whose time is at or
     * after `since`: each with an id (the history item's, or one made of its time and content when
     * OpenCX serves none) and its author. At most HISTORY_READ_BYTES (as serialised) per read:
     * `more` is then the `since` of the next read. A session OpenCX does not know fails at once
     * (OpenCXSessionNotFoundError, not retried).
     */
    async readHistory(input: {
      orgId: string;
      sessionId: string;
      since: string | null;
    }): Promise<{ messages: HistoryMessage[]; newest: string | null; more?: string; complete: boolean }> {
      return withFailures(async () => {
        const { messages, complete } = await (await orgs.opencx(input.orgId)).transcript(input.sessionId);
        const out: HistoryMessage[] = [];
        let newest: string | null = null;
        let bytes = 0;
        let more: string | undefined;
        for (const m of messages) {
          if (m.createdAt && (!newest || m.createdAt > newest)) newest = m.createdAt;
        }
        for (const m of messages) {
          if (!m.author) continue;
          if (input.since && m.createdAt && m.createdAt < input.since) continue;
          const createdAt = m.createdAt ?? new Date(0).toISOString();
          const text = m.text.slice(0, HISTORY_TEXT_MAX);
          const item: HistoryMessage = {
            // The current reference gives every item an id; one made of its time and content
            // otherwise (the same at every read).
            id: m.id ?? `history:${createdAt}:${messageFingerprint(m.author, text) ?? 'empty'}`,
            author: m.author,
            text,
            createdAt,
            ...(m.senderName && { senderName: m.senderName }),
            attachments: m.attachments,
          };
          const size = Buffer.byteLength(JSON.stringify(item));
          if (bytes + size > HISTORY_READ_BYTES && out.length > 0) {
            // The next read starts at this item's time; without one, the next check goes on.
            more = m.createdAt;
            break;
          }
          bytes += size;
          out.push(item);
        }
        return { messages: out, newest, complete, ...(more && { more }) };
      });
    },

    /**
     * Resolves the OpenCX session (closed_resolved); called once the case is closed in Creatio. While
     * it fails for good, or again and again, the conversation is listed as `closure_mismatch` (the
     * case closed, the session open); a later success unlists it.
     */
    async resolveSession(input: { orgId: string; sessionId: string }): Promise<void> {
      try {
        await withFailures(async () => {
          await (await orgs.opencx(input.orgId)).resolveSession(input.sessionId);
        });
      } catch (err) {
        const forGood = err instanceof ApplicationFailure && err.nonRetryable;
        if (forGood || currentAttempt() >= CLOSURE_MISMATCH_FROM_ATTEMPT) {
          const message = err instanceof Error ? err.message : String(err);
          await attention.set(input.orgId, input.sessionId, 'closure_mismatch', message);
        }
        throw err;
      }
      await attention.clear(input.orgId, input.sessionId, ['closure_mismatch']);
    },
  };
}

export type OpenCXActivities = ReturnType<typeof createOpenCXActivities>;
