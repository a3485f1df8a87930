/**
 * Pacing of the calls to OpenCX, per API key, shared by every worker process: OpenCX allows 100
 * requests per minute per key (docs/opencx-reference.md, "Authentication, errors, limits"), and
 * organizations that share a key share that budget.
 *
 * A fair queue (GCRA, src/store/call-pace.ts): each call reserves the key's next slot in the store
 * with one atomic statement and sleeps until it, so calls are served in the order they reserved,
 * whichever process made them. A call that has to wait waits its turn (beating for its activity
 * meanwhile) instead of failing: a multi-call step (a reply send that first reads the session)
 * always progresses, one slot after the other. Only a turn further away than the activity's
 * attempt has left (less the call's own timeout) is not taken: RateLimitedError, and Temporal
 * tries again later.
 *
 * A 429 halves the key's rate (it grows back within `recoverMs`); a Retry-After (on a 429 or a 5xx)
 * pauses the key for every process, and moves the calls already waiting by as much.
 */
import { sha256Hex } from '../crypto';
import type { Logger } from '../logger';
import { CallPaceStore, type PaceLimits } from '../store/call-pace';
import type { Db } from '../store/db';
import {
  RateLimitedError,
  type CallLimiter,
  type CallLimiters,
  type CallOutcome,
  type CallPacer,
} from './call-limiter';

/** Defaults of the shared OpenCX pace (the rate itself comes from config). */
export const OPENCX_PACE_DEFAULTS = {
  /** Calls of a key that may go at once after a quiet time. */
  burst: 3,
  /** A halved rate is back to the full rate within this long. */
  recoverMs: 60_000,
  /** Longest wait for a turn outside an activity (Test & Save, scripts). */
  maxWaitMs: 60_000,
  /** A waiting call beats for its activity this often. */
  beatEveryMs: 5_000,
  /** The longest pause a Retry-After imposes (a larger one is read as this). */
  maxPauseMs: 10 * 60_000,
  /** A store that cannot be reached is logged at most this often. */
  warnEveryMs: 30_000,
  /** After a failed reservation, calls are paced in-process this long before the store is asked again. */
  retryStoreAfterMs: 10_000,
} as const;

/**
 * Longest wait of a call paced in-process while the store cannot be reached: callers queue in
 * arrival order there too, within an OpenCX activity's attempt (45 s, less the call's timeout).
 */
export const OPENCX_FALLBACK_MAX_WAIT_MS = 20_000;

export interface OpenCXPacingOptions {
  /** The store's database (PostgreSQL, or PGlite in the single-process default). */
  db: Pick<Db, 'query'>;
  /** Calls per second per API key, all worker processes together. */
  perSecond: number;
  burst?: number;
  minPerSecond?: number;
  recoverMs?: number;
  /** Longest wait for a turn outside an activity. */
  maxWaitMs?: number;
  /** Time kept free after the wait for the call itself (its timeout). */
  callMs?: number;
  /**
   * Paces this process alone while the store cannot be reached (its share of the rate, as the
   * in-process limiter does): calls go on at a safe pace rather than failing with the store.
   */
  fallback: CallLimiters;
  /** What the current activity attempt has left (undefined outside an activity). */
  timeLeftMs?: () => number | undefined;
  /** Beats for the current activity (a no-op outside one). */
  beat?: () => void;
  beatEveryMs?: number;
  /** The current activity's cancellation, which ends a wait. */
  signal?: () => AbortSignal | undefined;
  log?: Logger;
}

/** One paced OpenCX call's place: `slotMs` its slot in the shared queue (undefined: paced in-process). */
export interface Turn {
  slotMs: number | undefined;
  waitedMs: number;
}

/** The shared pace of every OpenCX API key this process calls with. */
export class OpenCXPacing {
  private readonly byKey = new Map<string, OpenCXPace>();
  private readonly store: CallPaceStore;
  private readonly limits: PaceLimits;
  private lastWarn = 0;
  /** Until when the store is taken as unreachable (each reservation would wait for its timeouts). */
  private storeDownUntil = 0;

  constructor(private readonly o: OpenCXPacingOptions) {
    this.store = new CallPaceStore(o.db);
    const burst = Math.max(1, o.burst ?? OPENCX_PACE_DEFAULTS.burst);
    this.limits = {
      maxPerSecond: o.perSecond,
      minPerSecond: Math.min(o.minPerSecond ?? 0.2, o.perSecond),
      recoverPerSecond: o.perSecond / ((o.recoverMs ?? OPENCX_PACE_DEFAULTS.recoverMs) / 1000),
      toleranceMs: ((burst - 1) / o.perSecond) * 1000,
    };
  }

  /** The pace of an API key (kept by its hash: the key itself is never stored). */
  for(apiKey: string): OpenCXPace {
    const hash = sha256Hex(apiKey);
    let pace = this.byKey.get(hash);
    if (!pace) {
      const name = `opencx:${hash.slice(0, 12)}`;
      pace = new OpenCXPace(
        `opencx:${hash}`,
        name,
        this.store,
        this.limits,
        this.o,
        this.o.fallback.for(name),
        {
          down: () => Date.now() < this.storeDownUntil,
          failed: (err) => this.storeFailed(name, err),
        },
      );
      this.byKey.set(hash, pace);
    }
    return pace;
  }

