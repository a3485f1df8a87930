import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cloneSchemas, IDS, seedData, ZERO_GUID, type Column } from './creatio-schema';
import { nonConformance } from './creatio-conformance';
import { appendFileSync } from 'node:fs';
import { checkFilter, edmType, evalFilter, FilterError, parseFilter } from './odata-filter';

/**
 * An emulator of a Creatio instance and its Identity Service on one origin: OAuth 2.0 client
 * credentials at /connect/token and OData 4 at /0/odata/, speaking the wire formats documented in
 * reference/creatio-api.md. It is strict where the real API is (property names, GUID literals,
 * zone-less dates, lookups that must exist, duplicate keys) and can inject faults.
 *
 * Over 300 lines on purpose: one server holds the OAuth, OData, fault injection and business
 * process behaviour that the tests, the benchmarks and the sandbox all drive through one object.
 */

export type Permission = 'read' | 'create' | 'update' | 'delete';

export interface EmulatorClient {
  clientId: string;
  clientSecret: string;
  /** An authorization-code application cannot use the client credentials grant. */
  grantType: 'client_credentials' | 'authorization_code';
  active: boolean;
  /** The "Access to OData" system operation (CanUseODataService). */
  odataAccess: boolean;
  /** Per entity set; everything is allowed when an entity set is not listed. */
  denied: Partial<Record<string, Permission[]>>;
}

export interface CreatioFaults {
  /** Fraction of OData requests answered with `errorStatus` before doing anything. */
  errorRate: number;
  errorStatus: 500 | 502 | 503;
  /** Fraction of OData writes applied and then answered with 500 (outcome unknown to the caller). */
  writeThenFailRate: number;
  /**
   * The next N OData requests are answered 429 with Retry-After, however long after it they come
   * (a remote that does not keep its own Retry-After: each polite client probe meets the next one).
   */
  rateLimitBurst: number;
  /**
   * Every OData request until this time (epoch ms; 0: none) is answered 429, with Retry-After the
   * rest of the window in whole seconds: a gateway or WAF throttling for a while.
   */
  rateLimitUntil: number;
  retryAfterSec: number;
  /** A quota like a real instance's: OData requests over this many per second are answered 429. */
  maxPerSecond: number | null;
  latencyMs: number;
  /** Delay between committing a POST and answering it (the record exists meanwhile). */
  afterWriteLatencyMs: number;
  /** Whole-site outage: 503 HTML pages, or connections reset. */
  outage: false | 'http503' | 'reset';
  tokenLifetimeSec: number;
  /**
   * A write this answers for is refused: a message → 400 (a value Creatio will not take); a status
   * and message → that answer (e.g. a 500 for this one write).
   */
  /**
   * A read this answers for fails (e.g. only the agent-reply query): a status and message, answered
   * as Creatio answers that status. Called with the entity set and the request URL.
   */
  failRead: ((set: string, url: URL) => { status: 400 | 404 | 500 | 503; message: string } | null) | null;
  rejectWrite:
    | ((
        set: string,
        values: Record<string, unknown>,
      ) => string | { status: 500 | 503; message: string } | null)
    | null;
}

const DEFAULT_FAULTS: CreatioFaults = {
  errorRate: 0,
  errorStatus: 500,
  writeThenFailRate: 0,
  rateLimitBurst: 0,
  rateLimitUntil: 0,
  retryAfterSec: 1,
  maxPerSecond: null,
  latencyMs: 0,
  afterWriteLatencyMs: 0,
  outage: false,
  tokenLifetimeSec: 3600,
  failRead: null,
  rejectWrite: null,
};

/**
 * A customer-built business process: a signal start on Activity added (agent replies) or on Case
 * modified with a status filter (closure), then "Call web service" to the bridge, with Creatio's
 * default 5 s response timeout and the integration's "Retries on call failure".
 */
export interface BusinessProcess {
  kind: 'agent_reply' | 'case_closure';
  url: string;
  active?: boolean;
  /** agent_reply: ActivityType names that start it (the OpenCX guide: Email or Task). */
  activityTypes?: string[];
  /** case_closure: status names of the signal filter (exact, as Creatio compares lookups). */
  statusNames?: string[];
  /** The request body; a misconfigured process may send something else. */
  body?: (ctx: { caseId: string; activityId?: string }) => unknown;
  contentType?: string;
  retries?: number;
  timeoutMs?: number;
}

