import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type {
  AiFieldsActivities,
  AttentionActivities,
  CreatioActivities,
  OpenCXActivities,
  StoreActivities,
} from '../../activities';
import { REPLY_DEFAULTS, type ConversationOptions } from '../contract';
import {
  aiFieldsActivityOptions,
  creatioActivityOptions,
  creatioFirstTryOptions,
  storeActivityOptions,
  opencxActivityOptions,
  opencxReadActivityOptions,
} from '../retry-policies';
import { creatioTaskQueue, opencxTaskQueue } from '../task-queues';

/**
 * The conversation's activities, one proxy per peer, each typed with that peer's activities only
 * and carrying that peer's retry options (src/workflows/retry-policies.ts).
 */
export function peers(orgId: string, options: ConversationOptions) {
  const creatioQueue = creatioTaskQueue(options.taskQueue);
  // The task queues are shared by every organization: the fairness key lets a server with task
  // queue fairness dispatch each organization's backlog in turn.
  const fair = <T extends object>(o: T) => ({ ...o, priority: { fairnessKey: orgId } });
  return {
    creatio: proxyActivities<CreatioActivities>(
      fair(creatioActivityOptions(creatioQueue, options.creatioRetryFor, options.creatioRetryMaxInterval)),
    ),
    opencx: proxyActivities<OpenCXActivities>(
      fair(
        opencxActivityOptions(
          opencxTaskQueue(options.taskQueue),
          options.creatioRetryFor,
          options.creatioRetryMaxInterval,
          options.opencxAttemptTimeout ?? REPLY_DEFAULTS.opencxAttemptTimeout,
        ),
      ),
    ),
    /** Reads of OpenCX the conversation can do without for a while (the history check). */
    opencxRead: proxyActivities<Pick<OpenCXActivities, 'readHistory'>>(
      fair(
        opencxReadActivityOptions(
          opencxTaskQueue(options.taskQueue),
          options.opencxAttemptTimeout ?? REPLY_DEFAULTS.opencxAttemptTimeout,
        ),
      ),
    ),
    /** Notes about the conversation itself (a skipped step): a few minutes of tries, never parked. */
    creatioNote: proxyActivities<CreatioActivities>(
      fair(creatioActivityOptions(creatioQueue, '2 minutes', options.creatioRetryMaxInterval)),
    ),
    /** The first try of a short write, in this worker (see creatioFirstTryOptions). */
    creatioFirstTry:
      proxyLocalActivities<Pick<CreatioActivities, 'ensureCase' | 'openCase' | 'logEntry' | 'logEntries'>>(
        creatioFirstTryOptions,
      ),
    ai: proxyActivities<AiFieldsActivities>(
      fair(aiFieldsActivityOptions(creatioQueue, options.aiFieldsDeadline)),
    ),
    /** Reads and writes of the bridge's own store (local activities). */
    store: proxyLocalActivities<StoreActivities>(storeActivityOptions),
  };
}

export type Peers = ReturnType<typeof peers>;

/**
 * The conversation's attention notes on the store (a local activity): best effort, a few quick
 * tries only; a failure is noted by the caller and never parks (src/workflows/conversation/steps.ts).
 */
export function attentionStore() {
  return proxyLocalActivities<AttentionActivities>({
    startToCloseTimeout: '5 seconds',
    scheduleToCloseTimeout: '15 seconds',
    retry: { initialInterval: '200 milliseconds', backoffCoefficient: 2, maximumAttempts: 3 },
  });
}
