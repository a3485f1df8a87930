import type { ConversationOptions } from '../contract';
import type { Peers } from './peers';
import type { ConversationRun, Timings } from './state';
import type { Steps } from './steps';
import type { ReplyLane } from './reply-lane';
import type { HistoryLane } from './history-lane';

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
  };
  /** Agent replies in a lane of their own (runs whose flow has `replyLane`); see reply-lane.ts. */
  replyLane?: ReplyLane;
  /** The check of the session's OpenCX history (runs whose flow has `historyCheck`); see history-lane.ts. */
  historyLane?: HistoryLane;
}
