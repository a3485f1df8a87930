import { z } from 'zod';
import type { Author, ConversationEvent } from '../workflows/contract';

/**
 * OpenCX's webhook events, as the bridge reads them (docs/opencx-reference.md says page by page
 * what is documented and what is assumed).
 *
 * Source of the event names and of the documented bodies:
 * https://docs.open.cx/api-reference/webhooks/types (API-WH below). It documents the bodies of
 * `conversation.started`, `conversation.closed` (in two renderings) and, in part,
 * `conversation.handoff_to_human`; it names the three message events without a body.
 *
 * Rules every schema here follows:
 * - unknown fields are ignored (z.object strips them), so fields OpenCX adds never break ingress;
 * - only what the bridge cannot work without is required: which conversation (a session id) and,
 *   for a message, which message (an id, to log it exactly once). A field that is there but of the
 *   wrong type or out of its documented range is refused, naming the field;
 * - `data` may be an object or an array of objects (the older rendering of `conversation.closed`
 *   types it as an array): the first object is the event.
 */

/** The OpenCX events the bridge acts on (API-WH); others are acknowledged and ignored. */
export const HANDLED_EVENTS = [
  'conversation.started',
  'conversation.contact_response',
  'conversation.ai_response',
  'conversation.agent_response',
  'conversation.handoff_to_human',
  'conversation.closed',
] as const;

export const SESSION_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

const id = z.union([z.string().min(1).max(200), z.number().int()]).transform(String);
/**
 * What one message keeps in Creatio. Past these the event is still taken (the 1 MB body limit bounds
 * it): the text is cut, the attachments after the first are counted, a file name is shortened, and
 * the activity says so (notes below).
 */
export const MESSAGE_LIMITS = { textChars: 100_000, attachments: 50, fileNameChars: 250 } as const;

/**
 * The scheme of the notes the conversion adds to a message's attachments (the text was cut, more
 * attachments than were logged): src/activities/format.ts renders them as notes, never as links.
 * An OpenCX URL with this scheme is renamed so that it can never pass for one.
 */
export const NOTE_SCHEME = 'opencx-bridge-note:';
export const TEXT_CUT_NOTE_URL = `${NOTE_SCHEME}text-cut`;
export const MORE_ATTACHMENTS_NOTE_URL = `${NOTE_SCHEME}more-attachments`;

const text = z.string();
const prose = z
  .string()
  .max(20_000)
  .nullish()
  .transform((v) => v ?? '');
/** Seconds or milliseconds since 1970; past the year 5000 it is not a timestamp (and not a Date). */
const timestamp = z
  .union([
    z.iso.datetime({ offset: true }),
    z.number().positive().max(1e14, 'must be seconds or milliseconds since 1970'),
  ])
  .transform((v) => new Date(typeof v === 'number' ? (v < 1e12 ? v * 1000 : v) : v).toISOString());
const sessionId = z.string().regex(SESSION_ID_RE, 'must be 1-128 letters, digits, "_", ".", ":" or "-"');

/**
 * Which conversation. API-WH calls it `conversation_id` in every event body; it is optional
 * (`conversation_id?`) in the closed event and `string | null | undefined` in the handoff event.
 * The API reference names the same id `session_id` (the path parameter of every
 * https://docs.open.cx/api-reference/chat-sessions/* page, and the field of the CSAT score object,
 * https://docs.open.cx/api-reference/csat/get_session), so a body that carries `session_id`
 * instead is read the same. No other documented field names the session: `contact_id` /
 * `customer_id` name a contact, who can have many conversations, so they cannot stand in.
 */
const sessionFields = {
  conversation_id: sessionId.nullish(),
  session_id: sessionId.nullish(),
};

/**
 * When. API-WH documents `timestamp: string` on the documented bodies; for the message events it
 * is silent. `created_at` (the name the history uses, chat-sessions/list_history) is read too, and
 * an event with neither gets the time the bridge received it.
 */
const timeFields = { timestamp: timestamp.nullish(), created_at: timestamp.nullish() };

