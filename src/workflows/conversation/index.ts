/**
 * The conversation workflow: one OpenCX conversation, from its first event to its close. Events
 * arrive through one signal and are handled strictly in arrival order by the main loop; the flows
 * live beside this file (messages, handoff, replies, closure).
 */
import {
  allHandlersFinished,
  condition,
  makeContinueAsNewFunc,
  patched,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  conversationEventSignal,
  resumeSignal,
  resumeStepUpdate,
  skipStepUpdate,
  stateQuery,
  type ConversationEvent,
  type ConversationInput,
  type ConversationState,
} from '../contract';
import { checkCaseOnTimer, onCaseStatus, onClosed, reopenAfterClose } from './closure';
import { CURRENT_FLOW, PREVIOUS_FLOW, type Conversation } from './context';
import { onHandoff } from './handoff';
import { adoptPriorCase, needsPriorCase, onMessage, onStarted, toEntry } from './messages';
import { peers } from './peers';
import { deliverNewReplies, replyCheckSoon } from './replies';
import { ConversationRun, checkSpread, timingsOf } from './state';
import {
  carryOverBudget,
  dropRead,
  holdForNextRun,
  refill,
  spillForCarry,
  takeHeld,
  waitingEvents,
} from './spill';
import { ContinueAsNewNow, IdleWhileParked, Steps } from './steps';
import { WakeTimer } from './wake';
import { ReplyLane } from './reply-lane';
import { HistoryLane } from './history-lane';

