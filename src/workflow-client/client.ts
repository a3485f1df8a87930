/**
 * How the API talks to conversation workflows: hand an event over (signalWithStart), read the
 * state, and resume or skip a parked step. Every call has a deadline, so that a Temporal outage
 * becomes a quick 503 rather than a request that hangs.
 */
import {
  defaultGrpcRetryOptions,
  makeGrpcRetryInterceptor,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';

/** What the API's routes recognise of Temporal's answers (they import nothing else of the client). */
export { WorkflowNotFoundError };
import { ApiError } from '../errors';
import { SEARCH_ATTRIBUTE_KEYS } from '../temporal/search-attributes';
import {
  conversationEventSignal,
  conversationWorkflowId,
  NOTHING_PARKED,
  resumeSignal,
  resumeStepUpdate,
  skipStepUpdate,
  STEP_NOT_SKIPPABLE,
  type ConversationEvent,
  type ConversationOptions,
} from '../workflows/contract';
import type { CreatioInbox } from './creatio-inbox';

export interface Conversations {
  client: Client;
  taskQueue: string;
  options: ConversationOptions;
  creatioInbox?: CreatioInbox;
  /** Longest wait for one Temporal call of a request (5 s by default). */
  deadlineMs?: number;
}

/**
 * The gRPC retries of the API's Temporal connection. A signal that meets a workflow in the middle
 * of continue-as-new is answered "workflow is closing" (RESOURCE_EXHAUSTED) for a few
 * milliseconds; the client's default waits 1 s, then 2 s… before the next try, which held a
 * webhook's ack for seconds and could miss its 5 s deadline. That answer is tried again after
 * 50 ms; a real rate limit (RESOURCE_EXHAUSTED otherwise) keeps the default's 1 s.
 */
const GRPC_RESOURCE_EXHAUSTED = 8;

export function apiGrpcInterceptors() {
  return [
    makeGrpcRetryInterceptor(
      defaultGrpcRetryOptions({
        initialIntervalMs: ({ code, details }) => {
          if (/workflow is closing/i.test(details)) return 50;
          return Number(code) === GRPC_RESOURCE_EXHAUSTED ? 1_000 : 100;
        },
        maxIntervalMs: ({ details }) => (/workflow is closing/i.test(details) ? 500 : 5_000),
      }),
    ),
  ];
}

/** Temporal did not answer in time, or refused: the sender should retry later. */
export class TemporalUnavailableError extends Error {
  override readonly name = 'TemporalUnavailableError';
}

export const TEMPORAL_DEADLINE_MS = 5_000;

/** Runs one Temporal call with the deadline; any failure but `passThrough` becomes TemporalUnavailableError. */
export async function withTemporal<T>(
  c: Conversations,
  fn: () => Promise<T>,
  passThrough: (err: unknown) => boolean = () => false,
): Promise<T> {
  try {
    return await c.client.withDeadline(Date.now() + (c.deadlineMs ?? TEMPORAL_DEADLINE_MS), fn);
  } catch (err) {
    if (passThrough(err)) throw err;
    throw new TemporalUnavailableError(
      `Temporal did not take the call: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}

/**
 * Hands an event to its conversation if its workflow is running: a plain signal, which carries the
 * event only (no start arguments, search attributes or memo to encode and send). False when no run
 * of the conversation is open (never started, finished): the caller then starts or resumes it.
 */
export async function signalIfRunning(
  c: Conversations,
  orgId: string,
  sessionId: string,
  event: ConversationEvent,
): Promise<boolean> {
  const handle = c.client.workflow.getHandle(conversationWorkflowId(orgId, sessionId));
  try {
    await withTemporal(
      c,
      () => handle.signal(conversationEventSignal, event),
      (err) => err instanceof WorkflowNotFoundError,
    );
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

/**
 * Hands one OpenCX event to its conversation, starting the workflow if needed. Resolves once
 * Temporal has the event (the workflow dedupes by event and message id, so a redelivery that
 * races the first attempt is harmless). A conversation whose workflow has finished (closed, or
 * idle) is started again as a resumed run: it finds its case and logs the late event there.
 */
export async function deliverEvent(
  c: Conversations,
  orgId: string,
  sessionId: string,
  event: ConversationEvent,
  /** `resume: false`: an event for a conversation that has finished is dropped (answered `resumed`). */
  o: { resume?: boolean } = {},
): Promise<{ workflowId: string; resumed: boolean }> {
  const workflowId = conversationWorkflowId(orgId, sessionId);
  const start = (resumed: boolean) =>
    withTemporal(
      c,
      () =>
        c.client.workflow.signalWithStart('conversationWorkflow', {
          workflowId,
          taskQueue: c.taskQueue,
          args: [{ orgId, sessionId, options: c.options, ...(resumed && { resumed: true }) }],
          signal: conversationEventSignal,
          signalArgs: [event],
          // The first start of a conversation: a finished one is resumed explicitly below.
          workflowIdReusePolicy: resumed ? 'ALLOW_DUPLICATE' : 'REJECT_DUPLICATE',
          typedSearchAttributes: [
            { key: SEARCH_ATTRIBUTE_KEYS.OrgId, value: orgId },
            { key: SEARCH_ATTRIBUTE_KEYS.OpenCXSessionId, value: sessionId },
          ],
          memo: { orgId, sessionId },
        }),
      (err) => err instanceof WorkflowExecutionAlreadyStartedError,
    );
  try {
    await start(false);
    return { workflowId, resumed: false };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
  if (o.resume === false) return { workflowId, resumed: true };
  await start(true);
  return { workflowId, resumed: true };
}

const UPDATE_REFUSALS: Record<string, { status: number; code: string; fix?: string }> = {
  [NOTHING_PARKED]: { status: 409, code: 'nothing_parked' },
  [STEP_NOT_SKIPPABLE]: {
    status: 409,
    code: 'step_not_skippable',
    fix: 'Fix the cause (see lastError in the session state), then POST …/resume.',
  },
  InvalidReason: { status: 400, code: 'missing_field' },
};

/**
 * Asks the conversation to try its parked step now (`resume`) or to give it up (`skip`). The
 * workflow validates the request: nothing parked, or a step that cannot be given up, is a 409.
 */
/** The run has no handler for the update (its workflow code predates it). */
function noUpdateHandler(err: WorkflowUpdateFailedError): boolean {
  const cause = err.cause;
  const type = cause instanceof ApplicationFailure ? (cause.type ?? '') : '';
  return (
    type === 'ReferenceError' ||
    /no registered handler|not registered|unknown update/i.test(cause?.message ?? '')
  );
}

export async function commandParkedStep(
  c: Conversations,
  orgId: string,
  sessionId: string,
  command: { kind: 'resume' } | { kind: 'skip'; reason: string },
): Promise<{ step: string }> {
  const handle = c.client.workflow.getHandle(conversationWorkflowId(orgId, sessionId));
  const refused = (err: unknown) =>
    err instanceof WorkflowUpdateFailedError || err instanceof WorkflowNotFoundError;
  try {
    return await withTemporal(
      c,
      () =>
        command.kind === 'resume'
          ? handle.executeUpdate(resumeStepUpdate)
          : handle.executeUpdate(skipStepUpdate, { args: [{ reason: command.reason }] }),
      refused,
    );
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      throw new ApiError(
        404,
        'session_not_found',
        `No running conversation ${sessionId} for organization ${orgId}`,
      );
    }
    if (err instanceof WorkflowUpdateFailedError && noUpdateHandler(err)) {
      // A run started by a release that had no such update (before resume and skip were updates):
      // it still takes the `resume` signal; skipping needs a release that knows how.
      if (command.kind === 'resume') {
        await withTemporal(c, () => handle.signal(resumeSignal), refused);
        return { step: 'the parked step (sent as the resume signal: a run of an earlier release)' };
      }
      throw new ApiError(
        409,
        'skip_not_supported',
        `Conversation ${sessionId} was started by an earlier release of the bridge, which cannot give a step up`,
        { fix: 'Fix the cause and resume instead (POST …/resume).' },
      );
    }
    if (err instanceof WorkflowUpdateFailedError) {
      const cause = err.cause;
      const type = cause instanceof ApplicationFailure ? (cause.type ?? '') : '';
      const refusal = UPDATE_REFUSALS[type];
      if (refusal) {
        throw new ApiError(refusal.status, refusal.code, cause?.message ?? err.message, {
          ...(refusal.fix && { fix: refusal.fix }),
          ...(type === 'InvalidReason' && { field: 'reason' }),
        });
      }
    }
    throw err;
  }
}