function requireSession(
  d: { conversation_id?: string | null; session_id?: string | null },
  ctx: z.RefinementCtx,
) {
  if (!d.conversation_id && !d.session_id) {
    ctx.addIssue({
      code: 'custom',
      path: ['conversation_id'],
      message: 'is required (or session_id): the bridge cannot tell which conversation this event is about',
    });
  }
}

/**
 * API-WH, conversation.started: `contact` {`id`?, `name`?, `enriched_data`? {`address`?,
 * `phone_number`?, `email`?}, `custom_data`?/`custom_objects`?}. `email` / `phone_number` at the
 * contact's top level are not in that body but are in the contact of the newer closed rendering and
 * of the session (chat-sessions/get): read when present.
 */
const contact = z
  .object({
    id: id.nullish(),
    name: z.string().max(250).nullish(),
    email: z.string().max(250).nullish(),
    phone_number: z.string().max(50).nullish(),
    enriched_data: z
      .object({ email: z.string().max(250).nullish(), phone_number: z.string().max(50).nullish() })
      .nullish(),
  })
  .nullish();

/**
 * A message's text: a string, or the history's `{ type: "text", text }` content object
 * (https://docs.open.cx/api-reference/chat-sessions/list_history).
 */
const content = z.union([text, z.object({ text: text.nullish() })]);

/**
 * An attachment. API-WH documents none for the message events (no body at all); the history's
 * attachment is `{ id, name, size, type, url }` (chat-sessions/list_history), and the bridge's
 * earlier assumption was `{ name, url, mime_type }`. Both are read; only `url` is required.
 */
const attachment = z.object({
  name: z.string().nullish(),
  url: z.string().min(1).max(2000),
  mime_type: z.string().max(200).nullish(),
  type: z.string().max(200).nullish(),
});
const attachments = z.array(attachment).nullish();

/**
 * The message events (`conversation.contact_response`, `.ai_response`, `.agent_response`).
 * API-WH names them and documents NO body. Assumed, each shape accepted:
 * - `message` as an object: `{ id, text | content, attachments? }` (the bridge's earlier
 *   assumption, DESIGN §7), or `message` as a plain string;
 * - the message id at the data level: `message_id`, or `id`;
 * - the text at the data level: `text`, or `content` (a string or `{ type, text }`);
 * - the agent's name: `agent.name` (earlier assumption), `sender.name` (the history's sender,
 *   chat-sessions/list_history) or `agent_name`.
 * Required: a session id and a message id (the bridge logs each message exactly once by its id).
 * Text may be empty (an attachment-only message).
 */
const messageData = z
  .object({
    ...sessionFields,
    message: z
      .union([
        z.object({ id: id.nullish(), text: text.nullish(), content: content.nullish(), attachments }),
        text,
      ])
      .nullish(),
    message_id: id.nullish(),
    id: id.nullish(),
    text: text.nullish(),
    content: content.nullish(),
    attachments,
    agent: z.object({ id: id.nullish(), name: z.string().max(250).nullish() }).nullish(),
    sender: z.object({ name: z.string().max(250).nullish() }).nullish(),
    agent_name: z.string().max(250).nullish(),
    ...timeFields,
  })
  .superRefine(requireSession)
  .superRefine((d, ctx) => {
    const m = typeof d.message === 'object' ? d.message : undefined;
    if (!m?.id && !d.message_id && !d.id) {
      ctx.addIssue({
        code: 'custom',
        path: ['message', 'id'],
        message: 'is required (or message_id): the bridge logs each message once, by its id',
      });
    }
  });

const startedData = z
  .object({
    ...sessionFields,
    contact,
    // API-WH: 'web' | 'email' | 'phone'; the session's channel is `{ type }` (chat-sessions/get).
    channel: z.union([z.string().min(1).max(50), z.object({ type: z.string().min(1).max(50) })]).nullish(),
    // API-WH: `first_message: string`; an object `{ id?, text }` is read too.
    first_message: z.union([text, z.object({ id: id.nullish(), text: text.nullish() })]).nullish(),
    ...timeFields,
  })
  .superRefine(requireSession);

