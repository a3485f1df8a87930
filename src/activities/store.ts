/**
 * The workflow's local activities on the bridge's own store: the settings it decides by (no
 * secrets out), the case a conversation already has, and the events it spills at continue-as-new.
 */
import type { ConversationEvent } from '../workflows/contract';
import type { OrgContexts } from './context';
import { withFailures } from './failures';

/** What the workflow needs to know of the settings at each step (no secrets). */
export interface ConversationSettings {
  createCaseOnlyOnHandoff: boolean;
  afterClose: 'log' | 'reopen';
}

export function createStoreActivities(orgs: OrgContexts) {
  return {
    /** The settings the workflow decides by, read fresh at every step. */
    async getConversationSettings(orgId: string): Promise<ConversationSettings> {
      return withFailures(async () => {
        const stored = await orgs.settings(orgId);
        const { createCaseOnlyOnHandoff, afterClose } = stored.settings;
        return { createCaseOnlyOnHandoff, afterClose };
      });
    },

    /** Keeps events the run cannot carry (continue-as-new input is limited to 2 MB). */
    async spillEvents(input: {
      workflowId: string;
      chunk: number;
      events: ConversationEvent[];
    }): Promise<void> {
      return withFailures(() =>
        orgs.deps.store.putSpill(input.workflowId, input.chunk, JSON.stringify(input.events)),
      );
    },

    async loadSpill(input: { workflowId: string; chunk: number }): Promise<ConversationEvent[]> {
      return withFailures(async () => {
        const json = await orgs.deps.store.getSpill(input.workflowId, input.chunk);
        if (json === undefined)
          throw new Error(`spilled chunk ${input.chunk} of ${input.workflowId} is missing`);
        return JSON.parse(json) as ConversationEvent[];
      });
    },

    async dropSpill(input: { workflowId: string; chunks: number[] }): Promise<void> {
      return withFailures(() => orgs.deps.store.dropSpill(input.workflowId, input.chunks));
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

export type StoreActivities = ReturnType<typeof createStoreActivities>;
