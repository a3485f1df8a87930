import {
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  condition,
  log,
  metricMeter,
  TemporalFailure,
} from '@temporalio/workflow';
import { msToNumber } from '@temporalio/common/lib/time';
import type { Duration } from '@temporalio/common';
import { NOTHING_PARKED, STEP_NOT_SKIPPABLE } from '../contract';
import type { AttentionNote } from '../../activities';
import { attentionStore } from './peers';
import type { ConversationRun } from './state';

/**
 * An activity that failed for good. A remote activity's failure comes as ActivityFailure; a local
 * activity's may come as its cause itself (an ApplicationFailure that is not retryable, a timeout).
 */
export function isActivityFailure(err: unknown): err is TemporalFailure {
  return err instanceof TemporalFailure && !(err instanceof CancelledFailure);
}

/** Thrown out of a step when the history should continue-as-new first (handled by the main loop). */
export class ContinueAsNewNow extends Error {
  override readonly name = 'ContinueAsNewNow';
}

/** Thrown out of a parked step when the conversation has had no event for the idle timeout. */
export class IdleWhileParked extends Error {
  override readonly name = 'IdleWhileParked';
  constructor(readonly step: string) {
    super(`no event for the idle timeout while the step '${step}' was parked`);
  }
}

export interface StepOptions<T> {
  /** What the step answers when an operator gives it up; without it the step cannot be skipped. */
  onSkip?: (reason: string) => T;
  /** False: a failure is thrown to the caller instead of parking (it has a finer way to go on). */
  park?: boolean;
  /** A step of continue-as-new itself: it does not give way to continue-as-new. */
  partOfContinueAsNew?: boolean;
  /**
   * The activity under way is awaited even when continue-as-new falls due (a send must never be
   * abandoned mid-way); only a parked step gives way.
   */
  finishInFlight?: boolean;
}

type Command = { kind: 'resume' } | { kind: 'skip'; reason: string };

/** Skipped steps kept in the state. */
const MAX_SKIPPED = 50;

/**
 * Runs the conversation's steps. Transient failures are retried by Temporal (the retry policies);
 * a failure that Temporal gives up on parks the step, visible in the state query, until an
 * operator resumes or skips it, or the next periodic try. While a step waits, the conversation
 * still ends at its idle timeout, and the history still continues-as-new when it grows large.
 */
export class Steps {
  /**
   * Steps parked now, oldest first, each with the operator's command once given. More than one
   * when independent lanes of the conversation (messages, agent replies) park at the same time.
   */
  private readonly parkedNow: { name: string; skippable: boolean; command: Command | null }[] = [];

  constructor(
    private readonly conversation: ConversationRun,
    private readonly parkedRetryEvery: Duration,
    /**
     * Runs with the `attention` patch (asked with the run's other patches, docs/decisions/0016 and
     * 0027): a parked step is listed among the conversations that need attention (a local activity
     * on the store, best effort), and unlisted once it succeeds or is skipped. Runs recorded before
     * it issue no such command.
     */
    private readonly attention: boolean,
    private readonly wake: {
      /** Workflow time at which the conversation counts as idle. */
      idleAt: () => number;
      continueAsNew: () => boolean;
      /** A skipped step is also written on the case as a note (best effort, never parks). */
      onSkipped: (step: string, reason: string) => Promise<void>;
    },
  ) {}

  private readonly attentionNotes = attentionStore();

  /** Sets or clears the conversation's `step_parked` (best effort: a failure is only noted). */
  private async noteAttention(n: Pick<AttentionNote, 'set' | 'clear'>): Promise<void> {
    if (!this.attention) return;
    const { state } = this.conversation;
    try {
      await this.attentionNotes.noteAttention({ orgId: state.orgId, sessionId: state.sessionId, ...n });
    } catch {
      log.warn('could not update the conversation among those that need attention', {
        orgId: state.orgId,
        sessionId: state.sessionId,
      });
    }
  }

  /** The step that parked is done (succeeded, or given up): unlisted unless another step is still parked. */
  private async unparked(): Promise<void> {
    if (this.parkedNow.length === 0) await this.noteAttention({ clear: ['step_parked', 'step_retrying'] });
  }

  /** The parked step (the oldest, when several are), if any. */
  get parked(): { name: string; skippable: boolean } | null {
    const p = this.parkedNow[0];
    return p ? { name: p.name, skippable: p.skippable } : null;
  }

  validateResume(): void {
    if (this.parkedNow.length === 0)
      throw ApplicationFailure.create({ type: NOTHING_PARKED, message: 'No step is parked' });
  }

  validateSkip(reason: string): void {
    this.validateResume();
    if (!this.parkedNow.some((p) => p.skippable)) {
      throw ApplicationFailure.create({
        type: STEP_NOT_SKIPPABLE,
        message: `The step '${this.parkedNow[0]!.name}' cannot be given up: the conversation cannot go on without it. Fix the cause and resume.`,
      });
    }
    if (!reason.trim())
      throw ApplicationFailure.create({ type: 'InvalidReason', message: 'reason is required' });
  }

