/**
 * Pacing of the HTTP calls the bridge makes to one organization's Creatio (or OpenCX): a token
 * bucket whose rate adapts to what the remote answers, the way TCP adapts to loss.
 *
 * - Every answered call that is not 429 or 5xx adds to the rate (additive increase, about +1 call/s
 *   per second at full pace), up to the ceiling: the optional hard cap, or MAX_ADAPTIVE_PER_SECOND.
 * - A 429 halves it, and so does a 5xx, a timeout or a refused connection while 80 % of the last
 *   10 calls failed (at most once per second, so that a burst of failures of calls already in
 *   flight counts once), down to the floor. A flaky remote that answers most calls keeps its pace.
 * - A Retry-After pauses all calls until then.
 * - The ceiling and the rate are shares of the organization's limit: with N worker processes
 *   alive, each holds 1/N (`share`), so the limit holds across processes.
 *
 * A caller that would wait longer than `maxWaitMs` for its turn gets RateLimitedError at once,
 * naming how long to wait: the activity gives its worker slot back and Temporal tries it again
 * after that delay, so an organization whose Creatio is down or slow holds no slot that another
 * organization needs.
 */

export interface CallLimiterOptions {
  /** Calls per second at the start (and the ceiling's share is applied to it). */
  initialPerSecond: number;
  /** Hard cap on calls per second for the organization (all processes together); none: adaptive only. */
  maxPerSecond?: number;
  /** The rate never drops below this (one probe every few seconds finds a recovered remote). */
  minPerSecond?: number;
  /** Longest wait inside a call before giving the slot back (RateLimitedError). */
  maxWaitMs?: number;
  /** Most calls of the organization in flight at once in this process. */
  maxInFlight?: number;
  /** This process's share of the organization's limit (1 / live worker processes). */
  share?: () => number;
  now?: () => number;
}

/**
 * The shipped pacing (config defaults): Creatio adaptive from 50 calls/s; OpenCX 1.5 calls/s (90 a
 * minute, under OpenCX's 100 per API key), per API key across every worker process
 * (src/net/opencx-pacing.ts).
 */
export const SHIPPED_CALL_LIMITS = { creatioInitialPerSecond: 50, opencxMaxPerSecond: 1.5 } as const;

/** The ceiling when no hard cap is set: far above what one conversation stream needs. */
export const MAX_ADAPTIVE_PER_SECOND = 500;

/** Outcomes kept per limiter: the last 10 tell an overload or outage, all 20 a flaky remote. */
const RECENT_CALLS = 20;
const OVERLOAD_WINDOW = 10;

/** The call was not made: the organization's pace says to try again after `retryAfterMs`. */
export class RateLimitedError extends Error {
  override readonly name = 'RateLimitedError';
  constructor(
    readonly key: string,
    readonly retryAfterMs: number,
    why: string,
    lastFailure?: string,
  ) {
    super(
      `Calls to ${key} are paced (${why}${lastFailure ? `; last failure: ${lastFailure}` : ''}): next try in ${Math.round(retryAfterMs)} ms`,
    );
  }
}

/** What a call ended with, as the limiter learns from it. */
export type CallOutcome = { status: number; retryAfterMs?: number | undefined } | { status: 'error' };

/** What a client needs of its pacing: a turn before each call, and the call's outcome after it. */
export interface CallPacer {
  acquire(): Promise<void>;
  done(outcome: CallOutcome): void;
}

export class CallLimiter {
  private rate: number;
  private tokens = 1;
  private refilledAt: number;
  private pausedUntil = 0;
  private lastDecrease = 0;
  private inFlight = 0;
  /** What the remote last failed with: a paced call names it, so that the real cause stays visible. */
  private lastFailure: string | undefined;
  /** Outcomes of the last RECENT_CALLS calls (true: answered). */
  private readonly recent: boolean[] = [];
  private readonly now: () => number;

  constructor(
    readonly key: string,
    private readonly o: CallLimiterOptions,
  ) {
    this.now = o.now ?? Date.now;
    this.refilledAt = this.now();
    this.rate = Math.min(o.initialPerSecond, this.ceiling());
    // Full, as after any quiet second: the first calls after a start (a burst of new
    // conversations) go at once instead of queueing behind a bucket that starts empty.
    this.tokens = Math.max(1, this.perSecond);
  }

  /** Calls per second this process allows itself now. */
  get perSecond(): number {
    return Math.min(this.rate, this.ceiling()) * this.share();
  }

  private share(): number {
    return Math.min(1, Math.max(0.01, this.o.share?.() ?? 1));
  }

  private ceiling(): number {
    return this.o.maxPerSecond ?? MAX_ADAPTIVE_PER_SECOND;
  }