  private storeFailed(key: string, err: unknown): void {
    const now = Date.now();
    this.storeDownUntil = now + OPENCX_PACE_DEFAULTS.retryStoreAfterMs;
    if (now - this.lastWarn < OPENCX_PACE_DEFAULTS.warnEveryMs) return;
    this.lastWarn = now;
    this.o.log?.warn(
      { key, reason: err instanceof Error ? err.message : String(err) },
      'the shared OpenCX pace could not be read from the store; pacing in this process alone meanwhile',
    );
  }
}

export class OpenCXPace implements CallPacer {
  /** Pushes back (429, Retry-After) not yet written: this process's next turn waits for them. */
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly keyHash: string,
    readonly name: string,
    private readonly store: CallPaceStore,
    private readonly limits: PaceLimits,
    private readonly o: OpenCXPacingOptions,
    private readonly fallback: CallLimiter,
    private readonly storeHealth: { down(): boolean; failed(err: unknown): void },
  ) {}

  async acquire(): Promise<void> {
    await this.turn();
  }

  /** Waits for this call's turn and says which slot it got. */
  async turn(): Promise<Turn> {
    await this.pending;
    const started = Date.now();
    const maxWaitMs = this.maxWaitMs();
    // The store cannot be reached: this process paces alone rather than failing calls because of
    // the bridge's own database (the in-process limiter, this process's share of the rate), and
    // asks the store again a few seconds later.
    const alone = async () => {
      await this.fallback.acquire();
      return { slotMs: undefined, waitedMs: Date.now() - started };
    };
    if (this.storeHealth.down()) return alone();
    let slot;
    try {
      slot = await this.store.reserve(this.keyHash, this.limits, maxWaitMs);
    } catch (err) {
      this.storeHealth.failed(err);
      return alone();
    }
    if (!slot.reserved) throw this.tooFar(slot.waitMs, maxWaitMs);
    let waitMs = slot.waitMs;
    let shift = slot.shiftMs;
    while (waitMs > 0) {
      await this.sleep(waitMs);
      // A pause (Retry-After) that came while this call waited moves it by as much, and so keeps
      // the queue's order. A store that does not answer here lets the call go.
      const now = await this.store.shift(this.keyHash).catch(() => shift);
      if (now <= shift) break;
      waitMs = now - shift;
      shift = now;
      const waited = Date.now() - started;
      if (waited + waitMs > maxWaitMs) throw this.tooFar(waitMs, maxWaitMs - waited);
    }
    return { slotMs: slot.slotMs, waitedMs: Date.now() - started };
  }

  /** Records the outcome: a 429 slows the key down, a Retry-After pauses it, for every process. */
  done(outcome: CallOutcome): void {
    this.fallback.done(outcome);
    if (outcome.status === 'error') return;
    const { status, retryAfterMs } = outcome;
    const pauseMs =
      retryAfterMs !== undefined && (status === 429 || status >= 500)
        ? Math.min(retryAfterMs, OPENCX_PACE_DEFAULTS.maxPauseMs)
        : 0;
    const slowDown = status === 429;
    if (pauseMs <= 0 && !slowDown) return;
    this.pending = this.pending.then(() =>
      this.store
        .pushBack(this.keyHash, this.limits, { pauseMs, slowDown })
        .catch((err: unknown) => this.storeHealth.failed(err)),
    );
  }

  /** Resolves once every push back recorded so far is written. */
  settled(): Promise<void> {
    return this.pending;
  }

  private maxWaitMs(): number {
    const cap = this.o.maxWaitMs ?? OPENCX_PACE_DEFAULTS.maxWaitMs;
    const left = this.o.timeLeftMs?.();
    if (left === undefined) return cap;
    return Math.max(0, Math.min(cap, left - (this.o.callMs ?? 15_000)));
  }

  private tooFar(waitMs: number, maxWaitMs: number): RateLimitedError {
    return new RateLimitedError(
      this.name,
      Math.max(1_000, waitMs - Math.max(0, maxWaitMs)),
      `its turn is ${Math.round(waitMs)} ms away, more than this attempt can wait (${Math.round(Math.max(0, maxWaitMs))} ms)`,
    );
  }

  /** Sleeps `ms`, beating for the activity every few seconds; the activity's cancellation ends it. */
  private async sleep(ms: number): Promise<void> {
    const signal = this.o.signal?.();
    let left = ms;
    while (left > 0) {
      const step = Math.min(left, this.o.beatEveryMs ?? OPENCX_PACE_DEFAULTS.beatEveryMs);
      await new Promise<void>((resolve, reject) => {
        const cancelled = () =>
          reject(signal?.reason instanceof Error ? signal.reason : new Error('the activity was cancelled'));
        if (signal?.aborted) return cancelled();
        const onAbort = () => {
          clearTimeout(timer);
          cancelled();
        };
        const timer = setTimeout(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }, step);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      left -= step;
      this.o.beat?.();
    }
  }
}
