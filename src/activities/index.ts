import { ApplicationFailure, Context } from '@temporalio/activity';
import { CreatioClient, identityServiceUrlFor, odataString, type Entity } from '../creatio/client';
import { activityIdFor, caseIdFor, contactIdFor } from '../ids';
import type { Store } from '../store';
import { conversationWorkflowId, type Attachment, type Author, type Contact } from '../workflows/messages';
import { OpenCXClient } from '../opencx/client';
import type { LlmConfig } from '../llm/client';
import { LlmError } from '../llm/client';
import { evaluateAiFields, type AiFieldOutcome } from './ai-fields';
import { withFailures, OrgNotConnectedError } from './failures';
import {
  DEFAULT_REPLY_LIMITS,
  deliver,
  fetchReplies,
  type AgentReply,
  type OrgContext,
  type ReplyLimits,
  type ReplyPage,
} from './agent-replies';

export type { AgentReply, ReplyPage } from './agent-replies';
import {
  BRIDGE_MARKER,
  caseSubject,
  handoffDescription,
  handoffNoteBody,
  htmlText,
  messageBody,
  messageTitle,
  sessionLinkBody,
} from './format';

export interface ActivityDeps {
  store: Store;
  /** OpenAI-compatible endpoint for AI fields; absent → AI fields are skipped with that reason. */
  llm?: LlmConfig;
  /** Characters of transcript sent to the LLM, counted from the most recent end. */
  aiTranscriptBudgetChars?: number;
  creatioTimeoutMs: number;
  /** Link to the session in the OpenCX dashboard; `{sessionId}` is replaced. */
  opencxSessionUrlTemplate: string;
  onCreatioRequest?: (orgId: string) => void;
  /** Attachment links on loopback http (emulators, development); production keeps https only. */
  allowLoopbackHttpLinks?: boolean;
  /** Agent-reply look-back window and attachment caps (defaults in agent-replies.ts). */
  replyLimits?: Partial<ReplyLimits>;
}

/** What the workflow needs to know of the settings at each step (no secrets). */
export interface ConversationSettings {
  createCaseOnlyOnHandoff: boolean;
}

export type LogEntry =
  | { kind: 'session_link'; contact: Contact; channel: string; timestamp: string }
  | {
      kind: 'message';
      messageId: string;
      author: Author;
      text: string;
      attachments: Attachment[];
      agentName?: string;
      timestamp: string;
    }
  | {
      kind: 'handoff_note';
      reason: string;
      summary: string;
      language: string;
      sentiment: string;
      timestamp: string;
    }
  | { kind: 'note'; key: string; title: string; text: string; timestamp: string };

export interface EnsureCaseInput {
  orgId: string;
  sessionId: string;
  contact: Contact;
  channel: string;
  description: string;
  registeredOn: string;
}

/** Out-of-the-box lookup ids, used when a tenant's lookup cannot be found by name. */
const DEFAULT_IDS = {
  activityTypeTask: 'fbe0acdc-cfc0-df11-b00f-001d60e938c6',
  activityCategoryToDo: 'f51c4643-58e6-df11-971b-001d60e938c6',
  activityStatusCompleted: '4bdbb88f-58e6-df11-971b-001d60e938c6',
};

const isRetry = () => Context.current().info.attempt > 1;

/**
 * The bridge's side effects, built with their dependencies (the worker wires real ones). Every
 * Creatio write uses a deterministic id; on a retry it first reads that id, so a write whose first
 * attempt did land (but whose answer was lost) is never made twice.
 */
