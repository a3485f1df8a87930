import { randomUUID } from 'node:crypto';
import { parseRetryAfter } from '../creatio/errors';
import type { CallPacer } from '../net/call-limiter';
import {
  OutboundAddressRefusedError,
  outboundRequest,
  type OutboundResponse,
  readCapped,
  ResponseTooLargeError,
} from '../net/outbound';
import type { Author } from '../workflows/contract';

/**
 * What went wrong with an OpenCX call. `session_not_found`: OpenCX answered 404 to a read of a
 * session's history: it does not know the session (a wrong id, another organization's, or one it
 * deleted). Retrying cannot fix that, unlike a 404 on a send (`not_found`, retried: OpenCX may not
 * have the session yet).
 */
export type OpenCXErrorKind =
  | 'unauthorized'
  | 'validation'
  | 'not_found'
  | 'session_not_found'
  | 'reply_unverifiable'
  | 'rate_limited'
  | 'transient'
  | 'address_refused';

/** OpenCX answers are small JSON documents; anything larger is refused unread. */
const RESPONSE_MAX_BYTES = 1024 * 1024;

const NAMES: Record<OpenCXErrorKind, string> = {
  unauthorized: 'OpenCXUnauthorizedError',
  validation: 'OpenCXValidationError',
  not_found: 'OpenCXNotFoundError',
  session_not_found: 'OpenCXSessionNotFoundError',
  reply_unverifiable: 'OpenCXReplyUnverifiableError',
  rate_limited: 'OpenCXRateLimitedError',
  transient: 'OpenCXTransientError',
  address_refused: 'OpenCXAddressRefusedError',
};

export class OpenCXError extends Error {
  constructor(
    readonly kind: OpenCXErrorKind,
    message: string,
    readonly status?: number,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = NAMES[kind];
  }

  get retryable(): boolean {
    return this.kind === 'rate_limited' || this.kind === 'transient' || this.kind === 'not_found';
  }
}

/**
 * One message of a session's transcript, as OpenCX's history serves it
 * (https://docs.open.cx/api-reference/chat-sessions/list_history): `items[]` of `{ id?,
 * created_at, event: { type: "message", sender: { type, name? }, content: { type: "text", text },
 * attachments?, context? } }`.
 */
export interface TranscriptMessage {
  /** The history item's `id` (in the current reference; the 2024 OpenAPI spec has none). */
  id: string | undefined;
  /** `event.sender.type` as served: `contact`, `ai`, `human_agent` (the names the reference lists). */
  senderType: string;
  /** The bridge's author for that sender type; undefined for a sender type it does not know. */
  author: Author | undefined;
  senderName: string | undefined;
  text: string;
  /** `created_at` (ISO 8601), when the item has a valid one. */
  createdAt: string | undefined;
  /** `event.attachments` (`{ id, name, size, type, url }`): those with a URL. */
  attachments: { name: string; url: string; mimeType?: string }[];
}

/**
 * The most history pages one read follows (the page size is OpenCX's, not documented). Past it the
 * read stops and says it is incomplete; a cursor OpenCX repeats also stops it.
 */
export const HISTORY_MAX_PAGES = 100;

/**
 * The author of a history sender type. The reference lists `contact`, `ai`, `human_agent`
 * (ChatMessageSender in the OpenAPI spec of github.com/openchatai/opencx-oapi-ts; the current
 * list_history page shows `sender.type` as a string, example `contact`). `agent` / `human` (the
 * webhooks' `closed_by.type` word) and `user` / `customer` are read as plausible spellings.
 */
const SENDER_AUTHORS: Record<string, Author> = {
  contact: 'customer',
  user: 'customer',
  customer: 'customer',
  ai: 'ai',
  human_agent: 'agent',
  agent: 'agent',
  human: 'agent',
};

export interface OutgoingAttachment {
  name: string;
  base64: string;
  mimeType: string;
}

