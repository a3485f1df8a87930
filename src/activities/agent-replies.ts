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
import { OpenCXError, type OpenCXClient, type OutgoingAttachment } from '../opencx/client';
import type { OrgSettings } from '../settings/schema';
import { CREATIO_IDS } from '../creatio/model';
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

/** Out-of-the-box ids (src/creatio/model.ts), used when a tenant's lookup cannot be found by name. */
const KNOWN_IDS: Record<string, Record<string, string>> = {
  ActivityType: CREATIO_IDS.activityType,
};

/**
 * The Id of a lookup row by name, else its out-of-the-box id. A lookup that fails for a reason
 * retrying cannot fix (the entity set or column is missing) falls back too; others are thrown.
 */
const idOf = async (o: OrgContext, set: string, name: string): Promise<string | undefined> => {
  try {
    return (await o.lookup(set, name)) ?? KNOWN_IDS[set]?.[name];
  } catch (err) {
    const known = KNOWN_IDS[set]?.[name];
    if (known && err instanceof CreatioError && !err.retryable) return known;
    throw err;
  }
};

/**
 * Text of an activity body for the customer: tags removed, entities decoded, whitespace tidied.
 * One pass over the input, capped first: a hostile body costs time in proportion to its size.
 */
export function plainText(html: string, maxChars = 1_000_000): string {
  const src = html.length > maxChars ? html.slice(0, maxChars) : html;
  const parts: string[] = [];
  const n = src.length;
  // The next '<' and '&' at or after i, each found again only once i has passed it: every
  // character is looked at a bounded number of times, whatever the input.
  let nextLt = src.indexOf('<');
  let nextAmp = src.indexOf('&');
  let from = 0; // start of the text not yet copied
  let i = 0;
  for (;;) {
    if (nextLt !== -1 && nextLt < i) nextLt = src.indexOf('<', i);
    if (nextAmp !== -1 && nextAmp < i) nextAmp = src.indexOf('&', i);
    const at = Math.min(nextLt === -1 ? n : nextLt, nextAmp === -1 ? n : nextAmp);
    if (at >= n) break;
    if (at === nextLt) {
      const close = src.indexOf('>', at + 1);
      if (close < 0) break; // an unclosed '<' is text
      parts.push(src.slice(from, at));
      const tag = src.slice(at + 1, Math.min(close, at + 12)).toLowerCase();
      if (/^br(?:[\s/]|$)/.test(tag) || /^\/(p|div|li)\b/.test(tag)) parts.push('\n');
      i = from = close + 1;
      continue;
    }
    const near = src.slice(at, at + 9);
    const semi = near.indexOf(';');
    const decoded = semi > 0 ? ENTITIES[near.slice(0, semi + 1)] : undefined;
    if (decoded === undefined) {
      i = at + 1; // a bare '&' is text
      continue;
    }
    parts.push(src.slice(from, at), decoded);
    i = from = at + semi + 1;
  }
  parts.push(src.slice(from));
  return tidy(parts.join(''));
}

const ENTITIES: Record<string, string> = {
  '&nbsp;': ' ',
  '&lt;': '<',
  '&gt;': '>',
  '&quot;': '"',
  '&#39;': "'",
  '&amp;': '&',
};

/** Trailing blanks off every line, at most one empty line in a row, trimmed: one pass. */
function tidy(text: string): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let empty = 0;
  for (const raw of lines) {
    let end = raw.length;
    while (end > 0 && (raw.charCodeAt(end - 1) === 32 || raw.charCodeAt(end - 1) === 9)) end--;
    const line = end === raw.length ? raw : raw.slice(0, end);
    if (line === '') {
      empty++;
      if (empty > 1) continue;
    } else empty = 0;
    out.push(line);
  }
  return out.join('\n').trim();
}

