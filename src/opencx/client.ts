import { parseRetryAfter } from '../creatio/errors';
import type { CallLimiter } from '../net/call-limiter';
import { OutboundAddressRefusedError, policyFetch, readCapped, ResponseTooLargeError } from '../net/outbound';

export type OpenCXErrorKind =
  'unauthorized' | 'validation' | 'not_found' | 'rate_limited' | 'transient' | 'address_refused';

/** OpenCX answers are small JSON documents; anything larger is refused unread. */
const RESPONSE_MAX_BYTES = 1024 * 1024;

const NAMES: Record<OpenCXErrorKind, string> = {
  unauthorized: 'OpenCXUnauthorizedError',
  validation: 'OpenCXValidationError',
  not_found: 'OpenCXNotFoundError',
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

export interface OutgoingAttachment {
  name: string;
  base64: string;
  mimeType: string;
}

/**
 * OpenCX's public API, as far as the bridge needs it: deliver an agent reply into a session and
 * resolve a session. Bearer API key; `{ statusCode, message, error }` error bodies.
 */
export class OpenCXClient {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
    private readonly timeoutMs = 15_000,
    /** Paces this organization's calls (OpenCX allows about 100 per minute per key). */
    private readonly limiter?: CallLimiter,
  ) {}

  /**
   * Sends an agent message into a session, taking it over from the AI. `marker` is merged into
   * the session's custom data in the same request, so a later read can tell whether this exact
   * message was accepted (OpenCX's send has no idempotency key).
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

  /** The session's custom data (`GET /chat/sessions/{id}`); undefined when OpenCX does not know the session. */
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

  /** Agent messages in the session's history (`GET /chat/sessions/{id}/history`), oldest first. */
  async agentMessages(sessionId: string): Promise<{ text: string; createdAt: number | undefined }[]> {
    const res = await this.call('GET', `/chat/sessions/${encodeURIComponent(sessionId)}/history`);
    const body = res as { items?: unknown; data?: unknown } | unknown[] | undefined;
    const items = Array.isArray(body)
      ? body
      : Array.isArray(body?.items)
        ? body.items
        : Array.isArray(body?.data)
          ? body.data
          : [];
    const out: { text: string; createdAt: number | undefined }[] = [];
    for (const raw of items as Record<string, unknown>[]) {
      if (!raw || (raw.type !== undefined && raw.type !== 'message')) continue;
      const sender = raw.sender ?? raw.from;
      if (sender !== 'agent') continue;
      const text = typeof raw.text === 'string' ? raw.text : (raw.message as { text?: unknown })?.text;
      if (typeof text !== 'string') continue;
      const stamp = raw.created_at ?? raw.createdAt;
      const at = typeof stamp === 'string' || typeof stamp === 'number' ? new Date(stamp).getTime() : NaN;
      out.push({ text, createdAt: Number.isNaN(at) ? undefined : at });
    }
    return out;
  }

  /** One cheap authenticated read: does OpenCX take this API key? */
  async checkAccess(): Promise<void> {
    await this.call('GET', '/chat/sessions?limit=1');
  }

  async resolveSession(sessionId: string): Promise<void> {
    await this.call('PATCH', `/chat/sessions/${encodeURIComponent(sessionId)}`, {
      status: 'closed_resolved',
    });
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const url = `${this.baseUrl.replace(/\/+$/, '')}${path}`;
    let res: Response;
    await this.limiter?.acquire();
    try {
      res = await policyFetch(url, {
        method,
        redirect: 'manual',
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
      const refused = err instanceof OutboundAddressRefusedError ? err : e.cause;
      if (refused instanceof OutboundAddressRefusedError)
        throw new OpenCXError('address_refused', refused.message);
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
