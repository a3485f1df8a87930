import { parseRetryAfter } from '../creatio/errors';

export type OpenCXErrorKind = 'unauthorized' | 'validation' | 'not_found' | 'rate_limited' | 'transient';

const NAMES: Record<OpenCXErrorKind, string> = {
  unauthorized: 'OpenCXUnauthorizedError',
  validation: 'OpenCXValidationError',
  not_found: 'OpenCXNotFoundError',
  rate_limited: 'OpenCXRateLimitedError',
  transient: 'OpenCXTransientError',
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
 * OpenCX's public API, as far as the bridge needs it: deliver an agent reply into a session and
 * resolve a session. Bearer API key; `{ statusCode, message, error }` error bodies.
 */
export class OpenCXClient {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
    private readonly timeoutMs = 15_000,
  ) {}

  async sendAgentMessage(
    sessionId: string,
    text: string,
    agentName: string,
  ): Promise<{ messageId: string | null }> {
    const res = await this.call('POST', `/chat/sessions/${encodeURIComponent(sessionId)}/send`, {
      sender: 'agent',
      message: { type: 'text', text },
      agent: { name: agentName },
      should_take_over_session_from_ai: true,
    });
    const id = (res as { data?: { message?: { id?: unknown } } } | undefined)?.data?.message?.id;
    return { messageId: typeof id === 'string' || typeof id === 'number' ? String(id) : null };
  }

  async resolveSession(sessionId: string): Promise<void> {
    await this.call('PATCH', `/chat/sessions/${encodeURIComponent(sessionId)}`, {
      status: 'closed_resolved',
    });
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const url = `${this.baseUrl.replace(/\/+$/, '')}${path}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${this.apiKey}`,
          accept: 'application/json',
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const e = err as { name?: string; cause?: { code?: string } };
      throw new OpenCXError(
        'transient',
        `${method} ${path} failed: ${e.name === 'TimeoutError' ? 'timed out' : (e.cause?.code ?? 'network error')}`,
      );
    }
    const text = await res.text();
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