/** What Creatio's own mail carries (reference/creatio-api.md §3: HeaderProperties). */
const AUTO_SUBMITTED = /"?auto-submitted"?\s*[:,]\s*(?:"?value"?\s*:\s*)?"?(?!no\b)[a-z-]+/i;
const EMAIL_ADDRESS = /[^\s<>;,"'()]+@[^\s<>;,"'()]+/g;

/** The addresses of a Creatio recipient list (`"Name" <a@b.c>; d@e.f`), lower-case. */
export function addressesOf(list: string | null | undefined): string[] {
  return [...String(list ?? '').matchAll(EMAIL_ADDRESS)].map((m) => m[0].toLowerCase());
}

/** The columns and rules of one organization's reply read; see replyQuery(). */
export interface ReplyQuery {
  filter: string;
  select: string[];
  /** Why a row that passed the filter is still not a reply to the customer (null: it is one). */
  reject(row: Record<string, unknown>): string | null;
}

/**
 * Which activities of a case are agent replies (DESIGN.md §8), as an OData filter plus the checks
 * OData cannot express. An Email is a reply only when it is outgoing (EmailType Outgoing), sent
 * (EmailSendStatus Sent: a draft is "Not sent"), not Creatio's own automatic mail (the
 * `Auto-Submitted` header, or IsAutoSubmitted), and addressed (To) to the case's contact and no one
 * else. Other activity types are replies only when the admin lists them. The bridge's own
 * activities never are. Columns a tenant lacks are left out of the filter rather than failing
 * every read. `contactEmail`: the case's contact's address (null: the customer has none).
 */
export async function replyQuery(
  o: OrgContext,
  caseId: string,
  since: string | null,
  activity: { has(column: string): boolean } | undefined,
  contactEmail: string | null,
): Promise<ReplyQuery | undefined> {
  const f = o.settings.agentReplyFilter;
  const has = (column: string) => activity?.has(column) ?? false;
  const { Outgoing: outgoing, Incoming: incoming } = CREATIO_IDS.emailType;
  const sent = CREATIO_IDS.emailSendStatus.Sent;
  const types: string[] = [];
  let emailType: string | undefined;
  for (const name of f.activityTypes) {
    const id = await idOf(o, 'ActivityType', name);
    if (!id) continue;
    if (name !== 'Email') {
      types.push(`TypeId eq ${id}`);
      continue;
    }
    emailType = id;
    const email = [`TypeId eq ${id}`];
    if (has('MessageTypeId')) email.push(`MessageTypeId eq ${outgoing}`);
    if (has('EmailSendStatusId')) email.push(`EmailSendStatusId eq ${sent}`);
    types.push(`(${email.join(' and ')})`);
  }
  if (types.length === 0) return undefined;
  const categories: string[] = [];
  for (const n of f.activityCategories) {
    const id = await o.lookup('ActivityCategory', n);
    if (id) categories.push(id);
  }
  if (f.activityCategories.length > 0 && categories.length === 0) return undefined;
  const filter = [
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
  const select = ['Id', 'TypeId', 'Title', 'Body', 'OwnerId', 'CreatedOn'];
  for (const c of ['Notes', 'DetailedResult', 'HeaderProperties', 'Recepient']) if (has(c)) select.push(c);
  const customer = contactEmail?.trim().toLowerCase() || null;
  return {
    filter,
    select,
    reject(row) {
      if (!emailType || String(row.TypeId).toLowerCase() !== emailType.toLowerCase()) return null;
      if (typeof row.HeaderProperties === 'string' && AUTO_SUBMITTED.test(row.HeaderProperties)) {
        return 'automatic mail (Auto-Submitted)';
      }
      if (!has('Recepient')) return null;
      const to = addressesOf(row.Recepient as string | null);
      if (!customer) return 'an email, and the customer has no email address';
      if (to.length === 0) return 'an email with no recipient';
      const others = to.filter((a) => a !== customer);
      return others.length > 0 ? 'addressed to someone other than the customer' : null;
    },
  };
}

/** How long a case's contact address is taken as read (a burst of replies reads it once). */
const CONTACT_EMAIL_TTL_MS = 30_000;
const contactEmails = new WeakMap<CreatioClient, Map<string, { email: string | null; at: number }>>();

/**
 * The email address of the case's contact (null when the case has none, or it has no address);
 * remembered per case for CONTACT_EMAIL_TTL_MS, so quick replies cost no extra reads.
 */
export async function caseContactEmail(client: CreatioClient, caseId: string): Promise<string | null> {
  let cache = contactEmails.get(client);
  if (!cache) contactEmails.set(client, (cache = new Map<string, { email: string | null; at: number }>()));
  const hit = cache.get(caseId);
  if (hit && Date.now() - hit.at < CONTACT_EMAIL_TTL_MS) return hit.email;
  const email = await readCaseContactEmail(client, caseId);
  if (cache.size >= 10_000) cache.clear();
  cache.set(caseId, { email, at: Date.now() });
  return email;
}

async function readCaseContactEmail(client: CreatioClient, caseId: string): Promise<string | null> {
  const c = await client.getCase<Entity & { ContactId?: string | null }>(caseId, ['Id', 'ContactId']);
  const contactId = c?.ContactId;
  if (!contactId || /^0{8}-/.test(contactId)) return null;
  const contact = await client.find<Entity & { Email?: string | null }>('Contact', contactId, [
    'Id',
    'Email',
  ]);
  return contact?.Email?.trim() || null;
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
  const activity = meta.get('Activity')?.properties;
  const contactEmail = activity?.has('Recepient') ? await caseContactEmail(o.client, input.caseId) : null;
  const query = await replyQuery(o, input.caseId, from, activity, contactEmail);
  if (!query) return { replies: [], cursor: input.since, more: false };
  const delivered = new Set(input.delivered);
  const fileColumns = meta.get('ActivityFile')?.properties;
  const hasFiles = fileColumns?.has('ActivityId') === true;
  const fileFilter = (activityId: string) =>
    `ActivityId eq ${activityId}${fileColumns?.has('Inline') ? ' and Inline eq false' : ''}`;
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
      select: query.select,
      filter: query.filter,
      orderby: 'CreatedOn asc,Id asc',
      top: PAGE_SIZE,
      skip,
    });
    for (const a of rows) {
      const createdOn = String(a.CreatedOn);
      if (!cursor || Date.parse(createdOn) > Date.parse(cursor)) cursor = createdOn;
      if (delivered.has(a.Id) || query.reject(a) !== null) continue;
      // Inline images (a signature, a logo) are part of the mail's look, not attachments.
      const files = hasFiles
        ? await o.client.list<Entity & { Name: string; Size: number }>('ActivityFile', {
            select: ['Id', 'Name', 'Size'],
            filter: fileFilter(a.Id),
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

/**
 * OpenCX cannot say whether it has a reply: its session keeps no marker and its history cannot be
 * read (a 404 on the route, or a read it refuses). Retrying the read would not change that.
 */
function cannotAsk(err: unknown): boolean {
  return (
    err instanceof OpenCXError &&
    (err.kind === 'session_not_found' || err.kind === 'not_found' || err.kind === 'validation')
  );
}

/**
 * Sends one reply (with what fits of its files), unless an earlier attempt already did.
 *
 * A retry asks OpenCX first (the session's marker, else its history). When OpenCX cannot be asked,
 * the bridge's own record decides: a reply whose send never started (`attempted` false) is sent;
 * one whose send started and whose answer was lost is not sent blind: the step stops with
 * OpenCXReplyUnverifiableError, naming the reply, for an operator to resume (send it) or skip.
 */
export async function deliver(
  o: OrgContext,
  opencx: OpenCXClient,
  input: {
    sessionId: string;
    reply: AgentReply;
    verify: boolean;
    firstTriedAt: string;
    /** A send of this reply was started before (the store says). */
    attempted?: boolean;
    /** Called right before the send (records that it started). */
    beforeSend?: () => Promise<void>;
  },
  limits: ReplyLimits,
): Promise<{ sent: boolean; omittedAttachments: string[]; text?: string }> {
  const plan = planAttachments(input.reply, limits);
  // Asked first, so a retry of a reply that got through downloads nothing.
  if (input.verify) {
    let found: boolean;
    try {
      found = await alreadyDelivered(
        opencx,
        input.sessionId,
        input.reply.id,
        outgoingText(input.reply, plan.omitted),
        Date.parse(input.firstTriedAt),
      );
    } catch (err) {
      if (!cannotAsk(err)) throw err;
      if (input.attempted !== false) {
        throw new OpenCXError(
          'reply_unverifiable',
          `Agent reply ${input.reply.id} may already be at OpenCX (a send was started and its answer was lost), and OpenCX cannot tell: the session keeps no marker and its history cannot be read (${(err as Error).message}). Resume to send it (the customer may get it twice), or skip it.`,
        );
      }
      found = false;
    }
    if (found) {
      return { sent: false, omittedAttachments: plan.omitted, text: outgoingText(input.reply, plan.omitted) };
    }
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
  const text = outgoingText(input.reply, plan.omitted);
  await input.beforeSend?.();
  await opencx.sendAgentMessage(input.sessionId, {
    text,
    agentName: input.reply.authorName,
    attachments: files,
    marker: { [REPLY_MARKER_KEY]: input.reply.id },
  });
  return { sent: true, omittedAttachments: plan.omitted, text };
}
