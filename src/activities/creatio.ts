/**
 * Activities that talk to the organization's Creatio: the case, its activities, its status, the
 * agent replies on it. Every write uses a deterministic id; on a retry it first reads that id, so a
 * write whose first attempt did land (but whose answer was lost) is never made twice.
 *
 * Over 300 lines on purpose: one factory holds every Creatio activity so that each shares the
 * look-before-write helpers and the failure mapping; the read of agent replies lives in
 * agent-replies.ts.
 */
import { CREATIO_IDS } from '../creatio/model';
import { Context } from '@temporalio/activity';
import { odataString, type CreatioClient, type Entity } from '../creatio/client';
import { CreatioError } from '../creatio/errors';
import { activityIdFor, caseIdFor, contactIdFor } from '../ids';
import { conversationWorkflowId, type Contact, type LogEntry } from '../workflows/contract';
import { DEFAULT_REPLY_LIMITS, fetchReplies, type OrgContext, type ReplyPage } from './agent-replies';
import { isRetry, type OrgContexts } from './context';
import { progress } from './heartbeat';
import { withFailures } from './failures';
import { caseSubject, entryContent, handoffDescription, htmlText } from './format';
import type { ContactMatching } from '../settings/schema';

export interface EnsureCaseInput {
  orgId: string;
  sessionId: string;
  contact: Contact;
  channel: string;
  description: string;
  registeredOn: string;
}

const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

/** Heartbeat details of ensureCase: what is done already. */
interface CaseProgress {
  contactId?: string | null;
  /** A create was sent: it may have landed. */
  creating?: boolean;
}

/** Creates the case under its id; an error is checked against Creatio (the create may have landed). */
async function createCase(
  client: CreatioClient,
  caseId: string,
  body: Record<string, unknown>,
): Promise<Entity> {
  try {
    return await client.create('Case', { Id: caseId, ...body });
  } catch (err) {
    if (!(err instanceof CreatioError)) throw err;
    const found = await client.getCase(caseId, ['Id', 'Number']).catch(() => undefined);
    if (found) return found;
    throw err;
  }
}

/** Where an entry goes: the conversation and its case. */
interface CaseAt {
  orgId: string;
  sessionId: string;
  caseId: string;
}

/**
 * Creates a record under a known id; with `verify` (a retry), finds it first. A create that fails
 * is checked too: an earlier attempt still in flight may have written the same id just before.
 * True if it existed.
 */
async function createOnce(
  client: CreatioClient,
  set: string,
  id: string,
  verify: boolean,
  body: Record<string, unknown>,
): Promise<boolean> {
  if (verify && (await client.find(set, id, ['Id']))) return true;
  try {
    await client.create(set, { Id: id, ...body });
  } catch (err) {
    // Creatio answers a duplicate id with a 500; a record under our id can only be ours.
    if (err instanceof CreatioError && (await client.find(set, id, ['Id']).catch(() => undefined))) {
      return true;
    }
    throw err;
  }
  return false;
}

/** What decides whether a case may take an existing Contact (src/settings/schema.ts `ContactMatching`). */
interface ContactPolicy {
  matching: ContactMatching;
  verifiedChannels: string[];
  /** The conversation's channel; unknown: not verified. */
  channel: string | undefined;
  sessionId: string;
}

/** The identifiers an existing Contact may be matched by under the policy (none: a new Contact). */
function matchableIdentifiers(c: Contact, p: ContactPolicy): { email?: string; phone?: string } {
  if (p.matching === 'email_or_phone') return { email: c.email, phone: c.phone };
  const channel = p.channel?.toLowerCase();
  if (p.matching === 'never' || !channel || !p.verifiedChannels.includes(channel)) return {};
  if (channel === 'email') return { email: c.email };
  if (['sms', 'whatsapp', 'phone'].includes(channel)) return { phone: c.phone };
  return { email: c.email, phone: c.phone };
}

/**
 * The customer's Contact: an existing one found by the identifiers the policy trusts, else one
 * created once under a deterministic id. A Contact created from trusted identifiers is keyed by
 * them (later conversations find it); one created from untrusted ones is keyed by the session, so
 * no other conversation is ever linked to it through what a customer typed.
 */