/**
 * API-WH, conversation.handoff_to_human: `conversation_id: string | null | undefined`,
 * `timestamp`, `customer_id`, `reason` (an enum: "ai_decided_to_handoff_the_conversation",
 * "ai_is_forbidden_from_handling_this_topic", "human_agent_decided…", …; read as text). The rest
 * of the body is not legible in the reference: `summary`, `language`, `sentiment` are assumed at
 * the data level, and the session's `handoff` object `{ summary, sentiment }`
 * (chat-sessions/get) is read too.
 */
const handoffData = z
  .object({
    ...sessionFields,
    reason: prose,
    summary: prose,
    language: prose,
    sentiment: prose,
    handoff: z.object({ summary: prose, sentiment: prose }).nullish(),
    ...timeFields,
  })
  .superRefine(requireSession);

const resolution = z.enum(['resolved', 'not_resolved']);

/**
 * API-WH, conversation.closed, both renderings:
 * - newer: `conversation_id?`, `timestamp`, `contact_id?`, `contact?`, `human_resolution_status:
 *   "resolved" | "not_resolved" | null`, `ai_resolution_status: string | null`, `ai_billing_tier`,
 *   `closed_by`, `is_from_third_party`, `third_party_name`, `summary`, `contact_reason`, … (no
 *   `resolution_status`);
 * - older (`data` typed as an array of): `conversation_id?`, `timestamp`, `contact_id?`,
 *   `resolution_status: "resolved" | "not_resolved"`, `resolution_type?`, `closed_by`,
 *   `is_from_third_party`, `third_party_name`, `summary`, `contact_reason`, `user_sentiment`,
 *   `language`, `message_count`.
 * The documented enums are enforced where given; `ai_resolution_status` is any string (its values
 * are not listed). See `closedResolution` for how the bridge reads them.
 */
export const closedData = z
  .object({
    ...sessionFields,
    resolution_status: resolution.nullish(),
    human_resolution_status: resolution.nullish(),
    ai_resolution_status: z.string().max(100).nullish(),
    summary: prose,
    language: prose,
    user_sentiment: prose,
    sentiment: prose,
    ...timeFields,
  })
  .superRefine(requireSession);

/**
 * The bridge's `resolved` | `not_resolved` from a closed event, first answer wins:
 * 1. `human_resolution_status` (newer rendering): a person's verdict, taken as it is;
 * 2. `resolution_status` (older rendering), taken as it is;
 * 3. `ai_resolution_status` (newer rendering, values not documented): a value that says resolved
 *    without negating it (`resolved`, `assumed_resolved` — the `ai_closure_type` example of
 *    chat-sessions/list —, `ai_resolved`, …) is `resolved`; anything else (`not_resolved`,
 *    `unresolved`, `handed_off`, an unknown word) is `not_resolved`;
 * 4. nothing at all: `not_resolved`.
 * `resolved` moves the Creatio case to the Resolved Status; when in doubt the case stays open for
 * an agent, which is the cheaper mistake.
 */
export function closedResolution(d: {
  human_resolution_status?: 'resolved' | 'not_resolved' | null;
  resolution_status?: 'resolved' | 'not_resolved' | null;
  ai_resolution_status?: string | null;
}): 'resolved' | 'not_resolved' {
  if (d.human_resolution_status) return d.human_resolution_status;
  if (d.resolution_status) return d.resolution_status;
  const ai = d.ai_resolution_status?.trim().toLowerCase();
  if (ai && /resolved/.test(ai) && !/(^|[^a-z])(not|un|non)[\s_-]?resolved/.test(ai)) return 'resolved';
  return 'not_resolved';
}

/** The object each handled event's `data` is read as (after taking the first of an array). */
export const eventBodySchemas = {
  'conversation.started': startedData,
  'conversation.contact_response': messageData,
  'conversation.ai_response': messageData,
  'conversation.agent_response': messageData,
  'conversation.handoff_to_human': handoffData,
  'conversation.closed': closedData,
};

const objectOrArray = <S extends z.ZodType>(s: S) => z.union([s, z.array(s).min(1)]);