export interface ProcessCall {
  kind: BusinessProcess['kind'];
  status: number | 'timeout' | 'error';
  attempts: number;
  body: unknown;
}

export const SANDBOX_CLIENT = { clientId: 'sandbox-client', clientSecret: 'sandbox-secret-change-me' };

type Row = Record<string, unknown> & { Id: string };

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ODATA_NS = 'Terrasoft.Configuration.OData';

/** Deterministic PRNG so a fault test draws the same faults on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class ODataFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly inner?: string,
  ) {
    super(message);
  }
}

export interface CreatioEmulatorOptions {
  /**
   * Where OData is served: `/0/odata` (Creatio on .NET Framework, every cloud site) or `/odata`
   * (Creatio on .NET / .NET Core); reference/creatio-api.md §2.1.
   */
  odataPath?: '/0/odata' | '/odata';
}

export class CreatioEmulator extends EventEmitter {
  readonly clients = new Map<string, EmulatorClient>();
  /**
   * This instance's data model: Creatio's own (creatio-model.json, from its configuration source)
   * plus the sandbox's custom columns, less what a test removed (a customized or older tenant).
   */
  readonly schemas: Record<string, Record<string, Column>> = cloneSchemas();
  readonly odataPath: '/0/odata' | '/odata';
  /**
   * Requests that name an entity set, column or literal type Creatio's configuration does not have
   * (checked against creatio-model.json, whatever this instance answers). The test runner fails
   * the suite on any (CREATIO_CONFORMANCE_LOG).
   */
  readonly nonConformant: string[] = [];
  /** Tests that send bad names on purpose (the client's error handling) turn the record off. */
  recordConformance = true;
  readonly tables = new Map<string, Map<string, Row>>();
  faults: CreatioFaults = { ...DEFAULT_FAULTS };
  /** When the OData requests of the last second came (for `maxPerSecond`). */
  private recent: number[] = [];
  /** Requests answered 429 by `maxPerSecond` since the last reset. */
  rateLimited = 0;
  /** Requests counted per "METHOD Set" (e.g. "POST Activity") plus "token". */
  readonly calls = new Map<string, number>();
  private readonly tokens = new Map<string, { clientId: string; expiresAt: number }>();
  private caseNumber = 0;
  private random = prng(42);
  private server: http.Server | undefined;
  url = '';
  readonly processes: BusinessProcess[] = [];
  readonly processLog: ProcessCall[] = [];
  /** ActivityFile contents by file id. */
  readonly files = new Map<string, Buffer>();
  private readonly inflightCalls = new Set<Promise<void>>();

  constructor(options: CreatioEmulatorOptions = {}) {
    super();
    this.odataPath = options.odataPath ?? '/0/odata';
    this.reset();
    this.on('added', (set: string, row: Row) => {
      if (set !== 'Activity' || row.CaseId === ZERO_GUID) return;
      const typeName = this.nameOf('ActivityType', String(row.TypeId));
      for (const p of this.processes) {
        if (
          p.kind === 'agent_reply' &&
          p.active !== false &&
          (p.activityTypes ?? ['Email', 'Task']).includes(typeName)
        ) {
          this.callProcess(p, { caseId: String(row.CaseId), activityId: row.Id });
        }
      }
    });
    this.on('modified', (set: string, row: Row, changed: string[]) => {
      if (set !== 'Case' || !changed.includes('StatusId')) return;
      const status = this.nameOf('CaseStatus', String(row.StatusId));
      for (const p of this.processes) {
        if (
          p.kind === 'case_closure' &&
          p.active !== false &&
          (p.statusNames ?? ['Resolved']).includes(status)
        ) {
          this.callProcess(p, { caseId: row.Id });
        }
      }
    });
  }

  private nameOf(set: string, id: string): string {
    const name = this.tables.get(set)?.get(id)?.Name;
    return typeof name === 'string' ? name : '';
  }

  /** Resolves when every business-process call started so far has finished (with its retries). */
  async processesIdle(): Promise<void> {
    while (this.inflightCalls.size > 0) await Promise.all([...this.inflightCalls]);
  }

