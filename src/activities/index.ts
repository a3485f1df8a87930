/**
 * The bridge's side effects, grouped by the peer they talk to. Each group runs on its own task
 * queue (src/worker.ts) and is called through its own proxy and retry options
 * (src/workflows/conversation/peers.ts); all share one per-organization context.
 */
import { createAiFieldsActivities } from './ai-fields';
import { OrgContexts, type ActivityDeps } from './context';
import { createCreatioActivities } from './creatio';
import { createOpenCXActivities } from './opencx';
import { createSettingsActivities } from './settings';

export type { ActivityDeps } from './context';
export type { AgentReply, ReplyPage } from './agent-replies';
export type { AiFieldsActivities } from './ai-fields';
export type { CreatioActivities, EnsureCaseInput } from './creatio';
export type { OpenCXActivities } from './opencx';
export type { ConversationSettings, SettingsActivities } from './settings';

export function createActivities(deps: ActivityDeps) {
  const orgs = new OrgContexts(deps);
  return {
    creatio: createCreatioActivities(orgs),
    opencx: createOpenCXActivities(orgs),
    aiFields: createAiFieldsActivities(orgs),
    settings: createSettingsActivities(orgs),
  };
}

export type BridgeActivities = ReturnType<typeof createActivities>;