export function createActivities(deps: ActivityDeps) {
  const replyLimits: ReplyLimits = { ...DEFAULT_REPLY_LIMITS, ...deps.replyLimits };
  const clients = new Map<
    string,
    { version: string; client: CreatioClient; lookups: Map<string, Promise<string | undefined>> }
  >();

  async function org(orgId: string): Promise<OrgContext> {
    const stored = await deps.store.getOrg(orgId);
    if (!stored) throw new OrgNotConnectedError(orgId);
    const s = stored.settings;
    const version = `${stored.updatedAt.toISOString()}`;
    let entry = clients.get(orgId);
    if (!entry || entry.version !== version) {
      entry = {
        version,
        client: new CreatioClient(
          {
            instanceUrl: s.instanceUrl,
            identityServiceUrl: identityServiceUrlFor(s.instanceUrl, s.identityServiceUrl),
            clientId: s.clientId,
            clientSecret: s.clientSecret,
          },
          { timeoutMs: deps.creatioTimeoutMs, onRequest: () => deps.onCreatioRequest?.(orgId) },
        ),
        lookups: new Map(),
      };
      clients.set(orgId, entry);
    }
    const { client, lookups } = entry;
    const lookup = (set: string, name: string) => {
      const key = `${set}:${name}`;
      let p = lookups.get(key);
      if (!p) {
        p = client.findByName(set, name).then((rows) => rows[0]?.Id);
        p.catch(() => lookups.delete(key));
        lookups.set(key, p);
      }
      return p;
    };
    return { settings: s, client, lookup };
  }

  async function opencx(orgId: string): Promise<OpenCXClient> {
    const stored = await deps.store.getOrg(orgId);
    if (!stored) throw new OrgNotConnectedError(orgId);
    const { apiBaseUrl, apiKey } = stored.settings.opencx;
    if (!apiKey) throw new OrgNotConnectedError(orgId, 'has no OpenCX API key');
    return new OpenCXClient(apiBaseUrl, apiKey, deps.creatioTimeoutMs);
  }

  /** Creates a record under a known id; with `verify` (a retry), finds it first. True if it existed. */
  async function createOnce(
    client: CreatioClient,
    set: string,
    id: string,
    verify: boolean,
    body: Record<string, unknown>,
  ): Promise<boolean> {
    if (verify && (await client.find(set, id, ['Id']))) return true;
    await client.create(set, { Id: id, ...body });
    return false;
  }

  async function linkContact(client: CreatioClient, orgId: string, c: Contact): Promise<string | undefined> {
    const filters: string[] = [];
    if (c.email) filters.push(`Email eq ${odataString(c.email)}`);
    if (c.phone) filters.push(`Phone eq ${odataString(c.phone)}`, `MobilePhone eq ${odataString(c.phone)}`);
    if (filters.length === 0) return undefined;
    const found = await client.list('Contact', { select: ['Id'], filter: filters.join(' or '), top: 1 });
    if (found[0]) return found[0].Id;
    const id = contactIdFor(orgId, c.email ?? c.phone!);
    await createOnce(client, 'Contact', id, isRetry(), {
      Name: (c.name || c.email || c.phone)!.slice(0, 250),
      ...(c.email && { Email: c.email }),
      ...(c.phone && { Phone: c.phone }),
    });
    return id;
  }

  /** Formats one entry and writes it under its deterministic id; with `verify`, looks for it first. */
  async function writeEntry(
    o: Awaited<ReturnType<typeof org>>,
    at: { orgId: string; sessionId: string; caseId: string },
    e: LogEntry,
    verify: boolean,
  ): Promise<{ id: string; existed: boolean }> {
    const key =
      e.kind === 'message' ? `message:${e.messageId}` : e.kind === 'note' ? `note:${e.key}` : e.kind;
    const id = activityIdFor(at.orgId, at.sessionId, key);
    let title: string;
    let body: string;
    switch (e.kind) {
      case 'session_link':
        title = `${BRIDGE_MARKER} Conversation started: View session in OpenCX`;
        body = sessionLinkBody(
          deps.opencxSessionUrlTemplate.replace('{sessionId}', encodeURIComponent(at.sessionId)),
          at.sessionId,
          e.contact,
          e.channel,
        );
        break;
      case 'message':
        title = messageTitle(e.author, e.text, e.agentName);
        body = messageBody({ ...e, allowLoopbackHttp: deps.allowLoopbackHttpLinks ?? false });
        break;
      case 'handoff_note':
        title = `${BRIDGE_MARKER} Handed off to a human agent${e.reason ? `: ${e.reason}` : ''}`.slice(
          0,
          250,
        );
        body = handoffNoteBody(e);
        break;
      case 'note':
        title = `${BRIDGE_MARKER} ${e.title}`.slice(0, 250);
        body = htmlText(e.text);
        break;
    }
    const [typeId, categoryId, statusId] = await Promise.all([
      o.lookup('ActivityType', 'Task'),
      o.lookup('ActivityCategory', 'To do'),
      o.lookup('ActivityStatus', 'Completed'),
    ]);
    const when = new Date(e.timestamp).toISOString();
    // The handoff note has one id per conversation: a second handoff finds the first note.
    const once = e.kind === 'handoff_note';
    const existed = await createOnce(o.client, 'Activity', id, verify || once, {
      CaseId: at.caseId,
      Title: title,
      Body: body,
      TypeId: typeId ?? DEFAULT_IDS.activityTypeTask,
      ActivityCategoryId: categoryId ?? DEFAULT_IDS.activityCategoryToDo,
      StatusId: statusId ?? DEFAULT_IDS.activityStatusCompleted,
      StartDate: when,
      DueDate: when,
    });
    return { id, existed };
  }

  return {
    /** Local activity: the settings the workflow decides by, read fresh at every step. */
    async getConversationSettings(orgId: string): Promise<ConversationSettings> {
      return withFailures(async () => {
        const stored = await deps.store.getOrg(orgId);
        if (!stored) throw new OrgNotConnectedError(orgId);
        return { createCaseOnlyOnHandoff: stored.settings.createCaseOnlyOnHandoff };
      });
    },

    /** Creates the case of a conversation (at most once, ever) and records the case ⇄ session map. */
    async ensureCase(input: EnsureCaseInput): Promise<{ caseId: string; caseNumber: string | null }> {
      return withFailures(async () => {
        const { settings, client, lookup } = await org(input.orgId);
        const caseId = caseIdFor(input.orgId, input.sessionId);
        // The map comes first: a Creatio process may call the webhook the moment the case exists.
        const mapped = await deps.store.findSessionByCase(input.orgId, caseId);
        if (!mapped) {
          await deps.store.putCaseSession({
            orgId: input.orgId,
            caseId,
            sessionId: input.sessionId,
            workflowId: conversationWorkflowId(input.orgId, input.sessionId),
          });
        }
        let existing: Entity | undefined;
        if (isRetry() || mapped) existing = await client.getCase(caseId, ['Id', 'Number']);
        let number = typeof existing?.Number === 'string' ? existing.Number : '';
        if (!existing) {
          const contactId = await linkContact(client, input.orgId, input.contact);
          const originId = await lookup('CaseOrigin', input.channel === 'email' ? 'Email' : 'Chat');
          const created = await client.create('Case', {
            Id: caseId,
            Subject: caseSubject(input.channel, input.contact, input.sessionId),
            Symptoms: input.description,
            Notes: `OpenCX session: ${input.sessionId}`,
            RegisteredOn: new Date(input.registeredOn).toISOString(),
            ...(contactId && { ContactId: contactId }),
            ...(originId && { OriginId: originId }),
            ...(settings.defaultCaseOwnerId && { OwnerId: settings.defaultCaseOwnerId }),
            ...(settings.defaultCaseGroupId && { GroupId: settings.defaultCaseGroupId }),
          });
          number = typeof created.Number === 'string' ? created.Number : '';
        }
        return { caseId, caseNumber: number || null };
      });
    },

    /** Writes one activity on the case, exactly once (deterministic id per entry). */
    async logEntry(input: {
      orgId: string;
      sessionId: string;
      caseId: string;
      entry: LogEntry;
    }): Promise<string> {
      return withFailures(async () => {
        const written = await writeEntry(await org(input.orgId), input, input.entry, isRetry());
        return written.id;
      });
    },

    /**
     * Writes several entries in order, in one activity. Progress is heartbeated; a retry first
     * finds where the previous attempt stopped (entries are written strictly in order, so the
     * first one missing in Creatio is where to resume) and writes the rest without reads.
     */
    async logEntries(input: {
      orgId: string;
      sessionId: string;
      caseId: string;
      entries: LogEntry[];
    }): Promise<number> {
      return withFailures(async () => {
        const o = await org(input.orgId);
        const ctx = Context.current();
        let done = Number(ctx.info.heartbeatDetails ?? 0) || 0;
        let verify = isRetry();
        for (; done < input.entries.length; done++) {
          const written = await writeEntry(o, input, input.entries[done]!, verify);
          if (verify && !written.existed) verify = false;
          ctx.heartbeat(done + 1);
        }
        return done;
      });
    },

    /**
     * Agent replies on the case since the cursor (less the look-back window), oldest first, read
     * with an OData filter and paged: a case with thousands of activities costs a few requests.
     */
    async fetchAgentReplies(input: {
      orgId: string;
      caseId: string;
      since: string | null;
      /** Replies already delivered inside the look-back window: not returned again. */
      delivered?: string[];
      lookbackMs?: number;
    }): Promise<ReplyPage> {
      return withFailures(async () =>
        fetchReplies(await org(input.orgId), input, {
          ...replyLimits,
          lookbackMs: input.lookbackMs ?? replyLimits.lookbackMs,
        }),
      );
    },

    /**
     * Delivers an agent reply to the customer through OpenCX, taking the session over from the AI.
     * A retry (or a step tried again) first asks OpenCX whether an earlier attempt got through.
     */
    async deliverReply(input: {
      orgId: string;
      sessionId: string;
      reply: AgentReply;
      verify?: boolean;
      firstTriedAt: string;
    }): Promise<{ sent: boolean; omittedAttachments: string[] }> {
      return withFailures(async () =>
        deliver(
          await org(input.orgId),
          await opencx(input.orgId),
          { ...input, verify: input.verify === true || isRetry() },
          replyLimits,
        ),
      );
    },

    /** The case's status name, and whether it is one of the organization's closure statuses (exact match). */
    async readCaseStatus(input: {
      orgId: string;
      caseId: string;
    }): Promise<{ name: string; closes: boolean; closureStatusNames: string[]; modifiedOn: string | null }> {
      return withFailures(async () => {
        const { settings, client } = await org(input.orgId);
        const c = await client.getCase<Entity & { StatusId: string; ModifiedOn?: string }>(input.caseId, [
          'Id',
          'StatusId',
          'ModifiedOn',
        ]);
        const status = c && (await client.getCaseStatus(c.StatusId));
        const name = status?.Name ?? '';
        return {
          name,
          modifiedOn: c?.ModifiedOn ?? null,
          closes: settings.closureStatusNames.includes(name),
          closureStatusNames: settings.closureStatusNames,
        };
      });
    },

    /** Resolves the OpenCX session (closed_resolved). */
    async resolveSession(input: { orgId: string; sessionId: string }): Promise<void> {
      return withFailures(async () => {
        await (await opencx(input.orgId)).resolveSession(input.sessionId);
      });
    },

    /** Evaluates the organization's AI fields from the transcript (one structured LLM call). */
    async evaluateAiFields(input: {
      orgId: string;
      transcript: string;
    }): Promise<{ outcomes: AiFieldOutcome[]; patch: Record<string, unknown> }> {
      return withFailures(async () => {
        const { settings, client } = await org(input.orgId);
        try {
          return await evaluateAiFields({
            client,
            mappings: settings.aiFields,
            llm: deps.llm,
            transcript: input.transcript,
            budgetChars: deps.aiTranscriptBudgetChars ?? 12_000,
          });
        } catch (err) {
          if (err instanceof LlmError) {
            throw ApplicationFailure.create({
              type: err.name,
              message: err.message,
              nonRetryable: !err.retryable,
              ...(err.retryAfterMs !== undefined && { nextRetryDelay: err.retryAfterMs }),
            });
          }
          throw err;
        }
      });
    },

    /** Writes the AI field values in their own PATCH, after the case exists. */
    async writeAiFields(input: {
      orgId: string;
      caseId: string;
      patch: Record<string, unknown>;
    }): Promise<void> {
      return withFailures(async () => {
        const { client } = await org(input.orgId);
        await client.update('Case', input.caseId, input.patch);
      });
    },

    /** Writes the handoff summary, language, sentiment and reason into the case description. */
    async applyHandoff(input: {
      orgId: string;
      caseId: string;
      summary: string;
      language: string;
      sentiment: string;
      reason: string;
    }): Promise<void> {
      return withFailures(async () => {
        const { client } = await org(input.orgId);
        await client.update('Case', input.caseId, { Symptoms: handoffDescription(input) });
      });
    },

    /**
     * OpenCX resolved the conversation: set the Resolved Status ID. Skipped (with the reason) when
     * none is configured, or when the case already has a final status.
     */
    async resolveCase(input: { orgId: string; caseId: string }): Promise<{ done: boolean; reason?: string }> {
      return withFailures(async () => {
        const { settings, client } = await org(input.orgId);
        if (!settings.resolvedStatusId) {
          return { done: false, reason: 'no Resolved Status ID is configured for this organization' };
        }
        const current = await client.getCase<Entity & { StatusId: string }>(input.caseId, ['Id', 'StatusId']);
        if (current?.StatusId === settings.resolvedStatusId) return { done: true };
        const status = current && (await client.getCaseStatus(current.StatusId));
        if (status?.IsFinal) {
          return { done: false, reason: `the case already has the final status "${status.Name}"` };
        }
        await client.update('Case', input.caseId, { StatusId: settings.resolvedStatusId });
        return { done: true };
      });
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