export async function conversationWorkflow(input: ConversationInput): Promise<ConversationState> {
  // Every patch of the run is asked here, in its first activation and before any command: a
  // patched() asked after a local activity can fall in another workflow task on replay (0016).
  // A run this code starts (or continues as new) records one marker and takes every flow below; a
  // run recorded before it has no such marker and asks each patch as it did (0030).
  const current = patched(CURRENT_FLOW);
  const previous = current || patched(PREVIOUS_FLOW);
  const flow = {
    oneTryCaseOpening: previous || patched('open-case-in-one-try'),
    replyLane: previous || patched('reply-lane'),
    historyCheck: previous || patched('history-check'),
    replyTimerOpen: previous || patched('reply-timer-open'),
    aiFieldsKeepEdits: previous || patched('ai-fields-keep-edits'),
    carryBytes: previous || patched('carry-bytes'),
    attention: previous || patched('attention'),
    spreadChecks: previous,
    lanesWhenAsked: previous,
    armWhenIdle: previous,
    carryMeasuredLast: current,
  };
  const { orgId, sessionId, options } = input;
  const timings = timingsOf(options);
  // State first; handlers after it, so buffered signals always find it initialised.
  const run = new ConversationRun(input, timings);
  run.carryBytes = flow.carryBytes;
  run.carryMeasuredLast = flow.carryMeasuredLast;
  const activities = peers(orgId, options);
  // Also when another worker version became current (worker versioning): the run is pinned to the
  // version that started it, and the next run starts on the current one. Always false unversioned.
  const shouldContinueAsNew = () =>
    workflowInfo().continueAsNewSuggested ||
    workflowInfo().historyLength >= options.maxHistoryEvents ||
    workflowInfo().targetWorkerDeploymentVersionChanged;
  const steps = new Steps(run, options.parkedRetryEvery, flow.attention, {
    idleAt: () => run.lastEventAt + timings.idle,
    continueAsNew: shouldContinueAsNew,
    onSkipped: async (step, reason) => {
      run.note(`step '${step}' given up by an operator: ${reason}`);
      const caseId = run.state.caseId;
      if (!caseId) return;
      try {
        await activities.creatioNote.logEntry({
          orgId,
          sessionId,
          caseId,
          verify: true,
          entry: {
            kind: 'note',
            key: `skipped:${run.state.skipped?.length ?? 0}`,
            title: `Not synced: ${step}`,
            text: `An operator gave this step up: ${reason}`,
            timestamp: new Date().toISOString(),
          },
        });
      } catch {
        run.note('the note about the skipped step could not be written on the case');
      }
    },
  });
  const c: Conversation = {
    orgId,
    sessionId,
    options,
    run,
    steps,
    peers: activities,
    timings,
    flow,
    spread: flow.spreadChecks ? checkSpread(workflowInfo().workflowId) : 1,
  };
  const lane = flow.replyLane ? new ReplyLane(c, shouldContinueAsNew) : undefined;
  c.replyLane = lane;
  const history = flow.historyCheck
    ? new HistoryLane(c, (ev) => run.enqueue(ev), shouldContinueAsNew)
    : undefined;
  c.historyLane = history;
  run.historyCheckOn = history !== undefined;

  setHandler(stateQuery, () => run.view());
  setHandler(conversationEventSignal, (event) => run.accept(event));
  setHandler(resumeSignal, () => void steps.resume());
  setHandler(resumeStepUpdate, () => steps.resume(), { validator: () => steps.validateResume() });
  setHandler(skipStepUpdate, ({ reason }) => steps.skip(reason), {
    validator: ({ reason }: { reason: string }) => steps.validateSkip(reason),
  });

  /** The step parked when the idle timeout came (the run then ends, or keeps its events: spill.ts). */
  let idleWhileParked: IdleWhileParked | undefined;
  /** Runs a piece of the loop; a parked step may end it early (continue-as-new, idle timeout). */
  async function guarded(fn: () => Promise<void>): Promise<'done' | 'continue-as-new' | 'idle'> {
    try {
      await fn();
      return 'done';
    } catch (err) {
      if (err instanceof ContinueAsNewNow) return 'continue-as-new';
      if (err instanceof IdleWhileParked) {
        if (!flow.carryBytes)
          run.note(`${err.message}: conversation finished with ${run.unlogged.length} entries not written`);
        idleWhileParked = err;
        return 'idle';
      }
      throw err;
    }
  }

  if (lane) {
    lane.start(flow.lanesWhenAsked);
    if (run.replyReadPending) lane.request(run.replyReadPending);
    run.replyReadPending = undefined;
  }
  if (history) {
    history.start(flow.lanesWhenAsked);
    // A check the last run was asked for and could not do (continue-as-new came first).
    if (run.historyCheck.closeCheckPending) history.request('close');
    run.historyCheck.closeCheckPending = undefined;
  }
  // A resumed run handles first what the last run kept at its idle timeout.
  if (flow.carryBytes && input.resumed && !input.carried) await takeHeld(c);
  const laneIdle = () => (lane?.idle ?? true) && (history?.idle ?? true);
  const wake = new WakeTimer();
  // Events are handled even after the close: a late customer message is logged (or reopens).
  // Agent replies still being read keep the run going too (the reply lane).
  while (run.state.status === 'open' || run.hasWork() || !laneIdle()) {
    const idleAt = run.lastEventAt + timings.idle;
    const { replyCheck } = run;
    // Runs without the reply lane (recorded by older code) keep their timers exactly as they were.
    const open = lane === undefined || run.state.status === 'open';
    const historyAt =
      history && run.state.status === 'open' ? (run.historyCheck.nextAt ?? Infinity) : Infinity;
    // An event already queued is handled first: a timer armed now would be replaced once it is
    // handled (a new conversation's first message makes the reply check due sooner than the idle
    // timeout), a start and a cancel in every first task.
    if (!flow.armWhenIdle || !run.hasWork()) {
      wake.arm(
        Math.min(
          replyCheck.nextAt === null || !open ? idleAt : Math.min(idleAt, replyCheck.nextAt),
          historyAt,
        ),
      );
    }
    await condition(() => run.hasWork() || shouldContinueAsNew() || wake.due || (!open && laneIdle()));
    let outcome: Awaited<ReturnType<typeof guarded>> = 'done';
    let handled: ConversationEvent | undefined;
    if (shouldContinueAsNew()) {
      outcome = 'continue-as-new';
    } else if (!run.hasWork() && !wake.due) {
      // Closed, and the reply lane has finished: the loop's own condition ends the run.
      continue;
    } else if (!run.hasWork()) {
      wake.take();
      if (Date.now() >= idleAt) {
        run.note('no event for the idle timeout: conversation finished');
        run.state.status = 'closed';
        break;
      }
      if (history && run.historyCheck.nextAt !== null && Date.now() >= run.historyCheck.nextAt) {
        run.historyCheck.nextAt = null;
        history.request('timer');
      }
      // Woken before anything is due (the wake-up moved later meanwhile): arm the next timer.
      if (!open || replyCheck.nextAt === null || Date.now() < replyCheck.nextAt) continue;
      replyCheck.nextAt = null;
      outcome = await guarded(() => checkCaseOnTimer(c));
    } else {
      // The event leaves the queue once handled: a run that ends mid-event hands it on.
      handled = run.queue[0];
      outcome = await guarded(() => handleHead(c));
      run.handlingHead = false;
      if (outcome === 'done') {
        run.queue.shift();
        run.verifyWrites = run.state.resumed === true;
        if (run.state.status === 'open') replyCheckSoon(c);
        // After OpenCX's own events (not Creatio's calls, nor what the history check itself found).
        const fromOpenCX = handled && !handled.kind.startsWith('creatio_');
        if (history && fromOpenCX && !(handled?.kind === 'message' && handled.fromHistory)) history.soon();
      }
    }
    if (outcome === 'idle') {
      if (flow.carryBytes && idleWhileParked) {
        const { step, message } = idleWhileParked;
        idleWhileParked = undefined;
        const waiting = waitingEvents(c) + run.unlogged.length;
        if (waiting > 0 && !(await holdForNextRun(c, step))) continue;
        run.note(
          waiting > 0
            ? `${message}: conversation finished; ${run.state.waiting?.events ?? 0} events kept in the store for its next run`
            : `${message}: conversation finished`,
        );
      }
      run.state.status = 'closed';
      break;
    }
    if (outcome === 'continue-as-new') {
      // A step may have been cut off mid-way: the next run looks before it writes.
      if (run.queue.length > 0) run.verifyWrites = true;
      if (lane) {
        // A send under way is finished, never abandoned; a read waiting is the next run's first.
        await condition(() => !lane.busy);
        run.replyReadPending = lane.pending ?? undefined;
      }
      if (history) {
        // A check under way finishes first (its reads are bounded: see history-lane.ts); one
        // asked for and not started is the next run's first.
        await condition(() => !history.busy);
        if (history.pending) {
          if (run.state.status === 'open') run.historyCheck.nextAt = Date.now();
          else run.historyCheck.closeCheckPending = true;
        }
      }
      // Events that come in while the surplus is stored, or while handlers finish, are measured
      // too: the server refuses an input over 2 MB, and the run could then never go on (0038).
      do {
        await spillForCarry(c);
        await condition(allHandlersFinished);
      } while (flow.carryMeasuredLast && carryOverBudget(c));
      const upgrade = workflowInfo().targetWorkerDeploymentVersionChanged;
      await makeContinueAsNewFunc<typeof conversationWorkflow>(
        upgrade ? { initialVersioningBehavior: 'AUTO_UPGRADE' } : {},
      )({ orgId, sessionId, options, carried: run.carryOver() });
    }
  }
  await condition(allHandlersFinished);
  if (flow.carryBytes) {
    await dropRead(c);
    if (run.spill.read.length > 0) {
      run.note(
        `${run.spill.read.length} chunks of events already handled could not be deleted from the store (never read again)`,
      );
    }
  } else if (run.spill.read.length > 0) {
    await activities.store
      .dropSpill({ workflowId: workflowInfo().workflowId, chunks: run.spill.read })
      .catch(() => {
        run.note(
          'events read back from the store could not be deleted there (they expire with the conversation)',
        );
      });
  }
  return run.view();
}

