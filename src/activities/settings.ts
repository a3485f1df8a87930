/** Reads of the bridge's own store that the workflow decides by (local activities: no secrets out). */
import type { OrgContexts } from './context';
import { withFailures } from './failures';

/** What the workflow needs to know of the settings at each step (no secrets). */
export interface ConversationSettings {
  createCaseOnlyOnHandoff: boolean;
}

export function createSettingsActivities(orgs: OrgContexts) {
  return {
    /** The settings the workflow decides by, read fresh at every step. */
    async getConversationSettings(orgId: string): Promise<ConversationSettings> {
      return withFailures(async () => {
        const stored = await orgs.settings(orgId);
        return { createCaseOnlyOnHandoff: stored.settings.createCaseOnlyOnHandoff };
      });
    },
  };
}

export type SettingsActivities = ReturnType<typeof createSettingsActivities>;