async function linkContact(
  client: CreatioClient,
  orgId: string,
  c: Contact,
  p: ContactPolicy,
): Promise<string | undefined> {
  if (!c.email && !c.phone) return undefined;
  const match = matchableIdentifiers(c, p);
  const filters: string[] = [];
  if (match.email) filters.push(`Email eq ${odataString(match.email)}`);
  if (match.phone) {
    filters.push(`Phone eq ${odataString(match.phone)}`, `MobilePhone eq ${odataString(match.phone)}`);
  }
  if (filters.length > 0) {
    const found = await client.list('Contact', { select: ['Id'], filter: filters.join(' or '), top: 1 });
    if (found[0]) return found[0].Id;
  }
  const key = match.email ?? match.phone;
  const id = key ? contactIdFor(orgId, key) : contactIdFor(orgId, `session:${p.sessionId}`);
  await createOnce(client, 'Contact', id, isRetry(), {
    Name: (c.name || c.email || c.phone)!.slice(0, 250),
    ...(c.email && { Email: c.email.slice(0, 250) }),
    ...(c.phone && { Phone: c.phone.slice(0, 250) }),
  });
  return id;
}

/** The organization's contact policy for one conversation. */
function contactPolicy(
  s: { contactMatching?: ContactMatching; verifiedChannels?: string[] },
  sessionId: string,
  channel: string | undefined,
): ContactPolicy {
  return {
    matching: s.contactMatching ?? 'verified',
    verifiedChannels: s.verifiedChannels ?? [],
    channel,
    sessionId,
  };
}

