import { ActivityFailure, ApplicationFailure, condition, log } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { ConversationRun } from './state';

/**
 * Runs the conversation's steps. Transient failures are retried by Temporal (the retry policies);
 * a failure that Temporal gives up on parks the step, visible in the state query, until a resume
 * signal or the next periodic try. The conversation waits rather than skipping data.
 */
export class Steps {
  private resumeRequested = false;

  constructor(
    private readonly conversation: ConversationRun,
    private readonly parkedRetryEvery: Duration,
  ) {}

  /** An operator (or the API) asked to try the parked step now. */
  resume(): void {
    this.resumeRequested = true;
  }

  async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const { state } = this.conversation;
    for (;;) {
      try {
        const result = await fn();
        if (state.lastError?.step === name) state.lastError = null;
        return result;
      } catch (err) {
        if (!(err instanceof ActivityFailure)) throw err;
        const cause = err.cause;
        const type =
          cause instanceof ApplicationFailure
            ? (cause.type ?? 'ApplicationFailure')
            : (cause?.name ?? 'Error');
        state.lastError = {
          step: name,
          type,
          message: cause?.message ?? err.message,
          at: new Date().toISOString(),
          parked: true,
        };
        log.warn('conversation step failed; parked until fixed', {
          orgId: state.orgId,
          sessionId: state.sessionId,
          step: name,
          type,
        });
        this.resumeRequested = false;
        await condition(() => this.resumeRequested, this.parkedRetryEvery);
        state.lastError.parked = false;
      }
    }
  }
}
