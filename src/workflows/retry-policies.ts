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
  'CreatioResponseTooLargeError',
  'CreatioAddressRefusedError',
  ...NOT_CONNECTED,
];

export const OPENCX_NON_RETRYABLE = [
  'OpenCXAddressRefusedError',
  'OpenCXUnauthorizedError',
  'OpenCXValidationError',
  ...NOT_CONNECTED,
];

/**
 * Calls to Creatio: exponential backoff up to `maxInterval` between tries (5 minutes by default),
 * for as long as `retryFor` (24 hours by default), then the step is parked.
 */
export function creatioActivityOptions(
  taskQueue: string,
  retryFor: Duration,
  maxInterval: Duration,
): ActivityOptions {
  return {
    taskQueue,
    startToCloseTimeout: '2 minutes',
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

/** Reads of the bridge's own store (local activities): fast, a few quick retries. */
export const settingsActivityOptions: LocalActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: {
    initialInterval: '200 milliseconds',
    maximumInterval: '5 seconds',
    maximumAttempts: 10,
    nonRetryableErrorTypes: NOT_CONNECTED,
  },
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
