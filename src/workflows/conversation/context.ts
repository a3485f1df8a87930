import type { ConversationOptions } from '../contract';
import type { Peers } from './peers';
import type { ConversationRun, Timings } from './state';
import type { Steps } from './steps';
import type { ReplyLane } from './reply-lane';
import type { HistoryLane } from './history-lane';

/**
 * The patch a run of today's code records, alone, in place of one marker per flow: it stands for
 * every flow of `Conversation.flow`. A new flow gets a patch of its own (or a new name for this one)
 * so that runs recorded before it keep their commands (docs/decisions/0030-one-patch-and-spread-checks.md).
 */
export const CURRENT_FLOW = 'flow-2026-12-b';

/** The flow before CURRENT_FLOW: every flow of `Conversation.flow` but `carryMeasuredLast`. */
export const PREVIOUS_FLOW = 'flow-2026-12';

/** What every flow of one conversation works with. */
export interface Conversation {
  orgId: string;
  sessionId: string;
  options: ConversationOptions;
  run: ConversationRun;
  steps: Steps;
  peers: Peers;
  timings: Timings;
  /**
   * Which command sequences this run takes, decided by patched() at its very start, before any
   * other command (docs/decisions/0016-replay-and-patching.md).
   */
  flow: {
    oneTryCaseOpening: boolean;
    replyLane: boolean;
    historyCheck: boolean;
    /** The reply timer runs while the case is open, before a handoff too (not only after it). */
    replyTimerOpen: boolean;
    /** A second handoff does not overwrite AI fields an agent changed since the first. */
    aiFieldsKeepEdits: boolean;
    /**
     * What continue-as-new carries is measured in UTF-8 bytes (not characters), a failed clean-up of
     * stored events is never fatal, and events waiting at the idle timeout are kept (spill.ts).
     */
    carryBytes: boolean;
    /**
     * Before continue-as-new, what came in while the surplus was being stored is measured too, and
     * stored while the carry is over its budget (docs/decisions/0038-carry-measured-last.md).
     */
    carryMeasuredLast: boolean;
    /** A parked step is listed among the conversations that need attention (steps.ts). */
    attention: boolean;
    /** The reply and history checks wait `spread` times their interval (state.ts, checkSpread). */
    spreadChecks: boolean;
    /** The reply and history lanes start their loops at their first request, not with the run. */
    lanesWhenAsked: boolean;
    /** The main loop arms its wake timer only when it waits (no event queued). */
    armWhenIdle: boolean;
  };
  /**
   * How much longer than its base interval this conversation waits for its periodic checks (1 to
   * 1.25, fixed per conversation; 1 for runs without `spreadChecks`).
   */
  spread: number;
  /** Agent replies in a lane of their own (runs whose flow has `replyLane`); see reply-lane.ts. */
  replyLane?: ReplyLane;
  /** The check of the session's OpenCX history (runs whose flow has `historyCheck`); see history-lane.ts. */
  historyLane?: HistoryLane;
}