  /** Tries every parked step again now. */
  resume(): { step: string } {
    for (const p of this.parkedNow) p.command = { kind: 'resume' };
    return { step: this.parkedNow.map((p) => p.name).join(', ') };
  }

  /** Gives up the oldest parked step that can be given up. */
  skip(reason: string): { step: string } {
    const p = this.parkedNow.find((x) => x.skippable);
    if (p) p.command = { kind: 'skip', reason: reason.trim().slice(0, 500) };
    return { step: p?.name ?? '' };
  }

  /**
   * Runs `fn` until it succeeds, parking on failures Temporal gives up on. `fn(again)`: `again` is
   * true from the second try of the step on, when the activity must look before it writes.
   */
  async run<T>(name: string, fn: (again: boolean) => Promise<T>, o: StepOptions<T> = {}): Promise<T> {
    const { state } = this.conversation;
    let again = false;
    for (;;) {
      try {
        const result =
          o.partOfContinueAsNew || o.finishInFlight
            ? await fn(again)
            : await this.unlessContinueAsNew(fn(again));
        // Parked in this run, or in the run before continue-as-new (the state carries lastError).
        const wasParked = again || state.lastError?.step === name;
        if (state.lastError?.step === name) state.lastError = null;
        if (wasParked) await this.unparked();
        return result;
      } catch (err) {
        if (!isActivityFailure(err) || o.park === false) throw err;
        const cause = err instanceof ActivityFailure ? err.cause : err;
        const type =
          cause instanceof ApplicationFailure
            ? (cause.type ?? 'ApplicationFailure')
            : (cause?.name ?? 'Error');
        const skippable = o.onSkip !== undefined;
        state.lastError = {
          step: name,
          type,
          message: cause?.message ?? err.message,
          at: new Date().toISOString(),
          parked: true,
          skippable,
        };
        metricMeter
          .createCounter('bridge_steps_parked', 'steps', 'Conversation steps parked until fixed')
          .add(1, { error_type: type });
        log.warn('conversation step failed; parked until fixed', {
          orgId: state.orgId,
          sessionId: state.sessionId,
          step: name,
          type,
        });
        const detail = `${name}: ${type}: ${state.lastError.message}`;
        const command = await this.parkedWait(name, skippable, o.partOfContinueAsNew !== true, () =>
          this.noteAttention({ set: { kind: 'step_parked', detail } }),
        );
        if (command?.kind === 'skip' && o.onSkip) {
          state.lastError = null;
          this.record(name, command.reason);
          await this.unparked();
          await this.wake.onSkipped(name, command.reason);
          return o.onSkip(command.reason);
        }
        state.lastError.parked = false;
        again = true;
      }
    }
  }

  /** Waits while parked; answers the operator's command, or null for the periodic try. */
  private async parkedWait(
    name: string,
    skippable: boolean,
    yieldToContinueAsNew: boolean,
    /** Once the step is parked (and can take a command): lists it among those that need attention. */
    onParked: () => Promise<void>,
  ): Promise<Command | null> {
    const continueAsNew = () => yieldToContinueAsNew && this.wake.continueAsNew();
    const entry: { name: string; skippable: boolean; command: Command | null } = {
      name,
      skippable,
      command: null,
    };
    this.parkedNow.push(entry);
    const received = (): Command | null => entry.command;
    try {
      await onParked();
      const until = Math.min(msToNumber(this.parkedRetryEvery), this.wake.idleAt() - Date.now());
      await condition(() => received() !== null || continueAsNew(), Math.max(1, until));
      const command = received();
      if (command) return command;
      if (continueAsNew()) throw new ContinueAsNewNow();
      if (Date.now() >= this.wake.idleAt()) throw new IdleWhileParked(name);
      return null;
    } finally {
      this.parkedNow.splice(this.parkedNow.indexOf(entry), 1);
    }
  }

  private record(step: string, reason: string): void {
    const { state } = this.conversation;
    state.skipped ??= [];
    state.skipped.push({ step, reason, at: new Date().toISOString() });
    if (state.skipped.length > MAX_SKIPPED) state.skipped.shift();
  }

  /**
   * The activity's result; but if the history must continue-as-new first (a long outage while
   * events keep arriving), gives up waiting and says so: the next run does the step again.
   */
  private async unlessContinueAsNew<T>(p: Promise<T>): Promise<T> {
    let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
    p.then(
      (value) => (outcome = { ok: true, value }),
      (error: unknown) => (outcome = { ok: false, error }),
    );
    await condition(() => outcome !== undefined || this.wake.continueAsNew());
    if (!outcome) throw new ContinueAsNewNow();
    if (outcome.ok) return outcome.value;
    throw outcome.error;
  }
}
