/**
 * Creatio → customer: which activities of a case are agent replies, how they are read (filtered
 * in OData, paged, bounded), and how each is delivered to OpenCX once even when a send's answer
 * is lost (DESIGN.md §8; docs/decisions/0010-agent-replies.md).
 *
 * Over 300 lines on purpose: the read (filter, paging, cursor) and the exactly-once send share
 * their types and limits, and reading one without the other is where mistakes come from.
 */
import { CreatioError } from '../creatio/errors';
import { odataString, type CreatioClient, type Entity } from '../creatio/client';
import type { OpenCXClient, OutgoingAttachment } from '../opencx/client';
import type { OrgSettings } from '../settings/schema';
import { BRIDGE_MARKER } from './format';

/** What reply reading needs of the organization: its settings, its Creatio client, cached lookups. */
export interface OrgContext {
  settings: OrgSettings;
  client: CreatioClient;
  lookup: (set: string, name: string) => Promise<string | undefined>;
}

export interface AgentReplyAttachment {
  id: string;
  name: string;
  size: number;
}

export interface AgentReply {
  id: string;
  createdOn: string;
  text: string;
  authorName: string;
  attachments: AgentReplyAttachment[];
}

export interface ReplyPage {
  /** Matching activities not written by the bridge, oldest first (the caller drops those it delivered). */
  replies: AgentReply[];
  /** CreatedOn of the newest matching activity examined: the next read starts there (less the look-back). */
  cursor: string | null;
  /** True when the answer was cut to stay small: read again from `cursor` at once. */
  more: boolean;
}

export interface ReplyLimits {
  /** How far before the cursor each read looks again (late commits, clock skew between app servers). */
  lookbackMs: number;
  /** Largest attachment sent; larger ones are named in the message instead. */
  attachmentMaxBytes: number;
  /** Largest total of attachments in one message. */
  attachmentsTotalMaxBytes: number;
}

export const DEFAULT_REPLY_LIMITS: ReplyLimits = {
  lookbackMs: 10 * 60_000,
  attachmentMaxBytes: 5 * 1024 * 1024,
  attachmentsTotalMaxBytes: 10 * 1024 * 1024,
};

/** Key of the session's custom data that names the last reply OpenCX accepted from the bridge. */
export const REPLY_MARKER_KEY = 'creatio_last_reply_id';

const PAGE_SIZE = 100;
/** Reply text carried in one answer (it goes through Temporal history). */
const MAX_PAGE_TEXT_CHARS = 256_000;
const MAX_REPLY_TEXT_CHARS = 20_000;

/** Out-of-the-box ids, used when a tenant's lookup cannot be found by name. */
const KNOWN_IDS: Record<string, Record<string, string>> = {
  ActivityType: {
    Email: 'e2831dec-cfc0-df11-b00f-001d60e938c6',
    Task: 'fbe0acdc-cfc0-df11-b00f-001d60e938c6',
    Call: 'e1831dec-cfc0-df11-b00f-001d60e938c6',
  },
  MessageType: {
    Incoming: '7f9d1f86-f36b-1410-068c-20cf30b39373',
    Outgoing: '7f6d3f94-f36b-1410-068c-20cf30b39373',
  },
};

const idOf = async (o: OrgContext, set: string, name: string) =>
  (await o.lookup(set, name)) ?? KNOWN_IDS[set]?.[name];

/** Text of an activity body for the customer: tags removed, entities decoded, whitespace tidied. */
export function plainText(html: string): string {
  return html
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div|li)>/gi, '\n')
    .replace(/<[^>]+>/g, '')
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/**
 * The OData filter of agent replies on a case (DESIGN.md §8): the listed types (an Email only when
 * outgoing), never the bridge's own activities, never incoming mail, never Creatio's automatic mail.
 * Columns a tenant lacks are left out of the filter rather than failing every read.
 */
