import { CancellationScope, isCancellation, sleep } from '@temporalio/workflow';

/**
 * The main loop's one timer (idle timeout, next reply check). It is kept across events and only
 * replaced when the next wake-up moves earlier: a timer per event would add a start and a cancel
 * to the history of every message. A timer that fires before its time (the wake-up moved later
 * meanwhile) just makes the loop arm the next one.
 */
export class WakeTimer {
  private at = Infinity;
  private scope: CancellationScope | undefined;
  private fired = false;

  /** Wakes the loop at `at` (workflow time), unless the running timer fires at or before it. */
  arm(at: number): void {
    if (this.scope && !this.fired && this.at <= at) return;
    if (this.scope && !this.fired) this.scope.cancel();
    const scope = new CancellationScope();
    this.scope = scope;
    this.at = at;
    this.fired = false;
    scope
      .run(() => sleep(Math.max(1, at - Date.now())))
      .then(
        () => {
          if (this.scope === scope) this.fired = true;
        },
        (err: unknown) => {
          if (!isCancellation(err)) throw err;
        },
      );
  }

  /** The timer has fired (and not been taken yet). */
  get due(): boolean {
    return this.fired;
  }

  /** Takes the fired timer: the next `arm` starts a new one. */
  take(): void {
    this.scope = undefined;
    this.fired = false;
    this.at = Infinity;
  }
}
