/**
 * Creatio → OpenCX: agent replies written on the case reach the customer, each once, oldest first,
 * whether a business process announced them (webhook), the case closed, or the timer found them.
 */
import type { Conversation } from './context';
import { messageFingerprint } from './heard';
import { missed, spreadWait } from './state';
import { ContinueAsNewNow } from './steps';

/** Who asked for a reply read: a business process call, a closure, or the bridge's own timer. */
export type ReplySource = 'webhook' | 'closure' | 'timer';

const PROCESS_MISSING =
  "Agent replies reach the customer only through the bridge's periodic check: the agent-reply business process is missing, inactive or filtered (it did not call the webhook for this case)";

/**
 * Delivers every agent reply written in Creatio since the last read. `source` says who asked: a
 * reply that only the timer found, well after it was written, is evidence that the process did
 * not call.
 */
export async function deliverNewReplies(
  c: Conversation,
  source: ReplySource,
  lane?: { continueAsNewDue: () => boolean },
): Promise<number> {
  const { run } = c;
  const { state, deliveredReplies } = run;
  if (!state.caseId) return 0;
  let delivered = 0;
  for (;;) {
    const page = await c.steps.run(
      'fetch agent replies',
      () =>
        c.peers.creatio.fetchAgentReplies({
          orgId: c.orgId,
          caseId: state.caseId!,
          since: run.replyCursor,
          lookbackMs: c.timings.lookback,
          delivered: [...deliveredReplies.keys()],
        }),
      { onSkip: () => ({ replies: [], cursor: null, more: false }) },
    );
    for (const reply of page.replies) {
      if (deliveredReplies.has(reply.id)) continue;
      // In the reply lane a send under way is finished first; the next one waits for the next run.
      if (lane?.continueAsNewDue()) throw new ContinueAsNewNow();
      const firstTriedAt = new Date().toISOString();
      // Known as the bridge's own before it can show in the OpenCX history (heard.ts): the history
      // check, running beside this lane, never logs it back on the case.
      const sentFp = c.flow.historyCheck ? messageFingerprint('agent', reply.text) : undefined;
      if (sentFp) run.heard.take('r', { fp: sentFp, at: firstTriedAt });
      const r = await c.steps.run(
        `deliver agent reply ${reply.id}`,
        (again) =>
          c.peers.opencx.deliverReply({
            orgId: c.orgId,
            sessionId: c.sessionId,
            caseId: state.caseId!,
            reply,
            verify: again || run.verifyWrites,
            firstTriedAt,
          }),
        { onSkip: () => null, ...(lane && { finishInFlight: true }) },
      );
      deliveredReplies.set(reply.id, reply.createdOn);
      if (!r) continue;
      // Its history item is the bridge's own reply, not a message to log (heard.ts).
      // The text as sent differs when files were named in it instead of attached.
      if (c.flow.historyCheck && r.fp && r.fp !== sentFp) run.heard.take('r', { fp: r.fp, at: firstTriedAt });
      state.agentRepliesDelivered++;
      delivered++;
      if (r.omittedAttachments.length > 0) {
        run.note(`agent reply ${reply.id}: not attached (too large): ${r.omittedAttachments.join(', ')}`);
      }
      if (source === 'timer' && Date.now() - Date.parse(reply.createdOn) > c.timings.processCallGrace) {
        missed(state.processes.agentReply, PROCESS_MISSING);
      }
    }
    if (page.cursor && (!run.replyCursor || Date.parse(page.cursor) > Date.parse(run.replyCursor))) {
      run.replyCursor = page.cursor;
    }
    const windowStart = run.replyCursor ? Date.parse(run.replyCursor) - c.timings.lookback : 0;
    for (const [id, createdOn] of deliveredReplies) {
      if (Date.parse(createdOn) < windowStart) deliveredReplies.delete(id);
    }
    if (!page.more) return delivered;
  }
}

/**
 * Wakes the reply timer sooner when something happens (it backs off only while all is quiet). The
 * timer runs after the handoff, and (runs with `replyTimerOpen`) as soon as the case exists: an
 * agent may answer before any handoff, and the process may not call.
 */
export function replyCheckSoon(c: Conversation): void {
  const { state, replyCheck } = c.run;
  if (!state.caseId || !(state.handedOffAt || c.flow.replyTimerOpen)) return;
  replyCheck.delayMs = c.timings.replyCheckEvery;
  const soon = Date.now() + spreadWait(c, c.timings.replyCheckEvery);
  replyCheck.nextAt = replyCheck.nextAt === null ? soon : Math.min(replyCheck.nextAt, soon);
}

/** After a timer look at the case: back off while quiet, look again soon after a find. */
export function scheduleNextReplyCheck(c: Conversation, found: number): void {
  const { replyCheck } = c.run;
  replyCheck.delayMs =
    found > 0 ? c.timings.replyCheckEvery : Math.min(replyCheck.delayMs * 2, c.timings.replyCheckMax);
  replyCheck.nextAt = Date.now() + spreadWait(c, replyCheck.delayMs);
}
