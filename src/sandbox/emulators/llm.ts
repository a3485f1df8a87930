import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LlmRequest {
  model: string;
  messages: { role: string; content: string }[];
  schema: { properties: Record<string, { enum?: unknown[] }>; required: string[] };
}

/**
 * An OpenAI-compatible chat-completions server that answers with structured output computed by
 * a rule the test gives it, and can fail: 5xx, 429, slow, malformed JSON, the connection dropped.
 */
export class LlmEmulator {
  rule: (req: LlmRequest) => Record<string, unknown> = () => ({});
  /** `failCount` requests get `errorStatus` (Infinity: all of them); `dropConnection` closes the socket. */
  faults = { errorStatus: 0, failCount: 0, latencyMs: 0, malformed: false, dropConnection: false };
  readonly requests: LlmRequest[] = [];
  private server: http.Server | undefined;
  url = '';

  async listen(): Promise<string> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => void this.handle(req, res, Buffer.concat(chunks).toString()));
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
    return this.url;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, raw: string): Promise<void> {
    if (this.faults.latencyMs) await new Promise((r) => setTimeout(r, this.faults.latencyMs));
    if (req.url !== '/v1/chat/completions' || req.method !== 'POST') {
      res.writeHead(404).end();
      return;
    }
    if (this.faults.dropConnection) {
      req.socket.destroy();
      return;
    }
    if (this.faults.errorStatus && this.faults.failCount > 0) {
      this.faults.failCount--;
      res.writeHead(this.faults.errorStatus, {
        'content-type': 'application/json',
        ...(this.faults.errorStatus === 429 && { 'retry-after': '1' }),
      });
      res.end(JSON.stringify({ error: { message: 'injected', type: 'server_error' } }));
      return;
    }
    const body = JSON.parse(raw) as {
      model: string;
      messages: LlmRequest['messages'];
      response_format?: { json_schema?: { schema?: LlmRequest['schema'] } };
    };
    const request: LlmRequest = {
      model: body.model,
      messages: body.messages,
      schema: body.response_format?.json_schema?.schema ?? { properties: {}, required: [] },
    };
    this.requests.push(request);
    const content = this.faults.malformed ? '{"oops": ' : JSON.stringify(this.rule(request));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        id: 'chatcmpl-emu',
        object: 'chat.completion',
        model: body.model,
        choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
      }),
    );
  }
}

export async function startLlmEmulator(): Promise<LlmEmulator> {
  const e = new LlmEmulator();
  await e.listen();
  return e;
}
