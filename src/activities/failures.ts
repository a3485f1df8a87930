import { ApplicationFailure } from '@temporalio/activity';
import { CreatioError } from '../creatio/errors';
import { OpenCXError } from '../opencx/client';
import { RateLimitedError } from '../net/call-limiter';
import { StoreUnavailableError } from '../store';

/** The next try after the bridge's own database failed to answer. */
export const STORE_RETRY_DELAY_MS = 2_000;

/** An organization that has no (or no longer any) settings: retrying cannot fix it. */
export class OrgNotConnectedError extends Error {
  constructor(orgId: string, what = 'has no Creatio integration') {
    super(`Organization ${orgId} ${what}`);
    this.name = 'OrgNotConnectedError';
  }
}

/**
 * Retry-After plus up to 50 %: callers told to come back at the same second would otherwise all
 * come back together and meet the same limit again.
 */
export function withJitter(retryAfterMs: number): number {
  return Math.round(Math.max(retryAfterMs, 100) * (1 + Math.random() * 0.5));
}

/**
 * Turns a typed client error into the ApplicationFailure Temporal acts on: the type names the
 * cause (and is matched by the retry policies), non-retryable kinds stop retrying at once, and a
 * Retry-After becomes the delay before the next attempt.
 */
export function toFailure(err: unknown): unknown {
  if (err instanceof CreatioError || err instanceof OpenCXError) {
    return ApplicationFailure.create({
      type: err.name,
      message: err.message,
      nonRetryable: !err.retryable,
      ...(err.retryAfterMs !== undefined && { nextRetryDelay: withJitter(err.retryAfterMs) }),
      details: [{ kind: err.kind, status: err.status ?? null }],
    });
  }
  if (err instanceof RateLimitedError) {
    // Not a failure of the remote: the call was not made. Try again when the pace allows.
    return ApplicationFailure.create({
      type: err.name,
      message: err.message,
      nextRetryDelay: withJitter(err.retryAfterMs),
    });
  }
  if (err instanceof StoreUnavailableError) {
    // The store is ours and comes back in seconds (restart, failover): try again soon, not on the
    // Creatio backoff that may have grown to minutes.
    return ApplicationFailure.create({
      type: err.name,
      message: err.message,
      nextRetryDelay: STORE_RETRY_DELAY_MS,
    });
  }
  if (err instanceof OrgNotConnectedError) {
    return ApplicationFailure.create({ type: err.name, message: err.message, nonRetryable: true });
  }
  return err;
}

/** The next try after an attempt that made progress before failing (the backoff starts over). */
export const PROGRESS_RETRY_DELAY_MS = 1_000;

/**
 * Runs an activity body, turning its errors into the failures Temporal acts on. `progressed`: an
 * attempt that got some of its work done before a transient failure is tried again in a second,
 * not after a backoff that grew with earlier failures (a long batch under a flaky Creatio would
 * otherwise wait minutes between steps that each succeed a little).
 */
export async function withFailures<T>(fn: () => Promise<T>, progressed?: () => boolean): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const failure = toFailure(err);
    if (
      progressed?.() &&
      failure instanceof ApplicationFailure &&
      !failure.nonRetryable &&
      failure.nextRetryDelay === undefined
    ) {
      throw ApplicationFailure.create({
        type: failure.type ?? 'Error',
        message: failure.message,
        details: failure.details ? [...failure.details] : undefined,
        nextRetryDelay: PROGRESS_RETRY_DELAY_MS,
      });
    }
    throw failure;
  }
}
