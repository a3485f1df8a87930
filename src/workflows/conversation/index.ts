/**
 * The conversation workflow: one OpenCX conversation, from its first event to its close. Events
 * arrive through one signal and are handled strictly in arrival order by the main loop; the flows
 * live beside this file (messages, handoff, replies, closure).
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  conversationEventSignal,
  resumeSignal,
  stateQuery,
  type ConversationEvent,
  type ConversationInput,
  type ConversationState,
} from '../contract';
import { checkCaseOnTimer, onCaseStatus, onClosed } from './closure';
import type { Conversation } from './context';
import { onHandoff } from './handoff';
import { onMessage, onStarted, toEntry } from './messages';
import { peers } from './peers';
import { deliverNewReplies, replyCheckSoon } from './replies';
import { ConversationRun, timingsOf } from './state';
import { Steps } from './steps';

export async function conversationWorkflow(input: ConversationInput): Promise<ConversationState> {
  const { orgId, sessionId, options } = input;
  const timings = timingsOf(options);
  // State first; handlers after it, so buffered signals always find it initialised.
  const run = new ConversationRun(input, timings);
  const steps = new Steps(run, options.parkedRetryEvery);
  const c: Conversation = { orgId, sessionId, options, run, steps, peers: peers(orgId, options), timings };

  setHandler(stateQuery, () => run.view());
  setHandler(conversationEventSignal, (event) => run.accept(event));
  setHandler(resumeSignal, () => steps.resume());

  const shouldContinueAsNew = () =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= options.maxHistoryEvents;

  while (run.state.status === 'open') {
    const idleAt = run.lastEventAt + timings.idle;
    const { replyCheck } = run;
    const wakeAt = replyCheck.nextAt === null ? idleAt : Math.min(idleAt, replyCheck.nextAt);
    const active = await condition(
      () => run.queue.length > 0 || shouldContinueAsNew(),
      Math.max(1, wakeAt - Date.now()),
    );
    if (!active) {
      if (Date.now() >= idleAt) {
        run.note('no event for the idle timeout: conversation finished');
        run.state.status = 'closed';
        break;
      }
      replyCheck.nextAt = null;
      await checkCaseOnTimer(c);
      continue;
    }
    if (run.queue.length > 0) {
      await handle(c, run.queue.shift()!);
      run.lastEventAt = Date.now();
      if (run.state.status === 'open') replyCheckSoon(c);
      continue;
    }
    await condition(allHandlersFinished);
    await continueAsNew<typeof conversationWorkflow>({ orgId, sessionId, options, carried: run.carryOver() });
  }
  if (run.queue.length > 0) run.note(`${run.queue.length} event(s) after the close were ignored`);
  return run.view();
}

async function handle(c: Conversation, ev: ConversationEvent): Promise<void> {
  switch (ev.kind) {
    case 'started':
      return onStarted(c, ev);
    case 'message':
      return onMessage(c, toEntry(ev));
    case 'handoff':
      return onHandoff(c, ev);
    case 'closed':
      return onClosed(c, ev);
    case 'creatio_activity':
      await deliverNewReplies(c, 'webhook');
      return;
    case 'creatio_status':
      return onCaseStatus(c);
  }
}
