import { parseRetryAfter } from '../creatio/errors';
import {
  OutboundAddressRefusedError,
  outboundRequest,
  type OutboundResponse,
  readCapped,
  ResponseTooLargeError,
} from '../net/outbound';

/** A chat completion with structured output is a few kilobytes. */
const RESPONSE_MAX_BYTES = 2 * 1024 * 1024;

export class LlmError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = retryable ? 'LlmTransientError' : 'LlmRequestError';
  }
}

const NETWORK_CAUSES: Record<string, string> = {
  UND_ERR_SOCKET: 'closed the connection before answering',
  ECONNRESET: 'reset the connection',
  ECONNREFUSED: 'refused the connection (nothing listens at LLM_BASE_URL?)',
  ENOTFOUND: 'has a host name that does not resolve (check LLM_BASE_URL)',
  EAI_AGAIN: 'has a host name that could not be resolved right now',
  UND_ERR_CONNECT_TIMEOUT: 'did not accept the connection in time',
  ETIMEDOUT: 'did not answer in time',
  UND_ERR_HEADERS_TIMEOUT: 'accepted the request but sent no answer in time',
};

/** A network failure in words, with its code for searching logs. */
function networkFailure(code: string | undefined): string {
  const what = (code && NETWORK_CAUSES[code]) ?? 'could not be reached';
  return `The LLM endpoint ${what}${code ? ` (${code})` : ''}`;
}

export interface LlmConfig {
  baseUrl: string;
  apiKey: string | undefined;
  model: string;
  timeoutMs: number;
}

/**
 * Chat completions on any OpenAI-compatible endpoint, asking for JSON that follows a schema
 * (`response_format: json_schema`, strict). Returns the parsed object.
 */
export async function completeJson(
  cfg: LlmConfig,
  messages: { role: 'system' | 'user'; content: string }[],
  schema: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  let res: OutboundResponse;
  try {
    res = await outboundRequest(`${cfg.baseUrl.replace(/\/+$/, '')}/chat/completions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(cfg.apiKey && { authorization: `Bearer ${cfg.apiKey}` }),
      },
      body: JSON.stringify({
        model: cfg.model,
        temperature: 0,
        messages,
        response_format: { type: 'json_schema', json_schema: { name: 'ai_fields', strict: true, schema } },
      }),
      signal: AbortSignal.timeout(cfg.timeoutMs),
    });
  } catch (err) {
    const e = err as { name?: string; cause?: { code?: string } };
    if (err instanceof OutboundAddressRefusedError) throw new LlmError(err.message, false);
    throw new LlmError(
      e.name === 'TimeoutError'
        ? `The LLM gave no answer within ${cfg.timeoutMs} ms`
        : networkFailure(e.cause?.code),
      true,
    );
  }
  let text: string;
  try {
    text = await readCapped(res, RESPONSE_MAX_BYTES, 'The LLM');
  } catch (err) {
    if (err instanceof ResponseTooLargeError) throw new LlmError(err.message, false);
    throw err;
  }
  if (res.status === 429 || res.status >= 500) {
    throw new LlmError(`LLM answered ${res.status}`, true, parseRetryAfter(res.headers.get('retry-after')));
  }
  if (!res.ok) {
    // Only the error message of an OpenAI-style error body is repeated, never the raw page.
    let detail = '';
    try {
      const m = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
      if (typeof m === 'string') detail = `: ${m.slice(0, 200)}`;
    } catch {
      // not JSON
    }
    throw new LlmError(`LLM answered ${res.status}${detail}`, false);
  }
  try {
    const body = JSON.parse(text) as { choices?: { message?: { content?: string } }[] };
    const content = body.choices?.[0]?.message?.content ?? '';
    const parsed = JSON.parse(content) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    return parsed as Record<string, unknown>;
  } catch {
    throw new LlmError('LLM answered with content that is not the requested JSON object', true);
  }
}
