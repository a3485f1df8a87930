/**
 * Closure, both ways: OpenCX closing the conversation sets the case's Resolved Status; a case in
 * one of the organization's closure statuses resolves the OpenCX session. A customer message after
 * the close is logged on the same case, or reopens it (afterClose "reopen").
 */
import { condition } from '@temporalio/workflow';
import type { ConversationEvent } from '../contract';
import type { Conversation } from './context';
import { drain } from './messages';
import { deliverNewReplies, scheduleNextReplyCheck } from './replies';
import { missed } from './state';

const PROCESS_MISSING = (status: string) =>
  `The case is in the closure status '${status}' but the case-closure business process did not call the webhook: it is missing, inactive or its status filter does not match`;

/** `at`: the close's own time, as the side that closed tells it (runs with the history check). */
function markClosed(c: Conversation, resolution: 'resolved' | 'not_resolved', at?: string | null): void {
  const { state } = c.run;
  state.resolution = resolution;
  state.status = 'closed';
  state.closedAt = new Date().toISOString();
  if (c.flow.historyCheck) state.closeAt = at ?? state.closedAt;
  // One last look at the OpenCX history: what no webhook brought is on the case before it is left.
  c.historyLane?.request('close');
}

/** OpenCX closed the conversation. */
export async function onClosed(
  c: Conversation,
  ev: Extract<ConversationEvent, { kind: 'closed' }>,
): Promise<void> {
  const { run } = c;
  const { state } = run;
  if (state.caseId) {
    await drain(c);
    if (ev.resolution === 'resolved') {
      const r = await c.steps.run(
        'resolve case',
        () => c.peers.creatio.resolveCase({ orgId: c.orgId, caseId: state.caseId! }),
        { onSkip: () => ({ done: false, reason: 'skipped by an operator' }) },
      );
      if (!r.done) run.note(`case status not changed: ${r.reason}`);
    }
  } else {
    run.note(
      state.mode === 'handoff_only'
        ? 'closed without handoff in handoff-only mode: no case was created'
        : 'closed before any customer message: no case was created',
    );
  }
  markClosed(c, ev.resolution, ev.timestamp);
}

async function readCaseStatus(c: Conversation) {
  const { state } = c.run;
  const st = await c.steps.run(
    'read case status',
    () => c.peers.creatio.readCaseStatus({ orgId: c.orgId, caseId: state.caseId! }),
    { onSkip: () => null },
  );
  if (st) state.caseStatus = st.name;
  return st;
}

/** The case is in a closure status: deliver what is left, resolve the session, finish. */
async function closeFromCreatio(
  c: Conversation,
  statusName: string,
  modifiedOn: string | null,
): Promise<void> {
  await drain(c);
  const lane = c.replyLane;
  if (lane) {
    // Replies written before the close go first, unless their read keeps failing: then the session
    // is resolved anyway and the lane delivers them once Creatio answers (the run waits for it).
    lane.request('closure');
    if (!(await condition(() => lane.idle, c.timings.closureWaitsForReplies))) {
      c.run.note(
        'the session was resolved while agent replies were still being read: they are delivered once the read succeeds',
      );
    }
  } else {
    await deliverNewReplies(c, 'closure');
  }
  await c.steps.run(
    'resolve OpenCX session',
    () => c.peers.opencx.resolveSession({ orgId: c.orgId, sessionId: c.sessionId }),
    { onSkip: () => undefined },
  );
  c.run.note(`case status '${statusName}': the OpenCX session was resolved`);
  markClosed(c, 'resolved', modifiedOn);
}

/** Creatio's closure process called: act if the status name is one of the closure statuses. */
export async function onCaseStatus(c: Conversation): Promise<void> {
  if (!c.run.state.caseId) return;
  const st = await readCaseStatus(c);
  if (!st) return;
  if (!st.closes) {
    c.run.note(
      `status '${st.name}' is not one of [${st.closureStatusNames.map((n) => `'${n}'`).join(', ')}] (names are case-sensitive): the OpenCX session stays open`,
    );
    return;
  }
  await closeFromCreatio(c, st.name, st.modifiedOn);
}

/**
 * The timer's own look at the case, for when a business process never calls: new replies are
 * delivered, and a case in a closure status resolves the session. Both are recorded as evidence.
 */
export async function checkCaseOnTimer(c: Conversation): Promise<void> {
  let found = 0;
  if (c.replyLane) c.replyLane.request('timer');
  else found = await deliverNewReplies(c, 'timer');
  const st = await readCaseStatus(c);
  if (st?.closes) {
    if (!st.modifiedOn || Date.now() - Date.parse(st.modifiedOn) > c.timings.processCallGrace) {
      missed(c.run.state.processes.closure, PROCESS_MISSING(st.name));
    }
    await closeFromCreatio(c, st.name, st.modifiedOn);
    return;
  }
  scheduleNextReplyCheck(c, found);
}

/** A customer wrote after the close (the message is logged): reopen the case if so configured. */
export async function reopenAfterClose(c: Conversation): Promise<void> {
  const { run } = c;
  const { state } = run;
  const s = await c.steps.run('read settings', () => c.peers.store.getConversationSettings(c.orgId));
  if (s.afterClose !== 'reopen') return;
  const r = await c.steps.run(
    'reopen case',
    () => c.peers.creatio.reopenCase({ orgId: c.orgId, caseId: state.caseId! }),
    { onSkip: () => ({ done: false, reason: 'skipped by an operator' }) },
  );
  if (!r.done) {
    run.note(`a customer wrote after the close; the case was not reopened: ${r.reason}`);
    return;
  }
  state.status = 'open';
  state.closedAt = null;
  state.closeAt = null;
  state.resolution = null;
  state.caseStatus = null;
  run.note('a customer wrote after the close: the case was reopened');
}