export async function replyFilter(
  o: OrgContext,
  caseId: string,
  since: string | null,
  activity: { has(column: string): boolean } | undefined,
): Promise<string | undefined> {
  const f = o.settings.agentReplyFilter;
  const has = (column: string) => activity?.has(column) ?? false;
  const outgoing = await idOf(o, 'MessageType', 'Outgoing');
  const incoming = await idOf(o, 'MessageType', 'Incoming');
  const types: string[] = [];
  for (const name of f.activityTypes) {
    const id = await idOf(o, 'ActivityType', name);
    if (!id) continue;
    types.push(
      name === 'Email' && has('MessageTypeId')
        ? `(TypeId eq ${id} and MessageTypeId eq ${outgoing})`
        : `TypeId eq ${id}`,
    );
  }
  if (types.length === 0) return undefined;
  const categories = (
    await Promise.all(f.activityCategories.map((n) => o.lookup('ActivityCategory', n)))
  ).filter((id): id is string => Boolean(id));
  if (f.activityCategories.length > 0 && categories.length === 0) return undefined;
  return [
    `CaseId eq ${caseId}`,
    `(${types.join(' or ')})`,
    `not startswith(Title,${odataString(BRIDGE_MARKER)})`,
    ...(has('MessageTypeId') ? [`MessageTypeId ne ${incoming}`] : []),
    ...(has('IsAutoSubmitted') ? ['IsAutoSubmitted eq false'] : []),
    ...(categories.length > 0
      ? [`(${categories.map((id) => `ActivityCategoryId eq ${id}`).join(' or ')})`]
      : []),
    ...(since ? [`CreatedOn ge ${since}`] : []),
  ].join(' and ');
}

type ActivityRow = Entity & Record<string, string | boolean | null>;

/**
 * Agent replies created since `since` less the look-back window, oldest first (CreatedOn, Id),
 * read page by page until everything new is seen or the answer is large enough.
 */
export async function fetchReplies(
  o: OrgContext,
  input: { caseId: string; since: string | null; delivered?: string[] },
  limits: ReplyLimits,
): Promise<ReplyPage> {
  const from = input.since ? new Date(Date.parse(input.since) - limits.lookbackMs).toISOString() : null;
  const meta = await o.client.metadata();
  const filter = await replyFilter(o, input.caseId, from, meta.get('Activity')?.properties);
  if (!filter) return { replies: [], cursor: input.since, more: false };
  const delivered = new Set(input.delivered);
  const hasFiles = meta.has('ActivityFile');
  const owners = new Map<string, Promise<string | undefined>>();
  const owner = (id: string) => {
    let p = owners.get(id);
    if (!p) {
      p = o.client.getContact(id).then((c) => c?.Name);
      owners.set(id, p);
    }
    return p;
  };
  const replies: AgentReply[] = [];
  let cursor = input.since;
  let chars = 0;
  for (let skip = 0; ; skip += PAGE_SIZE) {
    const rows = await o.client.list<ActivityRow>('Activity', {
      select: ['Id', 'Title', 'Body', 'Notes', 'DetailedResult', 'OwnerId', 'CreatedOn'],
      filter,
      orderby: 'CreatedOn asc,Id asc',
      top: PAGE_SIZE,
      skip,
    });
    for (const a of rows) {
      const createdOn = String(a.CreatedOn);
      if (!cursor || Date.parse(createdOn) > Date.parse(cursor)) cursor = createdOn;
      if (delivered.has(a.Id)) continue;
      const files = hasFiles
        ? await o.client.list<Entity & { Name: string; Size: number }>('ActivityFile', {
            select: ['Id', 'Name', 'Size'],
            filter: `ActivityId eq ${a.Id}`,
            top: 50,
          })
        : [];
      const raw = plainText(String(a.Body || a.Notes || a.DetailedResult || a.Title || ''));
      if (!raw && files.length === 0) continue;
      const text = raw.length > MAX_REPLY_TEXT_CHARS ? `${raw.slice(0, MAX_REPLY_TEXT_CHARS - 1)}…` : raw;
      replies.push({
        id: a.Id,
        createdOn,
        text,
        authorName: (a.OwnerId && (await owner(String(a.OwnerId)))) || 'Support agent',
        attachments: files.map((f) => ({
          id: f.Id,
          name: f.Name || 'attachment',
          size: Number(f.Size) || 0,
        })),
      });
      chars += text.length;
      if (chars >= MAX_PAGE_TEXT_CHARS) return { replies, cursor, more: true };
    }
    if (rows.length < PAGE_SIZE) return { replies, cursor, more: false };
  }
}