  private floor(): number {
    return Math.min(this.o.minPerSecond ?? 0.2, this.ceiling());
  }

  private refill(now: number): void {
    const perSecond = this.perSecond;
    // At most one second's worth banked: a quiet minute does not buy a burst of a minute's calls.
    this.tokens = Math.min(
      Math.max(1, perSecond),
      this.tokens + ((now - this.refilledAt) / 1000) * perSecond,
    );
    this.refilledAt = now;
  }

  /**
   * Waits for this call's turn (at most maxWaitMs) and counts it in flight; the caller must call
   * `done` with the outcome. Throws RateLimitedError when the turn is further away.
   */
  async acquire(): Promise<void> {
    const maxWait = this.o.maxWaitMs ?? 250;
    const now = this.now();
    if (this.pausedUntil > now) {
      throw new RateLimitedError(
        this.key,
        this.pausedUntil - now,
        'the remote asked to wait',
        this.lastFailure,
      );
    }
    if (this.inFlight >= (this.o.maxInFlight ?? 16)) {
      throw new RateLimitedError(this.key, 200 + Math.random() * 300, 'too many calls in flight');
    }
    this.refill(now);
    const waitMs = this.tokens >= 1 ? 0 : ((1 - this.tokens) / this.perSecond) * 1000;
    if (waitMs > maxWait) {
      throw new RateLimitedError(this.key, waitMs, `${this.perSecond.toFixed(1)} calls/s`, this.lastFailure);
    }
    // The token is taken now (the bucket may go below zero): callers queue in arrival order.
    this.tokens -= 1;
    this.inFlight++;
    if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
  }

  /**
   * At least 3 of the recent calls failed, and 80 % of them: an outage or an overload. (Of a remote
   * that fails 30 % of calls at random, 8 of 10 fail together about once in 600 windows.)
   */
  private mostlyFailing(): boolean {
    const last = this.recent.slice(-OVERLOAD_WINDOW);
    const failures = last.filter((ok) => !ok).length;
    return failures >= 3 && failures / last.length >= 0.8;
  }

  /**
   * The remote answers most calls right now (at least 60 % of the last 20, once 10 are known): a
   * transient failure is flakiness, worth trying again in a second, not an outage to back off from.
   */
  answering(): boolean {
    if (this.recent.length < RECENT_CALLS / 2) return false;
    return this.recent.filter(Boolean).length / this.recent.length >= 0.6;
  }

  /** Records the outcome of a call that `acquire` let through. */
  done(outcome: CallOutcome): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    const now = this.now();
    const failed = outcome.status === 'error' || outcome.status === 429 || outcome.status >= 500;
    this.recent.push(!failed);
    if (this.recent.length > RECENT_CALLS) this.recent.shift();
    if (failed) {
      this.lastFailure =
        outcome.status === 'error'
          ? 'no answer (timeout or connection failure)'
          : `answered ${outcome.status}`;
    } else if (this.recent.slice(-OVERLOAD_WINDOW).every(Boolean)) {
      this.lastFailure = undefined;
    }
    if (!failed) {
      // Additive increase: 1/rate per answered call, about +1 call/s for each second at full pace
      // (quicker from a low rate, where each answer counts more).
      this.rate = Math.min(this.ceiling(), this.rate + 1 / this.rate);
      return;
    }
    if (outcome.status !== 'error' && outcome.retryAfterMs !== undefined) {
      this.pausedUntil = Math.max(this.pausedUntil, now + outcome.retryAfterMs);
    }
    // A 429 is the remote asking for less. A 5xx, a timeout or a refused connection is only read
    // as overload when most recent calls fail: a flaky remote that answers most calls keeps its pace.
    if (outcome.status !== 429 && !this.mostlyFailing()) return;
    if (now - this.lastDecrease >= 1000) {
      this.lastDecrease = now;
      this.rate = Math.max(this.floor(), this.rate / 2);
      this.tokens = Math.min(this.tokens, 1);
    }
  }
}

/** One limiter per organization and remote, made on first use with the same options. */
export class CallLimiters {
  private readonly byKey = new Map<string, CallLimiter>();
  constructor(private readonly options: CallLimiterOptions) {}

  for(key: string): CallLimiter {
    let l = this.byKey.get(key);
    if (!l) {
      l = new CallLimiter(key, this.options);
      this.byKey.set(key, l);
    }
    return l;
  }

  /** The current rate of every limiter (for /readyz and the benchmark). */
  rates(): Record<string, number> {
    return Object.fromEntries([...this.byKey].map(([k, l]) => [k, Math.round(l.perSecond * 10) / 10]));
  }
}