/**
 * OpenCX's public API, as far as the bridge needs it: deliver an agent reply into a session,
 * resolve a session, read a session and its history. Bearer API key
 * (https://docs.open.cx/api-reference/authentication: 401 missing or invalid key, 403 key without
 * access); `{ statusCode, message, error }` error bodies (ErrorDto of every chat-sessions page).
 * docs/opencx-reference.md lists what each call relies on.
 */
export class OpenCXClient {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
    private readonly timeoutMs = 15_000,
    /** Paces the calls of this API key (OpenCX allows 100 per minute per key). */
    private readonly limiter?: CallPacer,
  ) {}

  /**
   * Sends an agent message into a session, taking it over from the AI
   * (https://docs.open.cx/api-reference/chat-sessions/send: `sender`, `message { type, text,
   * attachments? }`, `agent { name }`, `should_take_over_session_from_ai`, `custom_data`; answered
   * 201). `marker` is merged into the session's custom data in the same request, so a later read
   * can tell whether this exact message was accepted (OpenCX's send has no idempotency key). The
   * answer's message id is read where present (`data.message.id`); the current rendering of the
   * page documents none for an agent send, so nothing depends on it.
   */
  async sendAgentMessage(
    sessionId: string,
    m: {
      text: string;
      agentName: string;
      attachments?: OutgoingAttachment[];
      marker?: Record<string, string>;
    },
  ): Promise<{ messageId: string | null }> {
    const res = await this.call('POST', `/chat/sessions/${encodeURIComponent(sessionId)}/send`, {
      sender: 'agent',
      message: {
        type: 'text',
        text: m.text,
        ...(m.attachments?.length && {
          attachments: m.attachments.map((a) => ({ name: a.name, base64: a.base64, mime_type: a.mimeType })),
        }),
      },
      agent: { name: m.agentName },
      should_take_over_session_from_ai: true,
      ...(m.marker && { custom_data: m.marker }),
    });
    const id = (res as { data?: { message?: { id?: unknown } } } | undefined)?.data?.message?.id;
    return { messageId: typeof id === 'string' || typeof id === 'number' ? String(id) : null };
  }

  /**
   * The session's custom data (`GET /chat/sessions/{id}`, top-level `custom_data`:
   * https://docs.open.cx/api-reference/chat-sessions/get); undefined when OpenCX answers 404 (the
   * page documents no 404: read as "does not know the session").
   */
  async sessionCustomData(sessionId: string): Promise<Record<string, unknown> | undefined> {
    let res: unknown;
    try {
      res = await this.call('GET', `/chat/sessions/${encodeURIComponent(sessionId)}`);
    } catch (err) {
      if (err instanceof OpenCXError && err.kind === 'not_found') return undefined;
      throw err;
    }
    const body = res as { custom_data?: unknown; data?: { custom_data?: unknown } } | undefined;
    const custom = body?.custom_data ?? body?.data?.custom_data;
    return custom && typeof custom === 'object' ? (custom as Record<string, unknown>) : {};
  }

  /**
   * Every message of the session's transcript, oldest first: all pages of
   * `GET /chat/sessions/{id}/history` by `cursor` (chat-sessions/list_history), at most
   * HISTORY_MAX_PAGES (then `complete` is false). Only `message` events with a text are
   * transcript; handoffs, status changes and internal comments (`human_agent_comment`) are not.
   * A 404 is OpenCXSessionNotFoundError (not retried).
   */
  async transcript(sessionId: string): Promise<{ messages: TranscriptMessage[]; complete: boolean }> {
    const base = `/chat/sessions/${encodeURIComponent(sessionId)}/history`;
    const messages: TranscriptMessage[] = [];
    const seen = new Set<string>();
    let cursor: string | undefined;
    for (let page = 0; page < HISTORY_MAX_PAGES; page++) {
      let res: unknown;
      try {
        res = await this.call('GET', cursor ? `${base}?cursor=${encodeURIComponent(cursor)}` : base);
      } catch (err) {
        if (err instanceof OpenCXError && err.kind === 'not_found')
          throw new OpenCXError(
            'session_not_found',
            `OpenCX does not know session ${sessionId}: ${err.message}`,
            404,
          );
        throw err;
      }
      const body = (res ?? {}) as { items?: unknown; next?: unknown };
      for (const item of Array.isArray(body.items) ? body.items : []) {
        const m = transcriptMessage(item);
        if (m) messages.push(m);
      }
      const next = typeof body.next === 'string' && body.next ? body.next : undefined;
      if (!next) return { messages: oldestFirst(messages), complete: true };
      if (seen.has(next)) break;
      seen.add(next);
      cursor = next;
    }
    return { messages: oldestFirst(messages), complete: false };
  }

  /**
   * Agent messages in the session's history (sender `human_agent`), oldest first: what the reply
   * duplicate check compares with. Reads every page (see `transcript`).
   */
  async agentMessages(sessionId: string): Promise<{ text: string; createdAt: number | undefined }[]> {
    const { messages } = await this.transcript(sessionId);
    return messages
      .filter((m) => m.author === 'agent')
      .map((m) => ({
        text: m.text,
        createdAt: m.createdAt === undefined ? undefined : Date.parse(m.createdAt),
      }));
  }

  /**
   * One cheap authenticated read: does OpenCX take this API key? `GET /chat/sessions` (one page;
   * https://docs.open.cx/api-reference/chat-sessions/list documents no page-size parameter, so
   * none is sent).
   */
  async checkAccess(): Promise<void> {
    await this.call('GET', '/chat/sessions');
  }

  /**
   * A write that changes nothing: may this key write chat sessions? `PATCH /chat/sessions/{id}`
   * `{ status: "open" }` (https://docs.open.cx/api-reference/chat-sessions/update) for a random id
   * that no session has, so nothing reaches a customer and no session changes. What OpenCX answers:
   * - `allowed`: 404 (OpenCX looked for the session, so the key passed the access check), a 400 or
   *   422 about the session, or a 2xx;
   * - `refused`: 401 or 403, a key without write access (a scoped key without `chat-sessions:write`,
   *   https://docs.open.cx/api-reference/authentication);
   * - `unknown`: anything else (5xx, 429, a timeout, another 4xx): the answer cannot tell.
   * `answer` says what OpenCX answered, the random id left out.
   */
  async probeWriteAccess(): Promise<{ verdict: 'allowed' | 'refused' | 'unknown'; answer: string }> {
    const path = `/chat/sessions/${randomUUID()}`;
    try {
      await this.call('PATCH', path, { status: 'open' });
      return { verdict: 'allowed', answer: 'a write was accepted' };
    } catch (err) {
      if (!(err instanceof OpenCXError)) throw err;
      const answer = err.message.replace(path, '/chat/sessions/{random id}');
      // The message is `PATCH <path> answered <status>[: <OpenCX's message>]`.
      const detail = err.message.slice(`PATCH ${path} answered ${err.status}`.length);
      const status = err.status;
      if (status === 404 || ((status === 400 || status === 422) && /session/i.test(detail)))
        return { verdict: 'allowed', answer };
      if (status === 401 || status === 403) return { verdict: 'refused', answer };
      return { verdict: 'unknown', answer };
    }
  }

  /**
   * `PATCH /chat/sessions/{id}` `{ status: "closed_resolved" }`
   * (https://docs.open.cx/api-reference/chat-sessions/update: `open` | `closed_resolved` |
   * `closed_unresolved`).
   */
  async resolveSession(sessionId: string): Promise<void> {
    await this.call('PATCH', `/chat/sessions/${encodeURIComponent(sessionId)}`, {
      status: 'closed_resolved',
    });
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const url = `${this.baseUrl.replace(/\/+$/, '')}${path}`;
    let res: OutboundResponse;
    await this.limiter?.acquire();
    try {
      res = await outboundRequest(url, {
        method,
        headers: {
          authorization: `Bearer ${this.apiKey}`,
          accept: 'application/json',
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      this.limiter?.done({
        status: res.status,
        retryAfterMs: parseRetryAfter(res.headers.get('retry-after')),
      });
    } catch (err) {
      this.limiter?.done({ status: 'error' });
      const e = err as { name?: string; cause?: { code?: string } };
      if (err instanceof OutboundAddressRefusedError) throw new OpenCXError('address_refused', err.message);
      throw new OpenCXError(
        'transient',
        `${method} ${path} failed: ${e.name === 'TimeoutError' ? 'timed out' : (e.cause?.code ?? 'network error')}`,
      );
    }
    let text: string;
    try {
      text = await readCapped(res, RESPONSE_MAX_BYTES, `${method} ${path}`);
    } catch (err) {
      if (err instanceof ResponseTooLargeError) throw new OpenCXError('validation', err.message, res.status);
      throw err;
    }
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.ok) return json;
    const detail = (json as { message?: unknown } | undefined)?.message;
    const msg = `${method} ${path} answered ${res.status}${typeof detail === 'string' ? `: ${detail}` : ''}`;
    if (res.status === 429)
      throw new OpenCXError(
        'rate_limited',
        msg,
        429,
        parseRetryAfter(res.headers.get('retry-after')) ?? 60_000,
      );
    if (res.status >= 500)
      throw new OpenCXError('transient', msg, res.status, parseRetryAfter(res.headers.get('retry-after')));
    if (res.status === 401 || res.status === 403) throw new OpenCXError('unauthorized', msg, res.status);
    if (res.status === 404) throw new OpenCXError('not_found', msg, res.status);
    throw new OpenCXError('validation', msg, res.status);
  }
}

/** A history item as a transcript message, or undefined when it is not one. */
function transcriptMessage(raw: unknown): TranscriptMessage | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const item = raw as { id?: unknown; created_at?: unknown; event?: unknown };
  const event = item.event as { type?: unknown; sender?: unknown; content?: unknown } | undefined;
  if (!event || typeof event !== 'object' || event.type !== 'message') return undefined;
  const sender = event.sender;
  const senderType =
    typeof sender === 'string'
      ? sender
      : sender && typeof sender === 'object' && typeof (sender as { type?: unknown }).type === 'string'
        ? (sender as { type: string }).type
        : undefined;
  if (senderType === undefined) return undefined;
  const senderName =
    sender && typeof sender === 'object' && typeof (sender as { name?: unknown }).name === 'string'
      ? (sender as { name: string }).name
      : undefined;
  const content = event.content;
  const text =
    typeof content === 'string'
      ? content
      : content && typeof content === 'object' && typeof (content as { text?: unknown }).text === 'string'
        ? (content as { text: string }).text
        : undefined;
  if (text === undefined) return undefined;
  const stamp = typeof item.created_at === 'string' ? Date.parse(item.created_at) : NaN;
  const files = (event as { attachments?: unknown }).attachments;
  const attachments = (Array.isArray(files) ? files : []).flatMap((a: unknown) => {
    const f = a as { name?: unknown; url?: unknown; type?: unknown } | null;
    if (!f || typeof f.url !== 'string' || !f.url) return [];
    const name =
      typeof f.name === 'string' && f.name ? f.name : (f.url.split(/[?#]/)[0]!.split('/').pop() ?? 'file');
    return [{ name, url: f.url, ...(typeof f.type === 'string' && f.type && { mimeType: f.type }) }];
  });
  return {
    id: typeof item.id === 'string' || typeof item.id === 'number' ? String(item.id) : undefined,
    senderType,
    author: SENDER_AUTHORS[senderType.toLowerCase()],
    senderName,
    text,
    createdAt: Number.isNaN(stamp) ? undefined : new Date(stamp).toISOString(),
    attachments,
  };
}

/**
 * Oldest first. The reference does not say in which order history pages come; items are sorted
 * by `created_at` (stable, so items of the same instant keep OpenCX's order), and left as served
 * when some have no time.
 */
function oldestFirst(messages: TranscriptMessage[]): TranscriptMessage[] {
  if (messages.some((m) => m.createdAt === undefined)) return messages;
  return [...messages].sort((a, b) => Date.parse(a.createdAt!) - Date.parse(b.createdAt!));
}