/**
 * Handles the event at the head of the queue (read back from the store first when the queue is
 * empty). The hot path of every message: each async step here costs the workflow thread a
 * promise and its stack trace (docs/decisions/0028-load-and-the-floor.md), so steps that have
 * nothing to do are not called.
 */
async function handleHead(c: Conversation): Promise<void> {
  const { run } = c;
  if (run.queue.length === 0) await refill(c);
  run.handlingHead = true;
  await handle(c, run.queue[0]!);
}

async function handle(c: Conversation, ev: ConversationEvent): Promise<void> {
  const { state } = c.run;
  if (ev.kind === 'creatio_activity' || ev.kind === 'creatio_status') {
    if (state.status === 'closed') {
      c.run.note(
        `a Creatio ${ev.kind === 'creatio_activity' ? 'activity' : 'status'} call after the close: ignored`,
      );
      return;
    }
    if (ev.kind === 'creatio_activity') {
      if (c.replyLane) c.replyLane.request('webhook');
      else await deliverNewReplies(c, 'webhook');
    } else await onCaseStatus(c);
    return;
  }
  if (needsPriorCase(c)) await adoptPriorCase(c);
  switch (ev.kind) {
    case 'started':
      return onStarted(c, ev);
    case 'message': {
      const fresh = await onMessage(c, toEntry(ev), ev.fromHistory ? 'h' : 'w', ev.caseOnlyOnHandoff);
      if (ev.author !== 'customer' || !state.closedAt || !state.caseId) return;
      if (c.flow.historyCheck) {
        // Written before the close (OpenCX delivered it late, or the history check found it), or
        // already taken: logged on the case, which stays closed.
        const closeAt = Date.parse(state.closeAt ?? state.closedAt);
        if (!fresh || Date.parse(ev.timestamp) < closeAt) return;
      }
      await reopenAfterClose(c);
      return;
    }
    case 'handoff':
      return onHandoff(c, ev);
    case 'closed':
      return onClosed(c, ev);
    case 'history_check':
      c.historyLane?.request('event');
      return;
  }
}
