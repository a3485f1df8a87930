import type { Duration } from '@temporalio/common';
import type { ActivityOptions, LocalActivityOptions } from '@temporalio/workflow';

/**
 * Every retry decision of the bridge, in one place. Activities throw ApplicationFailures whose
 * type names the cause (src/activities/failures.ts); each peer lists the types that retrying
 * cannot fix. Rate limits carry Retry-After as the failure's nextRetryDelay.
 */
const NOT_CONNECTED = ['OrgNotConnectedError'];

export const CREATIO_NON_RETRYABLE = [
  'CreatioBadCredentialsError',
  'CreatioGrantTypeError',
  'CreatioUnauthorizedError',
  'CreatioForbiddenError',
  'CreatioNotFoundError',
  'CreatioValidationError',
  'CreatioSchemaError',
  'CreatioRouteNotFoundError',
  'CreatioResponseTooLargeError',
  'CreatioAddressRefusedError',
  ...NOT_CONNECTED,
];

export const OPENCX_NON_RETRYABLE = [
  'OpenCXAddressRefusedError',
  'OpenCXUnauthorizedError',
  'OpenCXValidationError',
  'OpenCXSessionNotFoundError',
  'OpenCXReplyUnverifiableError',
  ...NOT_CONNECTED,
];

/**
 * Calls to Creatio: exponential backoff up to `maxInterval` between tries (10 s by default, so that
 * waiting work resumes within 10 s of Creatio coming back, with the per-organization rate cap
 * protecting it meanwhile), for as long as `retryFor` (24 hours by default), then the step is parked.
 */
export function creatioActivityOptions(
  taskQueue: string,
  retryFor: Duration,
  maxInterval: Duration,
): ActivityOptions {
  return {
    taskQueue,
    startToCloseTimeout: '2 minutes',
    // The client beats after every Creatio call (each at most CREATIO_REQUEST_TIMEOUT_MS, 15 s): a
    // worker that died mid-activity is noticed within 30 s, not at the 2-minute attempt timeout.
    heartbeatTimeout: '30 seconds',
    scheduleToCloseTimeout: retryFor,
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: maxInterval,
      nonRetryableErrorTypes: CREATIO_NON_RETRYABLE,
    },
  };
}

/**
 * Calls to OpenCX (agent replies, resolving a session): a short attempt timeout, so that a worker
 * that died mid-send is noticed in seconds. The delivery checks OpenCX before sending again, so a
 * retry never doubles a reply that did get through.
 */
export function opencxActivityOptions(
  taskQueue: string,
  retryFor: Duration,
  maxInterval: Duration,
  attemptTimeout: Duration,
): ActivityOptions {
  return {
    taskQueue,
    startToCloseTimeout: attemptTimeout,
    scheduleToCloseTimeout: retryFor,
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: maxInterval,
      nonRetryableErrorTypes: OPENCX_NON_RETRYABLE,
    },
  };
}

/**
 * A read of OpenCX that the conversation can do without for a while (its history check): tried
 * for two minutes at most, then the next check comes at the next interval. Never parked.
 */
export function opencxReadActivityOptions(taskQueue: string, attemptTimeout: Duration): ActivityOptions {
  return {
    taskQueue,
    startToCloseTimeout: attemptTimeout,
    scheduleToCloseTimeout: '2 minutes',
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '30 seconds',
      nonRetryableErrorTypes: OPENCX_NON_RETRYABLE,
    },
  };
}

/**
 * Reads of the bridge's own store (local activities): retried every 2 s at most for as long as a
 * database restart or failover may take, so that the conversation goes on seconds after the store
 * is back; only after 30 minutes is the step parked. (Store errors in any activity also ask for
 * the next try within 2 s: src/activities/failures.ts.)
 */
export const storeActivityOptions: LocalActivityOptions = {
  startToCloseTimeout: '10 seconds',
  scheduleToCloseTimeout: '30 minutes',
  retry: {
    initialInterval: '200 milliseconds',
    backoffCoefficient: 2,
    maximumInterval: '2 seconds',
    nonRetryableErrorTypes: NOT_CONNECTED,
  },
};

/**
 * The first try of a short Creatio write, as a local activity in the workflow's own worker: no
 * task round trip through the server and one history event instead of three. One attempt only,
 * bounded well under the workflow task timeout; any failure falls back to the durable activity
 * (creatioActivityOptions), which looks before it writes (docs/decisions/0015-fast-path.md).
 */
export const creatioFirstTryOptions: LocalActivityOptions = {
  startToCloseTimeout: '5 seconds',
  retry: { maximumAttempts: 1 },
};

/**
 * AI field evaluation: LLM 5xx, 429 and timeouts are retried with backoff, but the whole step is
 * bounded by `deadline` (the seed: evaluation "adds a few seconds"); then only the fields are given up.
 */
export function aiFieldsActivityOptions(taskQueue: string, deadline: Duration): ActivityOptions {
  return {
    taskQueue,
    startToCloseTimeout: deadline,
    scheduleToCloseTimeout: deadline,
    retry: {
      initialInterval: '500 milliseconds',
      backoffCoefficient: 2,
      maximumInterval: '4 seconds',
      nonRetryableErrorTypes: [...CREATIO_NON_RETRYABLE, 'LlmRequestError'],
    },
  };
}
