/**
 * The bridge's side effects, grouped by the peer they talk to: Creatio, OpenCX, the LLM (AI
 * fields) and the bridge's own store. Creatio and OpenCX run on their own task queues, the store
 * reads and the first tries of short Creatio writes as local activities of the workflow worker
 * (src/worker.ts); each group is called through its own proxy and retry options
 * (src/workflows/conversation/peers.ts); all share one per-organization context.
 */
import { createAiFieldsActivities } from './ai-fields';
import { AttentionWriter, createAttentionActivities, watchAttempts } from './attention';
import { OrgContexts, type ActivityDeps } from './context';
import { createCreatioActivities } from './creatio';
import { createOpenCXActivities } from './opencx';
import { createStoreActivities } from './store';

export type { ActivityDeps } from './context';
export type { AgentReply, ReplyPage } from './agent-replies';
export type { AiFieldsActivities } from './ai-fields';
export type { AttentionActivities, AttentionNote } from './attention';
export type { CreatioActivities, EnsureCaseInput } from './creatio';
export type { OpenCXActivities } from './opencx';
export type { ConversationSettings, StoreActivities } from './store';

export function createActivities(deps: ActivityDeps) {
  const orgs = new OrgContexts(deps);
  // An activity that keeps failing is listed among the conversations that need attention.
  const attention = new AttentionWriter(deps.store);
  return {
    creatio: watchAttempts(createCreatioActivities(orgs), attention),
    opencx: watchAttempts(createOpenCXActivities(orgs), attention),
    aiFields: watchAttempts(createAiFieldsActivities(orgs), attention),
    // The attention notes run as local activities beside the store reads.
    store: { ...createStoreActivities(orgs), ...createAttentionActivities(orgs) },
  };
}

export type BridgeActivities = ReturnType<typeof createActivities>;
