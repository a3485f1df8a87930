import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type {
  AiFieldsActivities,
  CreatioActivities,
  OpenCXActivities,
  SettingsActivities,
} from '../../activities';
import { REPLY_DEFAULTS, type ConversationOptions } from '../contract';
import {
  aiFieldsActivityOptions,
  creatioActivityOptions,
  settingsActivityOptions,
  opencxActivityOptions,
} from '../retry-policies';
import { creatioTaskQueue, opencxTaskQueue } from '../task-queues';

/**
 * The conversation's activities, one proxy per peer, each typed with that peer's activities only
 * and carrying that peer's retry options (src/workflows/retry-policies.ts).
 */
export function peers(orgId: string, options: ConversationOptions) {
  const creatioQueue = creatioTaskQueue(options.taskQueue, orgId);
  return {
    creatio: proxyActivities<CreatioActivities>(
      creatioActivityOptions(creatioQueue, options.creatioRetryFor, options.creatioRetryMaxInterval),
    ),
    opencx: proxyActivities<OpenCXActivities>(
      opencxActivityOptions(
        opencxTaskQueue(options.taskQueue, orgId),
        options.creatioRetryFor,
        options.creatioRetryMaxInterval,
        options.opencxAttemptTimeout ?? REPLY_DEFAULTS.opencxAttemptTimeout,
      ),
    ),
    /** Notes about the conversation itself (a skipped step): a few minutes of tries, never parked. */
    creatioNote: proxyActivities<CreatioActivities>(
      creatioActivityOptions(creatioQueue, '2 minutes', options.creatioRetryMaxInterval),
    ),
    ai: proxyActivities<AiFieldsActivities>(aiFieldsActivityOptions(creatioQueue, options.aiFieldsDeadline)),
    settings: proxyLocalActivities<SettingsActivities>(settingsActivityOptions),
  };
}

export type Peers = ReturnType<typeof peers>;
