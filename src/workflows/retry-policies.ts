import type { Duration } from '@temporalio/common';
import type { ActivityOptions, LocalActivityOptions } from '@temporalio/workflow';

/**
 * Every retry decision of the bridge, in one place. Activities throw ApplicationFailures whose
 * type names the cause (src/activities/failures.ts); the types below are the ones retrying cannot
 * fix. Rate limits carry Retry-After as the failure's nextRetryDelay.
 */
export const NON_RETRYABLE = [
  'CreatioBadCredentialsError',
  'CreatioGrantTypeError',
  'CreatioUnauthorizedError',
  'CreatioForbiddenError',
  'CreatioNotFoundError',
  'CreatioValidationError',
  'CreatioResponseTooLargeError',
  'CreatioAddressRefusedError',
  'OpenCXAddressRefusedError',
  'OrgNotConnectedError',
  'OpenCXUnauthorizedError',
  'OpenCXValidationError',
];

/**
 * Calls to Creatio and to OpenCX: exponential backoff up to `maxInterval` between tries (5 minutes by default),
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
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  };
}

/**
 * Calls to OpenCX (agent replies, resolving a session): the same backoff as Creatio, but a short
 * attempt timeout, so that a worker that died mid-send is noticed in seconds. The delivery checks
 * OpenCX before sending again, so a retry never doubles a reply that did get through.
 */
export function opencxActivityOptions(
  taskQueue: string,
  retryFor: Duration,
  maxInterval: Duration,
  attemptTimeout: Duration,
): ActivityOptions {
  return {
    ...creatioActivityOptions(taskQueue, retryFor, maxInterval),
    startToCloseTimeout: attemptTimeout,
  };
}

/** Reads of the bridge's own store: fast, local, a few quick retries. */
export const localActivityOptions: LocalActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: {
    initialInterval: '200 milliseconds',
    maximumInterval: '5 seconds',
    maximumAttempts: 10,
    nonRetryableErrorTypes: NON_RETRYABLE,
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
      nonRetryableErrorTypes: [...NON_RETRYABLE, 'LlmRequestError'],
    },
  };
}