  private callProcess(p: BusinessProcess, ctx: { caseId: string; activityId?: string }): void {
    const body =
      p.body?.(ctx) ??
      (p.kind === 'agent_reply'
        ? { event_type: 'new_activity', caseId: ctx.caseId, activityId: ctx.activityId }
        : { event_type: 'case_status_changed', caseId: ctx.caseId });
    const run = (async () => {
      let status: ProcessCall['status'] = 'error';
      let attempts = 0;
      for (; attempts <= (p.retries ?? 0);) {
        attempts++;
        try {
          const res = await fetch(p.url, {
            method: 'POST',
            headers: { 'content-type': p.contentType ?? 'application/json' },
            body: JSON.stringify(body),
            signal: AbortSignal.timeout(p.timeoutMs ?? 5_000),
          });
          await res.text();
          status = res.status;
          if (res.status < 400) break;
        } catch (err) {
          status = (err as { name?: string }).name === 'TimeoutError' ? 'timeout' : 'error';
        }
      }
      this.processLog.push({ kind: p.kind, status, attempts, body });
    })();
    this.inflightCalls.add(run);
    void run.finally(() => this.inflightCalls.delete(run));
  }

  /** Back to seed data, default faults and no clients but the sandbox one. */
  reset(): void {
    for (const k of Object.keys(this.schemas)) delete this.schemas[k];
    Object.assign(this.schemas, cloneSchemas());
    this.tables.clear();
    for (const [set, rows] of Object.entries(seedData())) {
      const table = new Map<string, Row>();
      for (const r of rows) table.set(String(r.Id), this.withDefaults(set, r as Row));
      this.tables.set(set, table);
    }
    this.files.clear();
    this.clients.clear();
    this.addClient(SANDBOX_CLIENT);
    this.faults = { ...DEFAULT_FAULTS };
    this.rateLimited = 0;
    this.recent = [];
    this.calls.clear();
    this.tokens.clear();
    this.random = prng(42);
    if (this.processes) this.processes.length = 0;
  }

  addClient(c: Partial<EmulatorClient> & { clientId: string; clientSecret: string }): EmulatorClient {
    const client: EmulatorClient = {
      grantType: 'client_credentials',
      active: true,
      odataAccess: true,
      denied: {},
      ...c,
    };
    this.clients.set(client.clientId, client);
    return client;
  }

  setFaults(f: Partial<CreatioFaults>): void {
    this.faults = { ...this.faults, ...f };
  }

  /** Expires every token at once (as a token lifetime change or an IS restart would). */
  revokeTokens(): void {
    this.tokens.clear();
  }

  rows(set: string): Row[] {
    return [...(this.tables.get(set)?.values() ?? [])];
  }

  count(key: string): number {
    return this.calls.get(key) ?? 0;
  }

  odataCalls(): number {
    let n = 0;
    for (const [k, v] of this.calls) if (k !== 'token') n += v;
    return n;
  }

  /** Attaches a file to an activity, as an agent attaching it to an email would. */
  attachFile(activityId: string, name: string, data: Buffer): Row {
    const row = this.withDefaults('ActivityFile', {
      Id: randomUUID(),
      ActivityId: activityId,
      Name: name,
      Size: data.length,
    });
    this.tables.get('ActivityFile')!.set(row.Id, row);
    this.files.set(row.Id, data);
    return row;
  }

  /**
   * Removes a column (or, without `column`, a whole entity set) from this instance, as a customized
   * or older Creatio would lack it: $metadata no longer lists it and requests naming it fail as
   * Creatio fails them (404 for an entity set, 400 for a property).
   */
  removeFromModel(set: string, column?: string): void {
    if (column) delete this.schemas[set]?.[column];
    else delete this.schemas[set];
  }

  /** Back to Creatio's full model (after removeFromModel), data kept. */
  restoreModel(): void {
    const full = cloneSchemas();
    for (const [set, cols] of Object.entries(full)) this.schemas[set] = cols;
  }

  /**
   * An email an agent sent from the case, stored as Creatio stores one (ActivitySchema.CrtBase):
   * type Email, EmailType Outgoing, EmailSendStatus Sent, sender and recipients as text. `to`
   * defaults to the case contact's address; `status: 'Not sent'` is a draft.
   */
  agentEmail(
    caseId: string,
    o: {
      body: string;
      title?: string;
      to?: string;
      cc?: string;
      status?: 'Sent' | 'Not sent';
      headers?: string;
      ownerId?: string;
      extra?: Record<string, unknown>;
    },
  ): Row {
    const c = this.tables.get('Case')?.get(caseId.toLowerCase());
    const contact = c ? this.tables.get('Contact')?.get(String(c.ContactId)) : undefined;
    const email = typeof contact?.Email === 'string' ? contact.Email : '';
    const name = typeof contact?.Name === 'string' ? contact.Name : '';
    const to = o.to ?? (email ? `${name} <${email}>;` : '');
    return this.insert('Activity', {
      CaseId: caseId,
      TypeId: IDS.activityType.Email,
      ActivityCategoryId: IDS.activityCategory.Email,
      MessageTypeId: IDS.emailType.Outgoing,
      EmailSendStatusId: IDS.emailSendStatus[o.status ?? 'Sent'],
      Title: o.title ?? 'Re: your request',
      Body: o.body,
      Sender: 'Support <support@example.com>',
      Recepient: to,
      ...(o.cc && { CopyRecepient: o.cc }),
      ...(o.headers && { HeaderProperties: o.headers }),
      ...(o.ownerId && { OwnerId: o.ownerId }),
      ...o.extra,
    });
  }

