import { condition } from '@temporalio/workflow';
import type { Conversation } from './context';
import { LaneStart } from './lane-start';
import { deliverNewReplies, scheduleNextReplyCheck, type ReplySource } from './replies';
import { ContinueAsNewNow, IdleWhileParked } from './steps';

/** A webhook call is the strongest reason to read (it is evidence the process works), the timer the weakest. */
const RANK: Record<ReplySource, number> = { timer: 0, closure: 1, webhook: 2 };

/**
 * Agent replies as a lane of their own (docs/decisions/0019-reply-lane.md): reading Creatio for
 * replies and sending them to OpenCX runs beside the main loop, so a reply read that fails or is
 * parked never holds back customer messages, the handoff or the closure. Order is kept within the
 * lane: one read at a time, replies sent oldest first. Asks that arrive while a read waits or runs
 * are one more read (each read takes everything new since the cursor).
 */
export class ReplyLane {
  private readonly starts = new LaneStart(() => void this.loop());
  private wanted: ReplySource | null = null;
  private running = false;

  constructor(
    private readonly c: Conversation,
    private readonly continueAsNewDue: () => boolean,
  ) {}

  /** Asks for a read of the case's new agent replies. */
  request(source: ReplySource): void {
    if (this.wanted === null || RANK[source] > RANK[this.wanted]) this.wanted = source;
    this.starts.asked();
  }

  /** Nothing asked and nothing under way. */
  get idle(): boolean {
    return !this.running && this.wanted === null;
  }

  /** A read is under way (continue-as-new waits for it to finish or give way). */
  get busy(): boolean {
    return this.running;
  }

  /** A read asked but not done, for the next run to do first. */
  get pending(): ReplySource | null {
    return this.wanted;
  }

  /**
   * Runs the lane for the life of the run (never rejects: a failure is the step's, parked); with
   * `whenAsked`, from its first request on: until then it adds no promise and no condition to the
   * run's activations.
   */
  start(whenAsked = false): void {
    this.starts.start(whenAsked, this.wanted !== null);
  }

  private async loop(): Promise<void> {
    for (;;) {
      await condition(() => this.wanted !== null && !this.continueAsNewDue());
      const source = this.wanted!;
      this.wanted = null;
      this.running = true;
      try {
        const found = await deliverNewReplies(this.c, source, { continueAsNewDue: this.continueAsNewDue });
        const { replyCheck } = this.c.run;
        if (source === 'timer' || found > 0 || replyCheck.nextAt === null) {
          const { state } = this.c.run;
          if (state.status === 'open' && (state.handedOffAt || this.c.flow.replyTimerOpen)) {
            scheduleNextReplyCheck(this.c, found);
          }
        }
      } catch (err) {
        if (err instanceof ContinueAsNewNow) {
          // Read again first thing in the next run.
          this.request(source);
        } else if (err instanceof IdleWhileParked) {
          this.c.run.note(`${err.message}: agent replies were not read`);
        } else {
          throw err;
        }
      } finally {
        this.running = false;
      }
    }
  }
}
