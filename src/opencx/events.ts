import { z } from 'zod';
import type { ConversationEvent } from '../workflows/contract';

/** The OpenCX events the bridge acts on (DESIGN §7); others are acknowledged and ignored. */
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
const text = z.string().max(100_000);
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
const conversationId = z.string().regex(SESSION_ID_RE, 'must be 1-128 letters, digits, "_", ".", ":" or "-"');

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

const message = z.object({
  id,
  text: text.nullish().transform((v) => v ?? ''),
  attachments: z
    .array(
      z.object({
        name: z.string().max(500),
        url: z.string().max(2000),
        mime_type: z.string().max(200).nullish(),
      }),
    )
    .max(50)
    .nullish(),
});

const messageData = z.object({
  conversation_id: conversationId,
  message,
  agent: z.object({ id: id.nullish(), name: z.string().max(250).nullish() }).nullish(),
  timestamp,
});

/** The `data` of each handled event, as the ingress validates it (and the OpenAPI document shows it). */
export const eventDataSchemas = {
  'conversation.started': z.object({
    conversation_id: conversationId,
    contact,
    channel: z.string().min(1).max(50).nullish(),
    first_message: z.union([text, z.object({ id: id.nullish(), text })]).nullish(),
    timestamp,
  }),
  'conversation.contact_response': messageData,
  'conversation.ai_response': messageData,
  'conversation.agent_response': messageData,
  'conversation.handoff_to_human': z.object({
    conversation_id: conversationId,
    reason: prose,
    summary: prose,
    language: prose,
    sentiment: prose,
    timestamp,
  }),
  'conversation.closed': z.object({
    conversation_id: conversationId,
    resolution_status: z.enum(['resolved', 'not_resolved']),
    summary: prose,
    language: prose,
    user_sentiment: prose,
    timestamp,
  }),
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

const AUTHORS = {
  'conversation.contact_response': 'customer',
  'conversation.ai_response': 'ai',
  'conversation.agent_response': 'agent',
} as const;

type Parse = <S extends z.ZodType>(schema: S, data: unknown) => z.infer<S>;

/**
 * Validates an OpenCX event's data once (with `parse`, which the ingress makes name the bad
 * field) and maps it to the workflow's event; returns the session id with it.
 */
export function toConversationEvent(
  event: HandledEvent,
  data: unknown,
  eventId: string,
  parse: Parse = (schema, d) => schema.parse(d),
): { sessionId: string; event: ConversationEvent } {
  switch (event) {
    case 'conversation.started': {
      const d = parse(eventDataSchemas[event], data);
      const c = d.contact ?? {};
      const email = c.email ?? c.enriched_data?.email ?? undefined;
      const phone = c.phone_number ?? c.enriched_data?.phone_number ?? undefined;
      const first =
        typeof d.first_message === 'string' ? { id: undefined, text: d.first_message } : d.first_message;
      return {
        sessionId: d.conversation_id,
        event: {
          kind: 'started',
          eventId,
          timestamp: d.timestamp,
          channel: d.channel ?? 'web',
          contact: {
            ...(c.id && { id: c.id }),
            ...(c.name && { name: c.name }),
            ...(email && { email }),
            ...(phone && { phone }),
          },
          ...(first?.text && {
            firstMessage: { id: first.id ?? `${d.conversation_id}:first`, text: first.text },
          }),
        },
      };
    }
    case 'conversation.contact_response':
    case 'conversation.ai_response':
    case 'conversation.agent_response': {
      const d = parse(eventDataSchemas[event], data);
      return {
        sessionId: d.conversation_id,
        event: {
          kind: 'message',
          eventId,
          timestamp: d.timestamp,
          messageId: d.message.id,
          author: AUTHORS[event],
          text: d.message.text,
          attachments: (d.message.attachments ?? []).map((a) => ({
            name: a.name,
            url: a.url,
            ...(a.mime_type && { mimeType: a.mime_type }),
          })),
          ...(d.agent?.name && { agentName: d.agent.name }),
        },
      };
    }
    case 'conversation.handoff_to_human': {
      const d = parse(eventDataSchemas[event], data);
      return {
        sessionId: d.conversation_id,
        event: {
          kind: 'handoff',
          eventId,
          timestamp: d.timestamp,
          reason: d.reason,
          summary: d.summary,
          language: d.language,
          sentiment: d.sentiment,
        },
      };
    }
    case 'conversation.closed': {
      const d = parse(eventDataSchemas[event], data);
      return {
        sessionId: d.conversation_id,
        event: {
          kind: 'closed',
          eventId,
          timestamp: d.timestamp,
          resolution: d.resolution_status,
          summary: d.summary,
          language: d.language,
          sentiment: d.user_sentiment,
        },
      };
    }
  }
}