const MIME: Record<string, string> = {
  pdf: 'application/pdf',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  txt: 'text/plain',
  csv: 'text/csv',
  doc: 'application/msword',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  zip: 'application/zip',
};

export function mimeTypeOf(name: string): string {
  return MIME[/\.([A-Za-z0-9]+)$/.exec(name)?.[1]?.toLowerCase() ?? ''] ?? 'application/octet-stream';
}

/** The message exactly as it is sent: the reply's text, plus a line for each file that is not attached. */
export function outgoingText(reply: AgentReply, omitted: string[]): string {
  const notes = omitted.map((n) => `[Attachment "${n}" could not be sent: it is too large.]`);
  return [reply.text, ...notes].filter(Boolean).join('\n\n') || '(attachment)';
}

/** Which files fit under the caps (by their declared size), in the reply's order. */
export function planAttachments(
  reply: AgentReply,
  limits: ReplyLimits,
): { send: AgentReplyAttachment[]; omitted: string[] } {
  const send: AgentReplyAttachment[] = [];
  const omitted: string[] = [];
  let total = 0;
  for (const a of reply.attachments) {
    if (a.size > limits.attachmentMaxBytes || total + a.size > limits.attachmentsTotalMaxBytes) {
      omitted.push(a.name);
      continue;
    }
    total += a.size;
    send.push(a);
  }
  return { send, omitted };
}

/**
 * True when OpenCX already has this reply: the session's marker names it, or (where OpenCX keeps
 * no custom data) its history has an agent message with this exact text since the first try.
 */
export async function alreadyDelivered(
  opencx: OpenCXClient,
  sessionId: string,
  replyId: string,
  text: string,
  firstTriedAt: number,
): Promise<boolean> {
  const custom = await opencx.sessionCustomData(sessionId);
  if (custom && REPLY_MARKER_KEY in custom) return custom[REPLY_MARKER_KEY] === replyId;
  const messages = await opencx.agentMessages(sessionId);
  const clockSkewMs = 60_000;
  return messages.some(
    (m) => m.text === text && (m.createdAt === undefined || m.createdAt >= firstTriedAt - clockSkewMs),
  );
}

/** Sends one reply (with what fits of its files), unless an earlier attempt already did. */
export async function deliver(
  o: OrgContext,
  opencx: OpenCXClient,
  input: { sessionId: string; reply: AgentReply; verify: boolean; firstTriedAt: string },
  limits: ReplyLimits,
): Promise<{ sent: boolean; omittedAttachments: string[] }> {
  const plan = planAttachments(input.reply, limits);
  // Asked first, so a retry of a reply that got through downloads nothing.
  if (
    input.verify &&
    (await alreadyDelivered(
      opencx,
      input.sessionId,
      input.reply.id,
      outgoingText(input.reply, plan.omitted),
      Date.parse(input.firstTriedAt),
    ))
  ) {
    return { sent: false, omittedAttachments: plan.omitted };
  }
  const files: OutgoingAttachment[] = [];
  for (const a of plan.send) {
    try {
      const data = await o.client.download('ActivityFile', a.id, 'Data', limits.attachmentMaxBytes);
      files.push({ name: a.name, base64: data.toString('base64'), mimeType: mimeTypeOf(a.name) });
    } catch (err) {
      // A file larger than it said it was: named in the text like any other file that does not fit.
      if (err instanceof CreatioError && err.kind === 'too_large') plan.omitted.push(a.name);
      else throw err;
    }
  }
  await opencx.sendAgentMessage(input.sessionId, {
    text: outgoingText(input.reply, plan.omitted),
    agentName: input.reply.authorName,
    attachments: files,
    marker: { [REPLY_MARKER_KEY]: input.reply.id },
  });
  return { sent: true, omittedAttachments: plan.omitted };
}
