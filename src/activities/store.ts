/**
 * The workflow's local activities on the bridge's own store: the settings it decides by (no
 * secrets out), the case a conversation already has, and the events it spills at continue-as-new.
 */
import type { ConversationEvent, HeldEvents } from '../workflows/contract';
import type { OrgContexts } from './context';
import { withFailures } from './failures';

/** What the workflow needs to know of the settings at each step (no secrets). */
export interface ConversationSettings {
  createCaseOnlyOnHandoff: boolean;
  afterClose: 'log' | 'reopen';
}

/** Where a finished conversation's list of waiting events is kept (see holdEvents). */
export const HELD_CHUNK = -1;

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

    /**
     * Keeps the list of a finished conversation's waiting events (their chunks are stored already)
     * for its next run. One per conversation, under chunk number -1 (event chunks count from 0).
     */
    async holdEvents(input: { workflowId: string; held: HeldEvents }): Promise<void> {
      return withFailures(() =>
        orgs.deps.store.putSpill(input.workflowId, HELD_CHUNK, JSON.stringify(input.held)),
      );
    },

    /**
     * What the conversation's last run kept for this one (null: nothing); only chunks still stored.
     * The list is taken by `runId` (a retry of the same run gets it again): a later run never
     * handles it a second time, even when the taking run could not delete it.
     */
    async findHeld(input: { workflowId: string; runId?: string }): Promise<HeldEvents | null> {
      return withFailures(async () => {
        const { store } = orgs.deps;
        const json = await store.getSpill(input.workflowId, HELD_CHUNK);
        if (json === undefined) return null;
        const held = JSON.parse(json) as HeldEvents;
        if (held.takenBy !== undefined && held.takenBy !== input.runId) {
          // Handled by an earlier run that could not delete it: nothing here is waiting any more.
          await store.dropSpill(input.workflowId, [...held.chunks, HELD_CHUNK]);
          return null;
        }
        // A list whose chunks were already read and deleted (its own deletion failed) holds nothing.
        const stored = new Set(await store.spillChunks(input.workflowId, held.chunks));
        const chunks = held.chunks.filter((c) => stored.has(c));
        if (chunks.length === 0) {
          await store.dropSpill(input.workflowId, [HELD_CHUNK]);
          return null;
        }
        if (input.runId !== undefined && held.takenBy === undefined) {
          await store.putSpill(
            input.workflowId,
            HELD_CHUNK,
            JSON.stringify({ ...held, takenBy: input.runId }),
          );
        }
        return { ...held, chunks };
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

export type StoreActivities = ReturnType<typeof createStoreActivities>;
