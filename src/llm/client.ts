import { parseRetryAfter } from '../creatio/errors';

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
  let res: Response;
  try {
    res = await fetch(`${cfg.baseUrl.replace(/\/+$/, '')}/chat/completions`, {
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
    throw new LlmError(
      `LLM request failed: ${e.name === 'TimeoutError' ? `no answer within ${cfg.timeoutMs} ms` : (e.cause?.code ?? 'network error')}`,
      true,
    );
  }
  const text = await res.text();
  if (res.status === 429 || res.status >= 500) {
    throw new LlmError(`LLM answered ${res.status}`, true, parseRetryAfter(res.headers.get('retry-after')));
  }
  if (!res.ok) throw new LlmError(`LLM answered ${res.status}: ${text.slice(0, 200)}`, false);
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