/** The `data` of each handled event as the ingress accepts it (and the OpenAPI document shows it). */
export const eventDataSchemas = {
  'conversation.started': objectOrArray(startedData),
  'conversation.contact_response': objectOrArray(messageData),
  'conversation.ai_response': objectOrArray(messageData),
  'conversation.agent_response': objectOrArray(messageData),
  'conversation.handoff_to_human': objectOrArray(handoffData),
  'conversation.closed': objectOrArray(closedData),
};

export const envelopeSchema = z.object({
  event: z.string().min(1),
  organization_id: z.string().min(1),
  data: z.unknown(),
});

export type HandledEvent = (typeof HANDLED_EVENTS)[number];

export function isHandled(event: string): event is HandledEvent {
  return (HANDLED_EVENTS as readonly string[]).includes(event);
}

/**
 * The event object of `data`: `data` itself, or the first object of an array (the older
 * rendering of conversation.closed types `data` as an array). Anything else comes back as it is,
 * for the parser to refuse.
 */
export function eventBody(data: unknown): unknown {
  if (!Array.isArray(data)) return data;
  return data.find((d) => d !== null && typeof d === 'object' && !Array.isArray(d)) ?? data[0];
}

const AUTHORS: Record<
  'conversation.contact_response' | 'conversation.ai_response' | 'conversation.agent_response',
  Author
> = {
  'conversation.contact_response': 'customer',
  'conversation.ai_response': 'ai',
  'conversation.agent_response': 'agent',
};

type Parse = <S extends z.ZodType>(schema: S, data: unknown) => z.infer<S>;

function textOf(c: z.infer<typeof content> | null | undefined): string | undefined {
  if (c === null || c === undefined) return undefined;
  return typeof c === 'string' ? c : (c.text ?? undefined);
}

/** A file name for an attachment that came without one: the last part of its URL's path. */
function nameOf(url: string): string {
  try {
    const last = new URL(url).pathname.split('/').filter(Boolean).pop();
    if (last) return decodeURIComponent(last).slice(0, 500);
  } catch {
    /* not a URL: fall through */
  }
  return 'attachment';
}

/** A text cut at `MESSAGE_LIMITS.textChars` (never inside a surrogate pair), and whether it was. */
export function cutText(t: string): { text: string; cut: boolean } {
  const max = MESSAGE_LIMITS.textChars;
  if (t.length <= max) return { text: t, cut: false };
  const end = /[\uD800-\uDBFF]/.test(t.charAt(max - 1)) ? max - 1 : max;
  return { text: t.slice(0, end), cut: true };
}

export const textCutNote = () => `message cut at ${MESSAGE_LIMITS.textChars} characters; full text in OpenCX`;

/** A file name of at most `MESSAGE_LIMITS.fileNameChars` characters, its extension kept. */
export function shortFileName(name: string): string {
  const max = MESSAGE_LIMITS.fileNameChars;
  if (name.length <= max) return name;
  const ext = /\.[A-Za-z0-9]{1,16}$/.exec(name)?.[0] ?? '';
  return `${name.slice(0, max - 1 - ext.length)}…${ext}`;
}

/**
 * A message's text and attachments within `MESSAGE_LIMITS`, with a note attachment for what was
 * left out (the text keeps its first characters, so the history check still recognises it).
 */
function withinLimits(
  messageText: string,
  list: { name: string; url: string; mimeType?: string }[],
): { text: string; attachments: { name: string; url: string; mimeType?: string }[] } {
  const { text: kept, cut } = cutText(messageText);
  const shown = list.slice(0, MESSAGE_LIMITS.attachments).map((a) => ({
    ...a,
    name: shortFileName(a.name),
    url: a.url.startsWith(NOTE_SCHEME) ? `x-${a.url}` : a.url,
  }));
  const more = list.length - shown.length;
  return {
    text: kept,
    attachments: [
      ...(cut ? [{ name: textCutNote(), url: TEXT_CUT_NOTE_URL }] : []),
      ...shown,
      ...(more > 0
        ? [
            {
              name: `and ${more} more attachments; see the session in OpenCX`,
              url: MORE_ATTACHMENTS_NOTE_URL,
            },
          ]
        : []),
    ],
  };
}

