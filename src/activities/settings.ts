/** Reads of the bridge's own store that the workflow decides by (local activities: no secrets out). */
import type { OrgContexts } from './context';
import { withFailures } from './failures';

/** What the workflow needs to know of the settings at each step (no secrets). */
export interface ConversationSettings {
  createCaseOnlyOnHandoff: boolean;
  afterClose: 'log' | 'reopen';
}

export function createSettingsActivities(orgs: OrgContexts) {
  return {
    /** The settings the workflow decides by, read fresh at every step. */
    async getConversationSettings(orgId: string): Promise<ConversationSettings> {
      return withFailures(async () => {
        const stored = await orgs.settings(orgId);
        const { createCaseOnlyOnHandoff, afterClose } = stored.settings;
        return { createCaseOnlyOnHandoff, afterClose };
      });
    },

    /** The case a conversation already has (an event arrived after its workflow had finished). */
    async findCase(input: { orgId: string; sessionId: string }): Promise<{ caseId: string } | null> {
      return withFailures(async () => {
        const found = await orgs.deps.store.findCaseBySession(input.orgId, input.sessionId);
        return found ? { caseId: found.caseId } : null;
      });
    },
  };
}

export type SettingsActivities = ReturnType<typeof createSettingsActivities>;
