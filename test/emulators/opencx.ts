import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An emulator of the OpenCX API calls the bridge makes: POST /chat/sessions/{id}/send and
 * PATCH /chat/sessions/{id}, with Bearer API keys, OpenCX's error body, the 100 requests/minute
 * limit, and faults. It records what it receives.
 */
export interface OpenCXFaults {
  errorRate: number;
  rateLimitBurst: number;
  retryAfterSec: number;
  latencyMs: number;
  outage: boolean;
}

export interface SentMessage {
  sessionId: string;
  sender: string;
  text: string;
  agentName: string | undefined;
  takeOver: boolean;
  at: number;
}

export class OpenCXEmulator {
  readonly apiKeys = new Set<string>(['ocx_test_key', 'ocx_sandbox_key']);
  readonly sent: SentMessage[] = [];
  readonly statusChanges: { sessionId: string; status: string }[] = [];
  faults: OpenCXFaults = { errorRate: 0, rateLimitBurst: 0, retryAfterSec: 1, latencyMs: 0, outage: false };
  /** Requests per minute per API key before 429 (OpenCX documents 100). */
  perMinute = 100;
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

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const f = this.faults;
    if (f.latencyMs) await new Promise((r) => setTimeout(r, f.latencyMs));
    if (f.outage) return this.error(res, 503, 'Service Unavailable', 'Service Unavailable');
    const key = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!key || !this.apiKeys.has(key)) return this.error(res, 401, 'Unauthorized', 'Unauthorized');
    const now = Date.now();
    const hits = (this.window.get(key) ?? []).filter((t) => t > now - 60_000);
    if (f.rateLimitBurst > 0 || hits.length >= this.perMinute) {
      if (f.rateLimitBurst > 0) f.rateLimitBurst--;
      return this.error(res, 429, 'Too Many Requests', 'Too Many Requests', {
        'retry-after': String(f.retryAfterSec),
      });
    }
    hits.push(now);
    this.window.set(key, hits);
    if (f.errorRate > 0 && this.random() < f.errorRate)
      return this.error(res, 500, 'Internal server error', 'Internal Server Error');

    const url = new URL(req.url ?? '/', 'http://x');
    let body: Record<string, any> = {};
    try {
      body = raw ? (JSON.parse(raw) as Record<string, any>) : {};
    } catch {
      return this.error(res, 400, 'Invalid JSON', 'Bad Request');
    }
    const send = /^\/chat\/sessions\/([^/]+)\/send$/.exec(url.pathname);
    const patch = /^\/chat\/sessions\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'POST' && send) {
      const sender = body.sender;
      if (sender !== 'agent' && sender !== 'contact')
        return this.error(res, 400, 'sender must be one of agent, contact', 'Bad Request');
      if (body.message?.type !== 'text' || typeof body.message?.text !== 'string' || !body.message.text) {
        return this.error(res, 400, 'message.text must be a non-empty string', 'Bad Request');
      }
      this.sent.push({
        sessionId: decodeURIComponent(send[1]!),
        sender,
        text: body.message.text,
        agentName: body.agent?.name,
        takeOver: body.should_take_over_session_from_ai === true,
        at: now,
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ success: true, data: { message: { id: randomUUID() } } }));
      return;
    }
    if (req.method === 'PATCH' && patch) {
      if (!['open', 'closed_resolved', 'closed_unresolved'].includes(body.status)) {
        return this.error(
          res,
          400,
          'status must be one of open, closed_resolved, closed_unresolved',
          'Bad Request',
        );
      }
      this.statusChanges.push({ sessionId: decodeURIComponent(patch[1]!), status: body.status });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ success: true }));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/chat/sessions') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ items: [], next: null }));
      return;
    }
    this.error(res, 404, 'Not Found', 'Not Found');
  }
}

export async function startOpenCXEmulator(port = 0): Promise<OpenCXEmulator> {
  const e = new OpenCXEmulator();
  await e.listen(port);
  return e;
}
