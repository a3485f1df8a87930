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

/** What OpenCX keeps of a session: its status, custom data and history of events. */
interface Session {
  status: string;
  customData: Record<string, string | number | boolean>;
  history: {
    type: 'message';
    id: string;
    sender: string;
    text: string;
    agent_name?: string;
    created_at: string;
  }[];
}

export class OpenCXEmulator {
  readonly apiKeys = new Set<string>(['ocx_test_key', 'ocx_sandbox_key']);
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
  };
  /** Largest request body accepted (base64 attachments make sends large). */
  maxBodyBytes = 25 * 1024 * 1024;
  readonly sessions = new Map<string, Session>();
  /** Called once a send is recorded, before it is answered (a test can kill the sender there). */
  onAccepted: ((m: SentMessage) => Promise<void> | void) | undefined;
  /** False: custom data is accepted but not kept (nor shown), so only the history can tell what was sent. */
  keepsCustomData = true;
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

  private session(id: string): Session {
    let s = this.sessions.get(id);
    if (!s) {
      s = { status: 'open', customData: {}, history: [] };
      this.sessions.set(id, s);
    }
    return s;
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
    const history = /^\/chat\/sessions\/([^/]+)\/history$/.exec(url.pathname);
    const patch = /^\/chat\/sessions\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'POST' && send) {
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
      const id = randomUUID();
      const session = this.session(sessionId);
      if (this.keepsCustomData) Object.assign(session.customData, custom);
      session.history.push({
        type: 'message',
        id,
        sender,
        text: body.message.text,
        ...(body.agent?.name && { agent_name: body.agent.name }),
        created_at: new Date(now).toISOString(),
      });
      const message: SentMessage = {
        id,
        sessionId,
        sender,
        text: body.message.text,
        agentName: body.agent?.name,
        takeOver: body.should_take_over_session_from_ai === true,
        attachments,
        at: now,
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
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ success: true, data: { message: { id } } }));
      return;
    }
    if (req.method === 'GET' && history) {
      const s = this.sessions.get(decodeURIComponent(history[1]!));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ items: s?.history ?? [] }));
      return;
    }
    if (req.method === 'GET' && patch) {
      const id = decodeURIComponent(patch[1]!);
      const s = this.sessions.get(id);
      if (!s) return this.error(res, 404, 'Session not found', 'Not Found');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ id, status: s.status, ...(this.keepsCustomData && { custom_data: s.customData }) }),
      );
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
      this.session(decodeURIComponent(patch[1]!)).status = body.status;
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