export function createCreatioActivities(orgs: OrgContexts) {
  const { deps } = orgs;
  /**
   * An activity body: a transient failure is tried again in a second when the attempt made
   * progress or the organization's Creatio answers most calls (flaky, not down).
   */
  const call = <T>(orgId: string, fn: () => Promise<T>, progressed?: () => boolean) =>
    withFailures(fn, () => progressed?.() === true || orgs.answering(orgId));
  const replyLimits = { ...DEFAULT_REPLY_LIMITS, ...deps.replyLimits };

  /** Formats one entry and writes it under its deterministic id; with `verify`, looks for it first. */
  async function writeEntry(
    o: OrgContext,
    at: CaseAt,
    e: LogEntry,
    verify: boolean,
  ): Promise<{ id: string; existed: boolean }> {
    const { key, title, body } = entryContent(e, {
      sessionUrl: deps.opencxSessionUrlTemplate.replace('{sessionId}', encodeURIComponent(at.sessionId)),
      sessionId: at.sessionId,
      allowLoopbackHttp: deps.allowLoopbackHttpLinks ?? false,
    });
    const id = activityIdFor(at.orgId, at.sessionId, key);
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
      TypeId: typeId ?? CREATIO_IDS.activityType.Task,
      ActivityCategoryId: categoryId ?? CREATIO_IDS.activityCategoryToDo,
      StatusId: statusId ?? CREATIO_IDS.activityStatusCompleted,
      StartDate: when,
      DueDate: when,
    });
    if (e.kind === 'message' && !existed && deps.metrics) {
      deps.metrics.messagesLogged.inc();
      deps.metrics.loggingLag.observe(Math.max(0, Date.now() - Date.parse(e.timestamp)) / 1000);
    }
    return { id, existed };
  }

  const activities = {
    /** Creates the case of a conversation (at most once, ever) and records the case ⇄ session map. */
    async ensureCase(input: EnsureCaseInput): Promise<{ caseId: string; caseNumber: string | null }> {
      let progressed = false;
      return call(
        input.orgId,
        async () => {
          const { settings, client, lookup } = await orgs.creatio(input.orgId);
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
          // What earlier attempts did: a retry under a flaky Creatio costs two calls, not five.
          const ctx = Context.current();
          const earlier = (ctx.info.heartbeatDetails ?? {}) as CaseProgress;
          let existing: Entity | undefined;
          if (mapped || earlier.creating) existing = await client.getCase(caseId, ['Id', 'Number']);
          let number = typeof existing?.Number === 'string' ? existing.Number : '';
          if (!existing) {
            const contactId =
              earlier.contactId !== undefined
                ? (earlier.contactId ?? undefined)
                : await linkContact(
                    client,
                    input.orgId,
                    input.contact,
                    contactPolicy(settings, input.sessionId, input.channel),
                  );
            const originId = await lookup('CaseOrigin', input.channel === 'email' ? 'Email' : 'Chat');
            progress({ contactId: contactId ?? null, creating: true } satisfies CaseProgress);
            progressed = earlier.contactId === undefined;
            const created = await createCase(client, caseId, {
              Subject: caseSubject(input.channel, input.contact, input.sessionId),
              // Symptoms is rendered as HTML (Creatio 8 Freedom UI): the text is escaped.
              Symptoms: htmlText(input.description),
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
        },
        () => progressed,
      );
    },

    /**
     * A new conversation's case and its first entries (the session link, the first messages) in
     * one call: the first try of the message flow, so that opening a case costs one local activity
     * rather than one per write. Entries are written in order under their deterministic ids (a
     * duplicate id is found, not written twice); any failure fails the whole call, and the durable
     * steps that follow look before they write.
     */
    async openCase(
      input: EnsureCaseInput & { entries: LogEntry[] },
    ): Promise<{ caseId: string; caseNumber: string | null; written: number }> {
      const { entries, ...caseInput } = input;
      const opened = await activities.ensureCase(caseInput);
      return call(input.orgId, async () => {
        const o = await orgs.creatio(input.orgId);
        const at = { orgId: input.orgId, sessionId: input.sessionId, caseId: opened.caseId };
        for (const e of entries) await writeEntry(o, at, e, false);
        return { ...opened, written: entries.length };
      });
    },

    /**
     * Writes one activity on the case, exactly once (deterministic id per entry). `verify`: look
     * first even on a first attempt (a step tried again after parking, a resumed conversation).
     */
    async logEntry(input: CaseAt & { entry: LogEntry; verify?: boolean }): Promise<string> {
      return call(input.orgId, async () => {
        const o = await orgs.creatio(input.orgId);
        const written = await writeEntry(o, input, input.entry, input.verify === true || isRetry());
        return written.id;
      });
    },

    /**
     * Writes several entries in order, in one activity. Progress is heartbeated; a retry first
     * finds where the previous attempt stopped (entries are written strictly in order, so the
     * first one missing in Creatio is where to resume) and writes the rest without reads.
     */
    async logEntries(input: CaseAt & { entries: LogEntry[]; verify?: boolean }): Promise<number> {
      const ctx = Context.current();
      const start = Number(ctx.info.heartbeatDetails ?? 0) || 0;
      let done = start;
      return call(
        input.orgId,
        async () => {
          const o = await orgs.creatio(input.orgId);
          let verify = input.verify === true || isRetry();
          for (; done < input.entries.length; done++) {
            const written = await writeEntry(o, input, input.entries[done]!, verify);
            if (verify && !written.existed) verify = false;
            progress(done + 1);
          }
          return done;
        },
        () => done > start,
      );
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
      return call(input.orgId, async () => {
        const page = await fetchReplies(await orgs.creatio(input.orgId), input, {
          ...replyLimits,
          lookbackMs: input.lookbackMs ?? replyLimits.lookbackMs,
        });
        // Replies delivered by any run of the conversation (before a close and a reopen, before
        // a worker lost its cache) are not returned again: the store remembers them for its life.
        const done = await orgs.deps.store.deliveredReplies(
          input.orgId,
          page.replies.map((r) => r.id),
        );
        return done.size === 0
          ? page
          : { ...page, replies: page.replies.filter((r) => !done.has(r.id.toLowerCase())) };
      });
    },

    /** The case's status name, and whether it is one of the organization's closure statuses (exact match). */
    async readCaseStatus(input: { orgId: string; caseId: string }): Promise<{
      name: string;
      closes: boolean;
      isFinal: boolean;
      closureStatusNames: string[];
      modifiedOn: string | null;
    }> {
      return call(input.orgId, async () => {
        const { settings, client } = await orgs.creatio(input.orgId);
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
          isFinal: status?.IsFinal === true,
          closureStatusNames: settings.closureStatusNames,
        };
      });
    },

    /** Writes the AI field values in their own PATCH, after the case exists. */
    /**
     * Writes evaluated AI fields on the case. With `written` (what the bridge wrote at an earlier
     * handoff), a column whose value in Creatio is no longer that value was changed by an agent: it
     * is kept as the agent left it (named in `kept`), never overwritten.
     */
    async writeAiFields(input: {
      orgId: string;
      caseId: string;
      patch: Record<string, unknown>;
      written?: Record<string, unknown>;
    }): Promise<{ written: Record<string, unknown>; kept: string[] }> {
      return call(input.orgId, async () => {
        const { client } = await orgs.creatio(input.orgId);
        const patch = { ...input.patch };
        const kept: string[] = [];
        const before = input.written ?? {};
        const compared = Object.keys(patch).filter((k) => k in before);
        if (compared.length > 0) {
          const now = await client.getCase<Record<string, unknown> & { Id: string }>(input.caseId, [
            'Id',
            ...compared,
          ]);
          for (const k of compared) {
            const current = now?.[k];
            if (current === null || current === undefined || current === '') continue;
            if (!sameValue(current, before[k])) {
              kept.push(k);
              delete patch[k];
            }
          }
        }
        if (Object.keys(patch).length > 0) await client.update('Case', input.caseId, patch);
        return { written: patch, kept };
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
      return call(input.orgId, async () => {
        const { client } = await orgs.creatio(input.orgId);
        await client.update('Case', input.caseId, { Symptoms: htmlText(handoffDescription(input)) });
      });
    },

    /** A customer wrote after the close: the case gets the organization's Reopen Status ID. */
    async reopenCase(input: { orgId: string; caseId: string }): Promise<{ done: boolean; reason?: string }> {
      return call(input.orgId, async () => {
        const { settings, client } = await orgs.creatio(input.orgId);
        if (!settings.reopenStatusId) {
          return { done: false, reason: 'no Reopen Status ID is configured for this organization' };
        }
        const current = await client.getCase<Entity & { StatusId: string }>(input.caseId, ['Id', 'StatusId']);
        if (!current) return { done: false, reason: `case ${input.caseId} no longer exists in Creatio` };
        if (current.StatusId !== settings.reopenStatusId) {
          await client.update('Case', input.caseId, { StatusId: settings.reopenStatusId });
        }
        return { done: true };
      });
    },

    /** `conversation.started` came after the case was made: the case gets its customer now. */
    async attachContact(input: { orgId: string; caseId: string; contact: Contact }): Promise<void> {
      return call(input.orgId, async () => {
        const { client, settings } = await orgs.creatio(input.orgId);
        const current = await client.getCase<Entity & { ContactId?: string | null }>(input.caseId, [
          'Id',
          'ContactId',
        ]);
        if (!current || (current.ContactId && current.ContactId !== ZERO_GUID)) return;
        // The channel is not part of this call: the policy treats it as unverified.
        const sessionId =
          (await deps.store.findSessionByCase(input.orgId, input.caseId))?.sessionId ?? input.caseId;
        const contactId = await linkContact(
          client,
          input.orgId,
          input.contact,
          contactPolicy(settings, sessionId, undefined),
        );
        if (contactId) await client.update('Case', input.caseId, { ContactId: contactId });
      });
    },

    /**
     * OpenCX resolved the conversation: set the Resolved Status ID. Skipped (with the reason) when
     * none is configured, or when the case already has a final status.
     */
    async resolveCase(input: { orgId: string; caseId: string }): Promise<{ done: boolean; reason?: string }> {
      return call(input.orgId, async () => {
        const { settings, client } = await orgs.creatio(input.orgId);
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
  return activities;
}

export type CreatioActivities = ReturnType<typeof createCreatioActivities>;

/** A value as Creatio returns it against the value the bridge wrote (dates may come back reformatted). */
function sameValue(current: unknown, written: unknown): boolean {
  if (String(current) === String(written)) return true;
  if (typeof current === 'string' && typeof written === 'string') {
    const a = Date.parse(current);
    const b = Date.parse(written);
    if (!Number.isNaN(a) && !Number.isNaN(b) && /^\d{4}-\d{2}-\d{2}/.test(written)) return a === b;
    if (/^[0-9a-f-]{36}$/i.test(current) && /^[0-9a-f-]{36}$/i.test(written)) {
      return current.toLowerCase() === written.toLowerCase();
    }
  }
  return false;
}
