/**
 * Heartbeats of long or multi-call activities. Creatio activities declare a heartbeat timeout, so a
 * worker killed mid-call is noticed in seconds rather than at the start-to-close timeout; the
 * Creatio client beats after every HTTP call (`alive`), carrying the progress an activity last
 * recorded (`progress`), so that a retry still resumes where the attempt stopped.
 */
import { Context } from '@temporalio/activity';

const recorded = new WeakMap<Context, unknown>();

/** Records the activity's progress (given to its next attempt as heartbeatDetails) and beats. */
export function progress(details: unknown): void {
  const ctx = Context.current();
  recorded.set(ctx, details);
  // A local activity (a first try in the workflow's worker) has no heartbeat: it is retried whole.
  if (!ctx.info.isLocal) ctx.heartbeat(details);
}

/** Beats for the current activity, if any, keeping its progress (or the previous attempt's). */
export function alive(): void {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return; // not inside an activity (Test & Save, the API)
  }
  if (ctx.info.isLocal) return;
  ctx.heartbeat(recorded.has(ctx) ? recorded.get(ctx) : ctx.info.heartbeatDetails);
}

/**
 * What the current activity attempt has left of its start-to-close timeout (counted from when the
 * attempt was scheduled, so never more than it has); undefined outside an activity.
 */
export function attemptTimeLeftMs(): number | undefined {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return undefined;
  }
  const { startToCloseTimeoutMs, currentAttemptScheduledTimestampMs } = ctx.info;
  if (!startToCloseTimeoutMs) return undefined;
  const elapsed = Math.max(0, Date.now() - currentAttemptScheduledTimestampMs);
  return startToCloseTimeoutMs - elapsed;
}

/** The current activity's cancellation signal; undefined outside an activity. */
export function cancellation(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}