/**
 * Validates an OpenCX event's data once (with `parse`, which the ingress makes name the bad
 * field) and maps it to the workflow's event; returns the session id with it. `receivedAt` is the
 * event's time when its body carries none.
 */
export function toConversationEvent(
  event: HandledEvent,
  data: unknown,
  eventId: string,
  parse: Parse = (schema, d) => schema.parse(d),
  receivedAt: string = new Date().toISOString(),
): { sessionId: string; event: ConversationEvent } {
  const body = eventBody(data);
  switch (event) {
    case 'conversation.started': {
      const d = parse(startedData, body);
      const sid = (d.conversation_id ?? d.session_id)!;
      const c = d.contact ?? {};
      const email = c.email ?? c.enriched_data?.email ?? undefined;
      const phone = c.phone_number ?? c.enriched_data?.phone_number ?? undefined;
      const first =
        typeof d.first_message === 'string' ? { id: undefined, text: d.first_message } : d.first_message;
      const channel = typeof d.channel === 'string' ? d.channel : d.channel?.type;
      // The first message has no attachments to carry a note: a cut text ends with it.
      const firstText = first?.text ? cutText(first.text) : undefined;
      return {
        sessionId: sid,
        event: {
          kind: 'started',
          eventId,
          timestamp: d.timestamp ?? d.created_at ?? receivedAt,
          channel: channel ?? 'web',
          contact: {
            ...(c.id && { id: c.id }),
            ...(c.name && { name: c.name }),
            ...(email && { email }),
            ...(phone && { phone }),
          },
          ...(first?.text &&
            firstText && {
              firstMessage: {
                id: first.id ?? `${sid}:first`,
                text: firstText.cut ? `${firstText.text}\n\n[${textCutNote()}]` : firstText.text,
              },
            }),
        },
      };
    }
    case 'conversation.contact_response':
    case 'conversation.ai_response':
    case 'conversation.agent_response': {
      const d = parse(messageData, body);
      const m = typeof d.message === 'object' ? d.message : undefined;
      const messageId = (m?.id ?? d.message_id ?? d.id)!;
      const messageText =
        (typeof d.message === 'string' ? d.message : undefined) ??
        m?.text ??
        textOf(m?.content) ??
        d.text ??
        textOf(d.content) ??
        '';
      const agentName = d.agent?.name ?? d.agent_name ?? d.sender?.name ?? undefined;
      const kept = withinLimits(
        messageText,
        (m?.attachments ?? d.attachments ?? []).map((a) => {
          const mimeType = a.mime_type ?? a.type ?? undefined;
          return { name: a.name || nameOf(a.url), url: a.url, ...(mimeType && { mimeType }) };
        }),
      );
      return {
        sessionId: (d.conversation_id ?? d.session_id)!,
        event: {
          kind: 'message',
          eventId,
          timestamp: d.timestamp ?? d.created_at ?? receivedAt,
          messageId,
          author: AUTHORS[event],
          text: kept.text,
          attachments: kept.attachments,
          ...(agentName && { agentName }),
        },
      };
    }
    case 'conversation.handoff_to_human': {
      const d = parse(handoffData, body);
      return {
        sessionId: (d.conversation_id ?? d.session_id)!,
        event: {
          kind: 'handoff',
          eventId,
          timestamp: d.timestamp ?? d.created_at ?? receivedAt,
          reason: d.reason,
          summary: d.summary || (d.handoff?.summary ?? ''),
          language: d.language,
          sentiment: d.sentiment || (d.handoff?.sentiment ?? ''),
        },
      };
    }
    case 'conversation.closed': {
      const d = parse(closedData, body);
      return {
        sessionId: (d.conversation_id ?? d.session_id)!,
        event: {
          kind: 'closed',
          eventId,
          timestamp: d.timestamp ?? d.created_at ?? receivedAt,
          resolution: closedResolution(d),
          summary: d.summary,
          language: d.language,
          sentiment: d.user_sentiment || d.sentiment,
        },
      };
    }
  }
}
