import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An emulator of the OpenCX API the bridge calls, following OpenCX's API reference (each behaviour
 * cites its page; docs/opencx-reference.md has the whole picture):
 * - POST /chat/sessions/{id}/send, PATCH /chat/sessions/{id}, GET /chat/sessions/{id},
 *   GET /chat/sessions/{id}/history (nested events, paginated by cursor), GET and POST
 *   /chat/sessions;
 * - Bearer API keys and the `{ statusCode, message, error }` error body
 *   (https://docs.open.cx/api-reference/authentication), read-only keys included (`readOnlyKeys`);
 * - 100 requests per minute per key (the rate limit in the OpenAPI info block of the reference
 *   pages, e.g. https://docs.open.cx/api-reference/chat-sessions/list_history.md);
 * - faults (5xx, 429 + Retry-After, latency, outage, accepted-then-failed sends).
 * It also plays OpenCX's side of a conversation: `startConversation`, `say`, `handOff` and
 * `closeConversation` record the session and its history, and return the webhook body OpenCX would
 * send (built by `webhookBodies`, from the reference's field lists).
 */
export interface OpenCXFaults {
  errorRate: number;
  /**
   * The next N sends are accepted (recorded in the session's history) and then answered 502, or
   * the connection is dropped: the caller cannot tell whether the message went out.
   */
  acceptThenFail: number;
  acceptThenDrop: number;
  rateLimitBurst: number;
  retryAfterSec: number;
  latencyMs: number;
  outage: boolean;
  /** Every write (POST, PATCH) answered with this status (0: none); reads answer as usual. */
  writeErrorStatus: number;
}

export interface SentAttachment {
  name: string;
  mimeType: string | undefined;
  /** Decoded content when sent as base64, else undefined. */
  data: Buffer | undefined;
  url: string | undefined;
}

export interface SentMessage {
  id: string;
  sessionId: string;
  sender: string;
  text: string;
  agentName: string | undefined;
  takeOver: boolean;
  attachments: SentAttachment[];
  at: number;
}

/** The sender types of the history (ChatMessageSender: `contact`, `ai`, `human_agent`). */
export type HistorySenderType = 'contact' | 'ai' | 'human_agent';

/**
 * One history item as OpenCX serves it (https://docs.open.cx/api-reference/chat-sessions/list_history):
 * `{ id, created_at, event: { type: "message", sender: { type, name? }, content: { type: "text",
 * text }, attachments? } }`. `id` is in the current rendering of the page (not in the 2024 spec).
 */
export interface HistoryItem {
  id: string;
  created_at: string;
  event: {
    type: 'message';
    sender: { type: HistorySenderType; name?: string };
    content: { type: 'text'; text: string };
    attachments?: { id: string; name: string; size: number; type: string; url: string }[];
  };
}

export interface SessionContact {
  id: string;
  name: string | null;
  email: string | null;
  phone_number: string | null;
}

/** What OpenCX keeps of a session (the ChatSession of https://docs.open.cx/api-reference/chat-sessions/get). */
interface Session {
  id: string;
  status: 'open' | 'closed_resolved' | 'closed_unresolved';
  channel: string;
  contact: SessionContact | undefined;
  customData: Record<string, string | number | boolean>;
  handoff: { summary: string; sentiment?: string } | undefined;
  history: HistoryItem[];
  createdAt: string;
  updatedAt: string;
}

/** The envelope of every OpenCX webhook (https://docs.open.cx/api-reference/webhooks/types). */
export interface WebhookEnvelope {
  event: string;
  organization_id: string;
  data: unknown;
}

export type MessageEvent =
  'conversation.contact_response' | 'conversation.ai_response' | 'conversation.agent_response';

/**
 * The shape of a message event's body. The reference names the message events but documents no
 * body (https://docs.open.cx/api-reference/webhooks/types), so the tests send each plausible one:
 * - `nested`: `{ conversation_id, message: { id, text }, agent?, timestamp }` (DESIGN §7's assumption);
 * - `flat`: `{ conversation_id, message_id, text, timestamp }`;
 * - `history`: like a history item: `{ session_id, id, sender, content: { type, text }, created_at }`.
 */
export type MessageShape = 'nested' | 'flat' | 'history';

/**
 * The two renderings of conversation.closed on https://docs.open.cx/api-reference/webhooks/types:
 * `newer` (`human_resolution_status` / `ai_resolution_status`, no `resolution_status`) and `older`
 * (`resolution_status`, `data` typed as an array).
 */
export type ClosedRendering = 'newer' | 'older';

const now = () => new Date().toISOString();

/**
 * Webhook bodies of each event, from the field lists of https://docs.open.cx/api-reference/webhooks/types.
 * Where the page is silent (the message events' bodies; the handoff body after `reason`) the
 * fields are the bridge's assumptions, said so at each.
 */
export const webhookBodies = {
  /** conversation.started: every documented field (`assignee`, `contact`, `channel`, `first_message`, `timestamp`). */
  started(o: {
    organizationId: string;
    sessionId: string;
    contact?: { id?: string; name?: string; email?: string; phone_number?: string };
    channel?: 'web' | 'email' | 'phone';
    firstMessage?: string;
    timestamp?: string;
  }): WebhookEnvelope {
    const c = o.contact ?? {};
    return {
      event: 'conversation.started',
      organization_id: o.organizationId,
      data: {
        conversation_id: o.sessionId,
        assignee: { type: 'AI', name: 'OpenCX AI' },
        contact: {
          ...(c.id && { id: c.id }),
          ...(c.name && { name: c.name }),
          // The page puts email and phone under enriched_data (with address).
          enriched_data: {
            address: null,
            ...(c.email && { email: c.email }),
            ...(c.phone_number && { phone_number: c.phone_number }),
          },
          custom_data: {},
        },
        channel: o.channel ?? 'web',
        first_message: o.firstMessage ?? '',
        timestamp: o.timestamp ?? now(),
      },
    };
  },

  /** A message event. Its body is not documented: `shape` picks one of the plausible ones (see MessageShape). */
  message(
    event: MessageEvent,
    o: {
      organizationId: string;
      sessionId: string;
      messageId: string;
      text: string;
      agentName?: string;
      shape?: MessageShape;
      timestamp?: string;
    },
  ): WebhookEnvelope {
    const at = o.timestamp ?? now();
    const senderType: HistorySenderType =
      event === 'conversation.contact_response'
        ? 'contact'
        : event === 'conversation.ai_response'
          ? 'ai'
          : 'human_agent';
    let data: Record<string, unknown>;
    switch (o.shape ?? 'nested') {
      case 'nested':
        data = {
          conversation_id: o.sessionId,
          message: { id: o.messageId, text: o.text },
          ...(o.agentName && { agent: { id: 7, name: o.agentName } }),
          timestamp: at,
        };
        break;
      case 'flat':
        data = { conversation_id: o.sessionId, message_id: o.messageId, text: o.text, timestamp: at };
        break;
      case 'history':
        data = {
          session_id: o.sessionId,
          id: o.messageId,
          sender: { type: senderType, ...(o.agentName && { name: o.agentName }) },
          content: { type: 'text', text: o.text },
          created_at: at,
        };
        break;
    }
    return { event, organization_id: o.organizationId, data };
  },

  /**
   * conversation.handoff_to_human: the documented `conversation_id`, `timestamp`, `customer_id`,
   * `reason` (one of the listed values); `summary`, `language`, `sentiment` are assumed (the page
   * is not legible past `reason`).
   */
  handoff(o: {
    organizationId: string;
    sessionId: string;
    customerId?: string;
    reason?: string;
    summary?: string;
    language?: string;
    sentiment?: string;
    timestamp?: string;
  }): WebhookEnvelope {
    return {
      event: 'conversation.handoff_to_human',
      organization_id: o.organizationId,
      data: {
        conversation_id: o.sessionId,
        timestamp: o.timestamp ?? now(),
        customer_id: o.customerId ?? null,
        reason: o.reason ?? 'ai_decided_to_handoff_the_conversation',
        summary: o.summary ?? 'The customer asks for a refund.',
        language: o.language ?? 'en',
        sentiment: o.sentiment ?? 'neutral',
      },
    };
  },

  /**
   * conversation.closed, in either documented rendering:
   * - `newer`: `conversation_id?`, `timestamp`, `contact_id?`, `contact?`, `human_resolution_status`
   *   (resolved | not_resolved | null), `ai_resolution_status` (string | null), `ai_billing_tier`,
   *   `closed_by`, `is_from_third_party`, `third_party_name`, `summary`, `contact_reason`, and (the
   *   page's list is cut off there; as in the older rendering) `user_sentiment`, `language`,
   *   `message_count`;
   * - `older`: `data` is an array of one `{ conversation_id?, timestamp, contact_id?,
   *   resolution_status, resolution_type?, closed_by, is_from_third_party, third_party_name,
   *   summary, contact_reason, user_sentiment, language, message_count }`.
   * `withoutConversationId` leaves out the optional `conversation_id` (then `sessionIdField`
   * names the session instead, if given).
   */
  closed(o: {
    organizationId: string;
    sessionId: string;
    rendering: ClosedRendering;
    /** newer: `human_resolution_status`; older: `resolution_status` (null is read as not_resolved). */
    resolution?: 'resolved' | 'not_resolved' | null;
    /** newer only: `ai_resolution_status`. */
    aiResolution?: string | null;
    contactId?: string;
    summary?: string;
    language?: string;
    userSentiment?: string;
    messageCount?: number;
    withoutConversationId?: boolean;
    sessionIdField?: 'session_id';
    timestamp?: string;
  }): WebhookEnvelope {
    const common = {
      ...(!o.withoutConversationId && { conversation_id: o.sessionId }),
      ...(o.withoutConversationId && o.sessionIdField && { [o.sessionIdField]: o.sessionId }),
      timestamp: o.timestamp ?? now(),
      ...(o.contactId && { contact_id: o.contactId }),
      closed_by: { type: 'AI', name: 'OpenCX AI' },
      is_from_third_party: false,
      third_party_name: null,
      summary: o.summary ?? 'Password reset link resent.',
      contact_reason: 'account_access',
      user_sentiment: o.userSentiment ?? 'neutral',
      language: o.language ?? 'en',
      message_count: o.messageCount ?? 2,
    };
    if (o.rendering === 'newer') {
      return {
        event: 'conversation.closed',
        organization_id: o.organizationId,
        data: {
          ...common,
          ...(o.contactId && { contact: { id: o.contactId } }),
          human_resolution_status: o.resolution === undefined ? 'resolved' : o.resolution,
          ai_resolution_status: o.aiResolution ?? null,
          ai_billing_tier: null,
        },
      };
    }
    return {
      event: 'conversation.closed',
      organization_id: o.organizationId,
      data: [{ ...common, resolution_status: o.resolution ?? 'resolved', resolution_type: 'hard' }],
    };
  },
};

const SEND_SENDERS: Record<string, HistorySenderType> = { agent: 'human_agent', contact: 'contact' };

export class OpenCXEmulator {
  readonly apiKeys = new Set<string>(['ocx_test_key', 'ocx_sandbox_key']);
  /**
   * Valid keys that may only read (a key with custom scopes `chat-sessions:read` and no
   * `chat-sessions:write`, https://docs.open.cx/api-reference/authentication): 200 on reads, 403
   * on every write.
   */
  readonly readOnlyKeys = new Set<string>();
  /** The most recent requests (method, path and query, the key's last 4 characters), oldest first. */
  readonly requests: { method: string; url: string; key: string | undefined }[] = [];
  readonly sent: SentMessage[] = [];
  readonly statusChanges: { sessionId: string; status: string }[] = [];
  faults: OpenCXFaults = {
    errorRate: 0,
    acceptThenFail: 0,
    acceptThenDrop: 0,
    rateLimitBurst: 0,
    retryAfterSec: 1,
    latencyMs: 0,
    outage: false,
    writeErrorStatus: 0,
  };
  /** Largest request body accepted (base64 attachments make sends large). */
  maxBodyBytes = 25 * 1024 * 1024;
  readonly sessions = new Map<string, Session>();
  /** Called once a send is recorded, before it is answered (a test can kill the sender there). */
  onAccepted: ((m: SentMessage) => Promise<void> | void) | undefined;
  /** False: custom data is accepted but not kept (nor shown), so only the history can tell what was sent. */
  keepsCustomData = true;
  /** Requests per minute per API key before 429 (the reference's OpenAPI info: 100 for standard endpoints). */
  perMinute = 100;
  /**
   * A session exists from its conversation's start (`startConversation`, or POST /chat/sessions).
   * True: any other session id is answered 404 on every session route, as OpenCX would. False (the
   * default, for tests that never start the conversation here): any id is a session that started
   * before the emulator was watching.
   */
  sessionsMustExist = false;
  /** Items per history page. The reference documents pagination by cursor but no page size. */
  historyPageSize = 20;
  /**
   * False: the history route answers 404 (an OpenCX, or a key, without it: the route is in the
   * current reference, list_history, but not in the 2024 OpenAPI spec of opencx-oapi-ts).
   */
  servesHistory = true;
  private readonly window = new Map<string, number[]>();
  private seed = 7;
  private server: http.Server | undefined;
  url = '';

  private random(): number {
    this.seed = (this.seed * 16807) % 2147483647;
    return this.seed / 2147483647;
  }

  messagesFor(sessionId: string): SentMessage[] {
    return this.sent.filter((m) => m.sessionId === sessionId);
  }

  /** The session, created when unknown unless sessions must exist (then undefined). */
  private session(id: string, create = !this.sessionsMustExist): Session | undefined {
    let s = this.sessions.get(id);
    if (!s && create) {
      const at = now();
      s = {
        id,
        status: 'open',
        channel: 'web',
        contact: undefined,
        customData: {},
        handoff: undefined,
        history: [],
        createdAt: at,
        updatedAt: at,
      };
      this.sessions.set(id, s);
    }
    return s;
  }

  private record(
    s: Session,
    type: HistorySenderType,
    text: string,
    name?: string,
    id: string = randomUUID(),
  ): HistoryItem {
    const item: HistoryItem = {
      id,
      created_at: now(),
      event: {
        type: 'message',
        sender: { type, ...(name && { name }) },
        content: { type: 'text', text },
      },
    };
    s.history.push(item);
    s.updatedAt = item.created_at;
    return item;
  }

  /**
   * A conversation starts in OpenCX: the session exists from now on (with the first message in its
   * history when there is one), and this is the conversation.started webhook OpenCX sends.
   */
  startConversation(
    sessionId: string,
    o: {
      organizationId: string;
      contact?: { id?: string; name?: string; email?: string; phone_number?: string };
      channel?: 'web' | 'email' | 'phone';
      firstMessage?: string;
    },
  ): WebhookEnvelope {
    const s = this.session(sessionId, true)!;
    s.channel = o.channel ?? 'web';
    const contactId = o.contact?.id ?? randomUUID();
    s.contact = {
      id: contactId,
      name: o.contact?.name ?? null,
      email: o.contact?.email ?? null,
      phone_number: o.contact?.phone_number ?? null,
    };
    if (o.firstMessage) this.record(s, 'contact', o.firstMessage);
    return webhookBodies.started({
      organizationId: o.organizationId,
      sessionId,
      contact: { ...o.contact, id: contactId },
      channel: s.channel as 'web' | 'email' | 'phone',
      firstMessage: o.firstMessage,
      timestamp: s.createdAt,
    });
  }

  /**
   * Someone writes in the conversation (the customer, the AI, or an agent from OpenCX's inbox): the
   * message joins the history, and this is the webhook OpenCX sends for it (body `shape`: see
   * MessageShape). The message id is the history item's id.
   */
  say(
    sessionId: string,
    who: 'contact' | 'ai' | 'human_agent',
    text: string,
    o: { organizationId: string; shape?: MessageShape; agentName?: string },
  ): WebhookEnvelope {
    const s = this.session(sessionId, true)!;
    const item = this.record(s, who, text, o.agentName);
    const event: MessageEvent =
      who === 'contact'
        ? 'conversation.contact_response'
        : who === 'ai'
          ? 'conversation.ai_response'
          : 'conversation.agent_response';
    return webhookBodies.message(event, {
      organizationId: o.organizationId,
      sessionId,
      messageId: item.id,
      text,
      agentName: o.agentName,
      shape: o.shape,
      timestamp: item.created_at,
    });
  }

  /** The AI hands the conversation to a human: recorded on the session (its `handoff`), and the webhook. */
  handOff(
    sessionId: string,
    o: {
      organizationId: string;
      summary?: string;
      sentiment?: 'angry' | 'neutral' | 'happy';
      reason?: string;
    },
  ): WebhookEnvelope {
    const s = this.session(sessionId, true)!;
    s.handoff = {
      summary: o.summary ?? 'The customer asks for a refund.',
      sentiment: o.sentiment ?? 'neutral',
    };
    return webhookBodies.handoff({
      organizationId: o.organizationId,
      sessionId,
      customerId: s.contact?.id,
      reason: o.reason,
      summary: s.handoff.summary,
      sentiment: s.handoff.sentiment,
    });
  }

  /** The conversation closes in OpenCX: the session's status changes, and the closed webhook in `rendering`. */
  closeConversation(
    sessionId: string,
    o: {
      organizationId: string;
      rendering: ClosedRendering;
      resolution?: 'resolved' | 'not_resolved' | null;
      aiResolution?: string | null;
    },
  ): WebhookEnvelope {
    const s = this.session(sessionId, true)!;
    const resolved = (o.resolution === undefined ? 'resolved' : o.resolution) === 'resolved';
    s.status = resolved ? 'closed_resolved' : 'closed_unresolved';
    s.updatedAt = now();
    return webhookBodies.closed({
      organizationId: o.organizationId,
      sessionId,
      rendering: o.rendering,
      resolution: o.resolution,
      aiResolution: o.aiResolution,
      contactId: s.contact?.id,
      messageCount: s.history.length,
    });
  }

  async listen(port = 0): Promise<string> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** OpenCX's error body, ErrorDto `{ statusCode, message, error }` (https://docs.open.cx/api-reference/authentication). */
  private error(
    res: ServerResponse,
    status: number,
    message: string,
    error: string,
    headers: Record<string, string> = {},
  ): void {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify({ statusCode: status, message, error }));
  }

  private json(res: ServerResponse, status: number, body?: unknown): void {
    if (body === undefined) {
      res.writeHead(status);
      res.end();
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  /** GET /chat/sessions/{id}: the ChatSession of https://docs.open.cx/api-reference/chat-sessions/get. */
  private sessionBody(s: Session): Record<string, unknown> {
    return {
      id: s.id,
      status: s.status,
      channel: { type: s.channel },
      ...(s.contact && { contact: { ...s.contact, custom_data: {} } }),
      ...(this.keepsCustomData && { custom_data: s.customData }),
      ...(s.handoff && { handoff: s.handoff }),
      created_at: s.createdAt,
      updated_at: s.updatedAt,
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const f = this.faults;
    if (f.latencyMs) await new Promise((r) => setTimeout(r, f.latencyMs));
    if (f.outage) return this.error(res, 503, 'Service Unavailable', 'Service Unavailable');
    // https://docs.open.cx/api-reference/authentication: a missing or unknown key is 401.
    const key = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    this.requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', key: key?.slice(-4) });
    if (this.requests.length > 200) this.requests.shift();
    if (!key || !(this.apiKeys.has(key) || this.readOnlyKeys.has(key)))
      return this.error(res, 401, 'Unauthorized', 'Unauthorized');
    // The same page: 403 "Key is valid but doesn't have access to this resource"; a scope's write
    // action covers create, update and delete. The message text is not documented.
    const write = req.method !== 'GET' && req.method !== 'HEAD';
    if (write && !this.apiKeys.has(key))
      return this.error(res, 403, 'Missing scope: chat-sessions:write', 'Forbidden');
    const at = Date.now();
    const hits = (this.window.get(key) ?? []).filter((t) => t > at - 60_000);
    if (f.rateLimitBurst > 0 || hits.length >= this.perMinute) {
      if (f.rateLimitBurst > 0) f.rateLimitBurst--;
      // The reference states the limit, not the answer past it: 429 with Retry-After is assumed.
      return this.error(res, 429, 'Too Many Requests', 'Too Many Requests', {
        'retry-after': String(f.retryAfterSec),
      });
    }
    hits.push(at);
    this.window.set(key, hits);
    if (f.errorRate > 0 && this.random() < f.errorRate)
      return this.error(res, 500, 'Internal server error', 'Internal Server Error');
    if (write && f.writeErrorStatus) {
      const name = http.STATUS_CODES[f.writeErrorStatus] ?? 'Error';
      return this.error(res, f.writeErrorStatus, name, name);
    }

    const url = new URL(req.url ?? '/', 'http://x');
    let body: Record<string, any> = {};
    try {
      body = raw ? (JSON.parse(raw) as Record<string, any>) : {};
    } catch {
      return this.error(res, 400, 'Invalid JSON', 'Bad Request');
    }
    const send = /^\/chat\/sessions\/([^/]+)\/send$/.exec(url.pathname);
    const history = /^\/chat\/sessions\/([^/]+)\/history$/.exec(url.pathname);
    const one = /^\/chat\/sessions\/([^/]+)$/.exec(url.pathname);
    // The reference documents no 404 for an unknown session; OpenCX's error body is assumed.
    const unknown = () => this.error(res, 404, 'Session not found', 'Not Found');

    if (req.method === 'POST' && send) {
      // https://docs.open.cx/api-reference/chat-sessions/send: `sender` (contact or agent),
      // `message { type: "text", text, attachments? }`, `agent { name }`,
      // `should_take_over_session_from_ai`, `custom_data` (merged into the session; strings,
      // numbers, booleans), answered 201.
      const sender = body.sender;
      if (sender !== 'agent' && sender !== 'contact')
        return this.error(res, 400, 'sender must be one of agent, contact', 'Bad Request');
      if (body.message?.type !== 'text' || typeof body.message?.text !== 'string' || !body.message.text) {
        return this.error(res, 400, 'message.text must be a non-empty string', 'Bad Request');
      }
      const attachments: SentAttachment[] = [];
      for (const a of (body.message.attachments ?? []) as Record<string, unknown>[]) {
        if (typeof a.name !== 'string' || (typeof a.base64 !== 'string' && typeof a.url !== 'string')) {
          return this.error(res, 400, 'attachments need a name and a url or base64', 'Bad Request');
        }
        attachments.push({
          name: a.name,
          mimeType: typeof a.mime_type === 'string' ? a.mime_type : undefined,
          data: typeof a.base64 === 'string' ? Buffer.from(a.base64, 'base64') : undefined,
          url: typeof a.url === 'string' ? a.url : undefined,
        });
      }
      const custom = body.custom_data ?? {};
      if (typeof custom !== 'object' || Object.values(custom).some((v) => typeof v === 'object')) {
        return this.error(res, 400, 'custom_data values must be strings, numbers or booleans', 'Bad Request');
      }
      const sessionId = decodeURIComponent(send[1]!);
      const session = this.session(sessionId);
      if (!session) return unknown();
      if (this.keepsCustomData) Object.assign(session.customData, custom);
      const item = this.record(session, SEND_SENDERS[sender]!, body.message.text, body.agent?.name);
      if (attachments.length)
        item.event.attachments = attachments.map((a) => ({
          id: randomUUID(),
          name: a.name,
          size: a.data?.length ?? 0,
          type: a.mimeType ?? 'application/octet-stream',
          url: a.url ?? `https://files.open.cx/${encodeURIComponent(a.name)}`,
        }));
      const message: SentMessage = {
        id: item.id,
        sessionId,
        sender,
        text: body.message.text,
        agentName: body.agent?.name,
        takeOver: body.should_take_over_session_from_ai === true,
        attachments,
        at,
      };
      this.sent.push(message);
      await this.onAccepted?.(message);
      if (f.acceptThenDrop > 0) {
        f.acceptThenDrop--;
        req.socket.destroy();
        return;
      }
      if (f.acceptThenFail > 0) {
        f.acceptThenFail--;
        return this.error(res, 502, 'Bad Gateway', 'Bad Gateway');
      }
      // 201 (the send page). The page's current body documents no message id for an agent send;
      // the emulator adds one under data.message.id, which the client reads when present.
      return this.json(res, 201, { success: true, data: { success: true, message: { id: item.id } } });
    }
    if (req.method === 'GET' && history && !this.servesHistory) {
      return this.error(res, 404, `Cannot GET ${url.pathname}`, 'Not Found');
    }
    if (req.method === 'GET' && history) {
      // https://docs.open.cx/api-reference/chat-sessions/list_history: `{ items: [{ id,
      // created_at, event }], next }`, `next` the cursor of the next page or null; `?cursor=`.
      // Oldest first (the page does not say; the client does not depend on it).
      const s = this.session(decodeURIComponent(history[1]!));
      if (!s) return unknown();
      let offset = 0;
      const cursor = url.searchParams.get('cursor');
      if (cursor !== null) {
        const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
        if (!/^\d{1,9}$/.test(decoded)) return this.error(res, 400, 'cursor is not valid', 'Bad Request');
        offset = Number(decoded);
      }
      const size = Math.max(1, this.historyPageSize);
      const items = s.history.slice(offset, offset + size);
      const more = offset + size < s.history.length;
      return this.json(res, 200, {
        items,
        next: more ? Buffer.from(String(offset + size), 'utf8').toString('base64url') : null,
      });
    }
    if (req.method === 'GET' && one) {
      // https://docs.open.cx/api-reference/chat-sessions/get.
      const s = this.session(decodeURIComponent(one[1]!));
      if (!s) return unknown();
      return this.json(res, 200, this.sessionBody(s));
    }
    if (req.method === 'PATCH' && one) {
      // https://docs.open.cx/api-reference/chat-sessions/update: `status` one of open,
      // closed_resolved, closed_unresolved (plus flags the emulator ignores); 200 without a body
      // (the 2024 OpenAPI spec, github.com/openchatai/opencx-oapi-ts spec.json).
      if (!['open', 'closed_resolved', 'closed_unresolved'].includes(body.status)) {
        return this.error(
          res,
          400,
          'status must be one of open, closed_resolved, closed_unresolved',
          'Bad Request',
        );
      }
      const sessionId = decodeURIComponent(one[1]!);
      const s = this.session(sessionId);
      if (!s) return unknown();
      this.statusChanges.push({ sessionId, status: body.status });
      s.status = body.status;
      s.updatedAt = now();
      return this.json(res, 200);
    }
    if (req.method === 'GET' && url.pathname === '/chat/sessions') {
      // https://docs.open.cx/api-reference/chat-sessions/list: `{ items, next }` (one page here).
      return this.json(res, 200, {
        items: [...this.sessions.values()].map((s) => this.sessionBody(s)),
        next: null,
      });
    }
    if (req.method === 'POST' && url.pathname === '/chat/sessions') {
      // Create a chat session (github.com/openchatai/opencx-oapi-ts spec.json, createChatSession):
      // `{ contact_id?, channel? { type } }` → 201 `{ id }`. The session exists from now on.
      const s = this.session(randomUUID(), true)!;
      if (typeof body.channel?.type === 'string') s.channel = body.channel.type;
      if (typeof body.contact_id === 'string')
        s.contact = { id: body.contact_id, name: null, email: null, phone_number: null };
      return this.json(res, 201, { id: s.id });
    }
    this.error(res, 404, 'Not Found', 'Not Found');
  }
}

export async function startOpenCXEmulator(port = 0): Promise<OpenCXEmulator> {
  const e = new OpenCXEmulator();
  await e.listen(port);
  return e;
}