  /** Inserts a record as a Creatio user would (e.g. an agent adding an email to a case). */
  insert(set: string, values: Record<string, unknown>): Row {
    const row = this.withDefaults(set, { Id: randomUUID(), ...values });
    this.tables.get(set)!.set(row.Id, row);
    this.emit('added', set, row);
    return row;
  }

  modify(set: string, id: string, values: Record<string, unknown>): Row {
    const row = this.tables.get(set)?.get(id);
    if (!row) throw new Error(`${set}(${id}) does not exist`);
    Object.assign(row, values, { ModifiedOn: new Date().toISOString() });
    this.emit('modified', set, row, Object.keys(values));
    return row;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.json(res, 500, { error: { code: '', message: String(err) } });
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve) => this.server!.listen(port, host, resolve));
    const addr = this.server.address() as AddressInfo;
    this.url = `http://${host}:${addr.port}`;
    return this.url;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  // ---------------------------------------------------------------- HTTP

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://emulator');
    // As a request arrives, before its latency or any fault: a benchmark times a message's write
    // by its arrival, as it times the floor's POST at its sink (bench/load.ts).
    this.emit('received', req.method, url.pathname, body);
    const f = this.faults;
    if (f.latencyMs > 0) await new Promise((r) => setTimeout(r, f.latencyMs));
    if (f.outage === 'reset') {
      req.socket.destroy();
      return;
    }
    if (f.outage === 'http503') {
      this.html(res, 503, 'Service Unavailable', 'The service is temporarily unavailable.');
      return;
    }
    if (url.pathname === '/connect/token') return this.token(req, res, body);
    if (url.pathname === '/.well-known/openid-configuration') {
      this.json(res, 200, {
        issuer: 'creatio.com',
        token_endpoint: `${this.url}/connect/token`,
        grant_types_supported: ['authorization_code', 'client_credentials', 'refresh_token'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      });
      return;
    }
    if (url.pathname === this.odataPath || url.pathname.startsWith(`${this.odataPath}/`)) {
      return this.odata(req, res, url, body);
    }
    this.html(
      res,
      404,
      '404 - File or directory not found.',
      'The resource you are looking for has been removed.',
    );
  }

  /** A 429 with Retry-After in whole seconds. */
  private tooManyRequests(res: ServerResponse, retryAfterSec: number): void {
    res.writeHead(429, { 'retry-after': String(retryAfterSec), 'content-type': 'text/plain' });
    res.end('Too Many Requests');
  }

  private token(req: IncomingMessage, res: ServerResponse, body: string): void {
    this.bump('token');
    const ct = req.headers['content-type'] ?? '';
    if (req.method !== 'POST' || !ct.startsWith('application/x-www-form-urlencoded')) {
      this.json(res, 400, { error: 'invalid_request' });
      return;
    }
    const form = new URLSearchParams(body);
    const grant = form.get('grant_type');
    if (grant !== 'client_credentials' && grant !== 'authorization_code') {
      this.json(res, 400, { error: 'unsupported_grant_type' });
      return;
    }
    const client = this.clients.get(form.get('client_id') ?? '');
    if (!client || !client.active || client.clientSecret !== form.get('client_secret')) {
      this.json(res, 400, { error: 'invalid_client' });
      return;
    }
    if (client.grantType !== grant) {
      this.json(res, 400, { error: 'unauthorized_client' });
      return;
    }
    const token = `emu.${randomBytes(24).toString('base64url')}`;
    const lifetime = this.faults.tokenLifetimeSec;
    this.tokens.set(token, { clientId: client.clientId, expiresAt: Date.now() + lifetime * 1000 });
    res.setHeader('cache-control', 'no-store, no-cache, max-age=0');
    this.json(res, 200, {
      access_token: token,
      expires_in: lifetime,
      token_type: 'Bearer',
      scope: `ApplicationAccess_${client.clientId.replace(/[^0-9a-z]/gi, '').slice(0, 32)}`,
    });
  }

  private async odata(req: IncomingMessage, res: ServerResponse, url: URL, body: string): Promise<void> {
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const session = auth ? this.tokens.get(auth) : undefined;
    if (!session || session.expiresAt <= Date.now()) {
      if (auth) this.tokens.delete(auth);
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"', 'content-length': '0' });
      res.end();
      return;
    }
    const client = this.clients.get(session.clientId)!;
    const rest = decodeURIComponent(url.pathname.slice(this.odataPath.length).replace(/^\//, ''));
    const m = /^([A-Za-z]\w*)(?:\(([^)]*)\))?(\/Data)?$/.exec(rest);
    const set = m?.[1];
    this.bump(`${req.method} ${rest === '$metadata' ? '$metadata' : (set ?? rest)}`);
    if (this.recordConformance) this.recordNonConformance(req.method ?? 'GET', rest, url, body);

    const f = this.faults;
    if (f.maxPerSecond !== null) {
      const now = Date.now();
      this.recent = this.recent.filter((t) => now - t < 1_000);
      if (this.recent.length >= f.maxPerSecond) {
        this.rateLimited++;
        this.tooManyRequests(res, f.retryAfterSec);
        return;
      }
      this.recent.push(now);
    }
    const throttledFor = f.rateLimitUntil - Date.now();
    if (throttledFor > 0) {
      this.rateLimited++;
      this.tooManyRequests(res, Math.ceil(throttledFor / 1000));
      return;
    }
    if (f.rateLimitBurst > 0) {
      f.rateLimitBurst--;
      this.tooManyRequests(res, f.retryAfterSec);
      return;
    }
    if (f.errorRate > 0 && this.random() < f.errorRate) {
      if (f.errorStatus === 500)
        this.odataError(res, new ODataFailure(500, 'An error has occurred.', 'Injected fault'));
      else
        this.html(
          res,
          f.errorStatus,
          `${f.errorStatus} - Bad Gateway`,
          'The server is temporarily unavailable.',
        );
      return;
    }
    if (!client.odataAccess) {
      this.odataError(
        res,
        new ODataFailure(403, 'Current user does not have sufficient permissions to use OData'),
      );
      return;
    }
    try {
      if (rest === '$metadata') {
        res.writeHead(200, { 'content-type': 'application/xml', 'odata-version': '4.0' });
        res.end(this.metadataXml());
        return;
      }
      if (rest === '') {
        this.json(res, 200, {
          '@odata.context': `${this.url}${this.odataPath}/$metadata`,
          value: Object.keys(this.schemas).map((name) => ({ name, kind: 'EntitySet', url: name })),
        });
        return;
      }
      if (!set || !this.schemas[set]) {
        this.json(res, 404, {
          Message: `No HTTP resource was found that matches the request URI '${this.url}${this.odataPath}/${rest}'.`,
          MessageDetail: `No type was found that matches the controller named '${set ?? rest}'.`,
        });
        return;
      }
      const key = m?.[2];
      if (key !== undefined && !GUID_RE.test(key)) {
        throw new ODataFailure(400, `The key value '${key}' is not a valid Edm.Guid literal.`);
      }
      const allowed = (p: Permission) => !(client.denied[set] ?? []).includes(p);
      if (m?.[3]) {
        // A file's content stream: only ActivityFile has one here, and only GET reads it.
        const data =
          set === 'ActivityFile' && key && allowed('read') ? this.files.get(key.toLowerCase()) : undefined;
        if (req.method !== 'GET' || !data) {
          res.writeHead(404, { 'content-length': '0' });
          res.end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
        res.end(data);
        return;
      }
      const failed = req.method === 'GET' ? f.failRead?.(set, url) : null;
      if (failed) throw new ODataFailure(failed.status, failed.message, failed.message);
      switch (req.method) {
        case 'GET':
          return key
            ? this.getOne(res, set, key, url, allowed('read'))
            : this.getMany(res, set, url, allowed('read'));
        case 'POST':
          if (key) throw new ODataFailure(400, 'The request is invalid.');
          if (!allowed('create')) throw this.denied(set, 'add');
          return await this.create(res, set, body);
        case 'PATCH':
          if (!key) throw new ODataFailure(400, 'The request is invalid.');
          if (!allowed('update')) throw this.denied(set, 'edit');
          return this.patch(res, set, key.toLowerCase(), body, allowed('read'));
        case 'DELETE':
          if (!key) throw new ODataFailure(400, 'The request is invalid.');
          if (!allowed('delete')) throw this.denied(set, 'delete');
          return this.remove(res, set, key.toLowerCase(), allowed('read'));
        default:
          throw new ODataFailure(405, `The requested resource does not support http method '${req.method}'.`);
      }
    } catch (err) {
      if (err instanceof ODataFailure) this.odataError(res, err);
      else if (err instanceof FilterError)
        this.odataError(res, new ODataFailure(400, err.message, err.message));
      else throw err;
    }
  }

  /** Records a request that names something Creatio's configuration lacks (see `nonConformant`). */
  private recordNonConformance(method: string, rest: string, url: URL, body: string): void {
    const problems = nonConformance(method, rest, url.searchParams, body);
    if (problems.length === 0) return;
    const line = `${method} ${this.odataPath}/${rest}${url.search}: ${problems.join('; ')}`;
    this.nonConformant.push(line);
    const log = process.env.CREATIO_CONFORMANCE_LOG;
    if (log) appendFileSync(log, `${JSON.stringify({ request: line, test: process.argv[1] ?? '' })}\n`);
  }

  private denied(set: string, op: string): ODataFailure {
    return new ODataFailure(403, `Insufficient permissions to ${op} records in the "${set}" object.`);
  }

  private getOne(res: ServerResponse, set: string, key: string, url: URL, canRead: boolean): void {
    const row = canRead ? this.tables.get(set)!.get(key.toLowerCase()) : undefined;
    if (!row) {
      res.writeHead(404, { 'content-length': '0' });
      res.end();
      return;
    }
    const select = this.select(set, url.searchParams.get('$select'));
    this.json(res, 200, {
      '@odata.context': `${this.url}${this.odataPath}/$metadata#${set}/$entity`,
      ...project(row, select),
    });
  }

  private getMany(res: ServerResponse, set: string, url: URL, canRead: boolean): void {
    const schema = this.schemas[set]!;
    const select = this.select(set, url.searchParams.get('$select'));
    let rows = canRead ? [...this.tables.get(set)!.values()] : [];
    const filter = url.searchParams.get('$filter');
    if (filter) {
      const tree = parseFilter(filter);
      checkFilter(tree, schema, set);
      rows = rows.filter((r) => evalFilter(tree, r, schema));
    }
    const orderby = url.searchParams.get('$orderby');
    if (orderby) {
      const keys = orderby.split(',').map((part) => {
        const [prop = '', dir = 'asc'] = part.trim().split(/\s+/);
        if (!schema[prop])
          throw new FilterError(`Could not find a property named '${prop}' on type '${ODATA_NS}.${set}'.`);
        return { prop, sign: dir.toLowerCase() === 'desc' ? -1 : 1, date: schema[prop].type === 'datetime' };
      });
      rows.sort((a, b) => {
        for (const k of keys) {
          const av = k.date ? Date.parse(String(a[k.prop])) : (a[k.prop] as string | number);
          const bv = k.date ? Date.parse(String(b[k.prop])) : (b[k.prop] as string | number);
          if (av !== bv) return (av < bv ? -1 : 1) * k.sign;
        }
        return 0;
      });
    }
    const total = rows.length;
    const skip = Number(url.searchParams.get('$skip') ?? 0);
    const top = Math.min(Number(url.searchParams.get('$top') ?? 20_000), 20_000);
    rows = rows.slice(skip, skip + top);
    this.json(res, 200, {
      '@odata.context': `${this.url}${this.odataPath}/$metadata#${set}`,
      ...(url.searchParams.get('$count') === 'true' && { '@odata.count': total }),
      value: rows.map((r) => project(r, select)),
    });
  }

  private async create(res: ServerResponse, set: string, body: string): Promise<void> {
    const values = this.parseBody(set, body);
    const refused = this.faults.rejectWrite?.(set, values);
    if (typeof refused === 'string') throw new ODataFailure(400, 'The request is invalid.', refused);
    if (refused) throw new ODataFailure(refused.status, 'An error has occurred.', refused.message);
    const id = values.Id === undefined ? randomUUID() : (values.Id as string).toLowerCase();
    const table = this.tables.get(set)!;
    if (table.has(id)) {
      throw new ODataFailure(
        500,
        'An error has occurred.',
        `23505: duplicate key value violates unique constraint "PK${set}Id"`,
      );
    }
    const row = this.withDefaults(set, { ...values, Id: id });
    table.set(id, row);
    this.emit('added', set, row);
    if (this.faults.writeThenFailRate > 0 && this.random() < this.faults.writeThenFailRate) {
      throw new ODataFailure(500, 'An error has occurred.', 'Injected fault after commit');
    }
    if (this.faults.afterWriteLatencyMs > 0)
      await new Promise((r) => setTimeout(r, this.faults.afterWriteLatencyMs));
    const location = `${this.url}${this.odataPath}/${set}(${id})`;
    res.setHeader('location', location);
    this.json(res, 201, {
      '@odata.context': `${this.url}${this.odataPath}/$metadata#${set}/$entity`,
      ...row,
    });
  }

  private patch(res: ServerResponse, set: string, id: string, body: string, canRead: boolean): void {
    const row = this.tables.get(set)!.get(id);
    if (!row || !canRead) {
      res.writeHead(404, { 'content-length': '0' });
      res.end();
      return;
    }
    const values = this.parseBody(set, body);
    if ('Id' in values && String(values.Id).toLowerCase() !== id) {
      throw new ODataFailure(400, 'The request is invalid.', 'The key cannot be changed.');
    }
    Object.assign(row, values, { ModifiedOn: new Date().toISOString() });
    this.emit('modified', set, row, Object.keys(values));
    if (this.faults.writeThenFailRate > 0 && this.random() < this.faults.writeThenFailRate) {
      throw new ODataFailure(500, 'An error has occurred.', 'Injected fault after commit');
    }
    res.writeHead(204, { 'odata-version': '4.0' });
    res.end();
  }

  private remove(res: ServerResponse, set: string, id: string, canRead: boolean): void {
    if (!canRead || !this.tables.get(set)!.delete(id)) {
      res.writeHead(404, { 'content-length': '0' });
      res.end();
      return;
    }
    this.emit('deleted', set, id);
    res.writeHead(204, { 'odata-version': '4.0' });
    res.end();
  }

  /** Validates a POST/PATCH body as Creatio does: known properties, typed values, existing lookups. */
  private parseBody(set: string, body: string): Record<string, unknown> {
    let values: unknown;
    try {
      values = JSON.parse(body);
    } catch {
      throw new ODataFailure(400, 'The request is invalid.', 'item : The body is not valid JSON.');
    }
    if (!values || typeof values !== 'object' || Array.isArray(values)) {
      throw new ODataFailure(400, 'The request is invalid.', 'item : An object was expected.');
    }
    const schema = this.schemas[set]!;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(values as Record<string, unknown>)) {
      const col = schema[k];
      if (!col) {
        throw new ODataFailure(
          400,
          'The request is invalid.',
          `item : The property '${k}' does not exist on type '${ODATA_NS}.${set}'. Make sure to only use property names that are defined by the type.`,
        );
      }
      out[k] = this.coerce(set, k, col, v);
    }
    return out;
  }

  private coerce(set: string, name: string, col: Column, v: unknown): unknown {
    const invalid = (why: string) =>
      new ODataFailure(400, 'The request is invalid.', `item : ${name}: ${why}`);
    if (v === null) {
      if (typeof col.type === 'object') return ZERO_GUID;
      return null;
    }
    if (typeof col.type === 'object' || col.type === 'guid') {
      if (typeof v !== 'string' || !GUID_RE.test(v)) throw invalid('not a valid Edm.Guid');
      const id = v.toLowerCase();
      if (typeof col.type === 'object' && id !== ZERO_GUID) {
        const target = this.tables.get(col.type.lookup);
        if (target && !target.has(id)) {
          throw new ODataFailure(
            500,
            'An error has occurred.',
            `23503: insert or update on table "${set}" violates foreign key constraint "FK${set}${name}"`,
          );
        }
      }
      return id;
    }
    switch (col.type) {
      case 'datetime':
        if (typeof v !== 'string' || !/T.*(Z|[+-]\d{2}:\d{2})$/.test(v) || Number.isNaN(Date.parse(v))) {
          throw invalid('not a DateTimeOffset with a time zone');
        }
        return new Date(v).toISOString();
      case 'bool':
        if (typeof v !== 'boolean') throw invalid('not an Edm.Boolean');
        return v;
      case 'int':
        if (typeof v !== 'number' || !Number.isInteger(v)) throw invalid('not an Edm.Int32');
        return v;
      case 'decimal':
        if (typeof v !== 'number') throw invalid('not an Edm.Decimal');
        return v;
      case 'date':
        if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v)) throw invalid('not an Edm.Date');
        return v;
      case 'binary':
        throw invalid('a stream property is written at its own URL');
      default:
        if (typeof v !== 'string') throw invalid('not an Edm.String');
        if (col.maxLength && v.length > col.maxLength) {
          throw new ODataFailure(
            500,
            'An error has occurred.',
            `22001: value too long for type character varying(${col.maxLength})`,
          );
        }
        return v;
    }
  }

  private withDefaults(set: string, row: Row): Row {
    const schema = this.schemas[set]!;
    const out: Row = { Id: String(row.Id).toLowerCase() };
    for (const [name, col] of Object.entries(schema)) {
      // A stream (ActivityFile.Data) is read at its own URL, never in the entity's JSON.
      if (name === 'Id' || col.type === 'binary') continue;
      out[name] = row[name] !== undefined ? row[name] : col.default ? col.default() : null;
    }
    if (set === 'Case' && !row.Number) out.Number = `SR${String(++this.caseNumber).padStart(8, '0')}`;
    if (set === 'Case' && (!row.RegisteredOn || row.RegisteredOn === '0001-01-01T00:00:00Z')) {
      out.RegisteredOn = new Date().toISOString();
    }
    return out;
  }

  private select(set: string, param: string | null): string[] | undefined {
    if (!param) return undefined;
    const names = param.split(',').map((s) => s.trim());
    for (const n of names) {
      if (!this.schemas[set]![n]) {
        throw new FilterError(
          `The query specified in the URI is not valid. Could not find a property named '${n}' on type '${ODATA_NS}.${set}'.`,
        );
      }
    }
    return names;
  }

  private metadataXml(): string {
    const types = Object.entries(this.schemas).map(([set, schema]) => {
      const props = Object.entries(schema).map(([name, col]) => {
        const len = col.maxLength ? ` MaxLength="${col.maxLength}"` : '';
        return `<Property Name="${name}" Type="${edmType(col)}"${name === 'Id' ? ' Nullable="false"' : ''}${len} />`;
      });
      const navs = Object.entries(schema)
        .filter(([, col]) => typeof col.type === 'object')
        .map(([name, col]) => {
          const nav = name.replace(/Id$/, '');
          const target = (col.type as { lookup: string }).lookup;
          return `<NavigationProperty Name="${nav}" Type="${ODATA_NS}.${target}"><ReferentialConstraint Property="${name}" ReferencedProperty="Id" /></NavigationProperty>`;
        });
      return `<EntityType Name="${set}" BaseType="${ODATA_NS}.BaseEntity"><Key><PropertyRef Name="Id" /></Key>${props.join('')}${navs.join('')}</EntityType>`;
    });
    const sets = Object.keys(this.schemas).map(
      (s) => `<EntitySet Name="${s}" EntityType="${ODATA_NS}.${s}" />`,
    );
    return `<?xml version="1.0" encoding="utf-8"?><edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices><Schema Namespace="${ODATA_NS}" xmlns="http://docs.oasis-open.org/odata/ns/edm"><EntityType Name="BaseEntity" Abstract="true" />${types.join('')}<EntityContainer Name="Default">${sets.join('')}</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>`;
  }

  private bump(key: string): void {
    this.calls.set(key, (this.calls.get(key) ?? 0) + 1);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; odata.metadata=minimal; charset=utf-8',
      'odata-version': '4.0',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  }

  private html(res: ServerResponse, status: number, title: string, text: string): void {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
    res.end(
      `<!DOCTYPE html><html><head><title>${title}</title></head><body><h1>${title}</h1><p>${text}</p></body></html>`,
    );
  }

  private odataError(res: ServerResponse, e: ODataFailure): void {
    this.json(res, e.status, {
      error: {
        code: '',
        message: e.message,
        innererror: { message: e.inner ?? e.message, type: '', stacktrace: '' },
      },
    });
  }
}

function project(row: Row, select: string[] | undefined): Record<string, unknown> {
  if (!select) return { ...row };
  return Object.fromEntries(select.map((k) => [k, row[k]]));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startCreatioEmulator(
  port = 0,
  options: CreatioEmulatorOptions = {},
): Promise<CreatioEmulator> {
  const emu = new CreatioEmulator(options);
  await emu.listen(port);
  return emu;
}
