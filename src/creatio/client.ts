/**
 * The Creatio HTTP client: OAuth 2.0 client credentials (tokens shared per credentials), OData 4
 * reads and writes, $metadata, typed errors. Over 300 lines on purpose: one transport (timeouts,
 * call limiter, capped reads, error mapping) under every call, with the calls it makes beside it.
 */
import {
  OutboundAddressRefusedError,
  outboundRequest,
  type OutboundResponse,
  readCapped,
  readCappedBytes,
  ResponseTooLargeError,
} from '../net/outbound';
import { createHash } from 'node:crypto';
import { CreatioError, missingFromMessage, parseRetryAfter } from './errors';
import { parseMetadata, type EntityMetadata } from './metadata';
import type { CallLimiter } from '../net/call-limiter';

export interface CreatioConnection {
  /** Normalised: scheme + host (+ optional path), no trailing slash, no `/0`. */
  instanceUrl: string;
  /** Identity Service base URL; see identityServiceUrlFor(). */
  identityServiceUrl: string;
  clientId: string;
  clientSecret: string;
  /** `/0/odata` (default; .NET Framework) or `/odata` (.NET / .NET Core); see OrgSettings.odataPath. */
  odataPath?: string;
}

export interface CreatioClientOptions {
  timeoutMs?: number;
  /** Called once per HTTP request; used by metrics and tests. */
  onRequest?: (info: { method: string; url: string; status: number | 'error'; ms: number }) => void;
  /** Paces every HTTP call (token and OData) of this organization; see src/net/call-limiter.ts. */
  limiter?: CallLimiter;
}

interface CachedToken {
  accessToken: string;
  refreshAt: number;
}

/**
 * Tokens are shared by every client built for the same credentials in this process, so that
 * short-lived clients (one per activity) still mint one token per expiry per organization.
 */
const tokenCache = new Map<string, CachedToken>();
const tokenInflight = new Map<string, Promise<CachedToken>>();

export function clearTokenCache(): void {
  tokenCache.clear();
}

/** Derives the Identity Service URL: explicit wins; Creatio cloud uses `<site>-is.creatio.com`. */
export function identityServiceUrlFor(instanceUrl: string, explicit?: string): string {
  if (explicit) return explicit.replace(/\/+$/, '');
  const u = new URL(instanceUrl);
  const m = /^([^.]+)\.creatio\.com$/i.exec(u.hostname);
  if (m) return `${u.protocol}//${m[1]}-is.creatio.com`;
  return u.origin;
}

export type ODataValue = string | number | boolean | null;
export type Entity = Record<string, unknown> & { Id: string };

export interface ListOptions {
  select: string[];
  filter?: string;
  orderby?: string;
  top?: number;
  skip?: number;
}

/** Quotes a string literal for $filter (OData doubles single quotes). */
export function odataString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** The connection fields of an organization's settings (the Identity Service URL may be derived). */
export interface CreatioSettings {
  instanceUrl: string;
  identityServiceUrl: string | undefined;
  clientId: string;
  clientSecret: string;
  odataPath?: string;
}

/** A client for an organization's stored settings. */
export function creatioClientFor(s: CreatioSettings, options: CreatioClientOptions): CreatioClient {
  return new CreatioClient(
    {
      instanceUrl: s.instanceUrl,
      identityServiceUrl: identityServiceUrlFor(s.instanceUrl, s.identityServiceUrl),
      clientId: s.clientId,
      clientSecret: s.clientSecret,
      ...(s.odataPath && { odataPath: s.odataPath }),
    },
    options,
  );
}

export class CreatioClient {
  private readonly timeoutMs: number;
  private readonly cacheKey: string;
  private metadataCache: Promise<Map<string, EntityMetadata>> | undefined;

  constructor(
    readonly conn: CreatioConnection,
    private readonly opts: CreatioClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.cacheKey = createHash('sha256')
      .update(`${conn.identityServiceUrl}\n${conn.clientId}\n${conn.clientSecret}`)
      .digest('hex');
  }

  get odataBase(): string {
    return `${this.conn.instanceUrl}${this.conn.odataPath ?? '/0/odata'}/`;
  }

  // ---------------------------------------------------------------- OAuth

  async token(): Promise<string> {
    const cached = tokenCache.get(this.cacheKey);
    if (cached && cached.refreshAt > Date.now()) return cached.accessToken;
    let inflight = tokenInflight.get(this.cacheKey);
    if (!inflight) {
      inflight = this.mintToken().finally(() => tokenInflight.delete(this.cacheKey));
      tokenInflight.set(this.cacheKey, inflight);
    }
    return (await inflight).accessToken;
  }

  invalidateToken(rejected: string): void {
    const cached = tokenCache.get(this.cacheKey);
    if (cached?.accessToken === rejected) tokenCache.delete(this.cacheKey);
  }

  private async mintToken(): Promise<CachedToken> {
    const url = `${this.conn.identityServiceUrl}/connect/token`;
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: this.conn.clientId,
      client_secret: this.conn.clientSecret,
    });
    const res = await this.send(
      'POST',
      url,
      { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body.toString(),
      'token',
    );
    const text = await this.read(res, url);
    const json = tryJson(text, res.headers.get('content-type'));
    if (res.status === 200) {
      const t = json as { access_token?: unknown; expires_in?: unknown } | undefined;
      if (!t || typeof t.access_token !== 'string') {
        throw new CreatioError(
          'unexpected_response',
          `The token endpoint ${url} answered 200 without an access token: it does not look like a Creatio Identity Service`,
          { status: 200, endpoint: 'token' },
        );
      }
      const lifetimeMs = (typeof t.expires_in === 'number' && t.expires_in > 0 ? t.expires_in : 3600) * 1000;
      // Refresh a minute early, or at 90 % of a short lifetime.
      const token = {
        accessToken: t.access_token,
        refreshAt: Date.now() + Math.max(lifetimeMs - 60_000, lifetimeMs * 0.9),
      };
      tokenCache.set(this.cacheKey, token);
      return token;
    }
    const oauthError =
      json && typeof (json as { error?: unknown }).error === 'string'
        ? (json as { error: string }).error
        : '';
    if (res.status === 400 || res.status === 401) {
      if (oauthError === 'unsupported_grant_type' || oauthError === 'unauthorized_client') {
        throw new CreatioError(
          'grant_type',
          `The Identity Service refused the client credentials grant (${oauthError}): the OAuth application is not a server-to-server (client credentials) application`,
          { status: res.status, endpoint: 'token' },
        );
      }
      if (oauthError === 'invalid_client' || oauthError === 'invalid_grant') {
        throw new CreatioError(
          'bad_credentials',
          `The Identity Service rejected the client id or secret (${oauthError})`,
          { status: res.status, endpoint: 'token' },
        );
      }
    }
    throw classifyFailure(res, text, json, { endpoint: 'token', method: 'POST', url });
  }

  // ---------------------------------------------------------------- OData

  /** One OData call with the bearer token; on 401 the token is re-minted once and the call replayed. */
  async odata(
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    path: string,
    body?: Record<string, unknown>,
    entity?: string,
  ): Promise<{ status: number; json: unknown; text: string }> {
    const url = path.startsWith('http') ? path : this.odataBase + path;
    for (let attempt = 0; ; attempt++) {
      const token = await this.token();
      const headers: Record<string, string> = {
        accept: 'application/json',
        authorization: `Bearer ${token}`,
      };
      if (body) headers['content-type'] = 'application/json; charset=utf-8; IEEE754Compatible=true';
      const res = await this.send(
        method,
        url,
        headers,
        body ? JSON.stringify(body) : undefined,
        'odata',
        entity,
      );
      const text = await this.read(res, url);
      const json = tryJson(text, res.headers.get('content-type'));
      if (res.status === 401 && attempt === 0) {
        this.invalidateToken(token);
        continue;
      }
      if (res.status >= 200 && res.status < 300) {
        if (text.length > 0 && json === undefined) {
          throw new CreatioError(
            'unexpected_response',
            `${method} ${redactQuery(url)} answered ${res.status} with a body that is not JSON`,
            { status: res.status, entity, outcomeUnknown: method !== 'GET' },
          );
        }
        return { status: res.status, json, text };
      }
      throw classifyFailure(res, text, json, { endpoint: 'odata', method, url, entity });
    }
  }

  async list<T extends Entity>(entitySet: string, o: ListOptions): Promise<T[]> {
    const q: string[] = [`$select=${o.select.join(',')}`];
    if (o.filter) q.push(`$filter=${encodeURIComponent(o.filter)}`);
    if (o.orderby) q.push(`$orderby=${encodeURIComponent(o.orderby)}`);
    if (o.top !== undefined) q.push(`$top=${o.top}`);
    if (o.skip !== undefined) q.push(`$skip=${o.skip}`);
    const { json } = await this.odata('GET', `${entitySet}?${q.join('&')}`, undefined, entitySet);
    const value = (json as { value?: unknown }).value;
    if (!Array.isArray(value)) {
      throw new CreatioError('unexpected_response', `GET ${entitySet} answered without a "value" array`, {
        entity: entitySet,
      });
    }
    return value as T[];
  }

  /** Reads one record by key; `undefined` when Creatio answers 404 (absent, or not visible to the user). */
  async find<T extends Entity>(entitySet: string, id: string, select: string[]): Promise<T | undefined> {
    try {
      const { json } = await this.odata(
        'GET',
        `${entitySet}(${id})?$select=${select.join(',')}`,
        undefined,
        entitySet,
      );
      return json as T;
    } catch (err) {
      if (err instanceof CreatioError && err.kind === 'not_found') return undefined;
      throw err;
    }
  }

  async create<T extends Entity>(entitySet: string, body: Record<string, unknown>): Promise<T> {
    const { json } = await this.odata('POST', entitySet, body, entitySet);
    return json as T;
  }

  async update(entitySet: string, id: string, patch: Record<string, unknown>): Promise<void> {
    await this.odata('PATCH', `${entitySet}(${id})`, patch, entitySet);
  }

  async remove(entitySet: string, id: string): Promise<void> {
    await this.odata('DELETE', `${entitySet}(${id})`, undefined, entitySet);
  }

  /**
   * Reads a binary stream property (e.g. `ActivityFile(<id>)/Data`), refusing more than `maxBytes`:
   * a larger body is never read into memory.
   */
  async download(entitySet: string, id: string, property: string, maxBytes: number): Promise<Buffer> {
    const url = `${this.odataBase}${entitySet}(${id})/${property}`;
    for (let attempt = 0; ; attempt++) {
      const token = await this.token();
      const res = await this.send(
        'GET',
        url,
        { accept: 'application/octet-stream', authorization: `Bearer ${token}` },
        undefined,
        'odata',
        entitySet,
      );
      if (res.status === 401 && attempt === 0) {
        res.discard();
        this.invalidateToken(token);
        continue;
      }
      if (res.status !== 200) {
        const text = await this.read(res, url);
        throw classifyFailure(res, text, tryJson(text, res.headers.get('content-type')), {
          endpoint: 'odata',
          method: 'GET',
          url,
          entity: entitySet,
        });
      }
      try {
        return await readCappedBytes(res, maxBytes, `${entitySet}(${id})/${property}`);
      } catch (err) {
        if (err instanceof ResponseTooLargeError) {
          throw new CreatioError('too_large', err.message, { status: 200, entity: entitySet });
        }
        throw err;
      }
    }
  }

  /** Entity types of `$metadata`, fetched once per client (the document is large). */
  metadata(): Promise<Map<string, EntityMetadata>> {
    this.metadataCache ??= (async () => {
      const token = await this.token();
      const url = `${this.odataBase}$metadata`;
      const res = await this.send(
        'GET',
        url,
        { accept: 'application/xml', authorization: `Bearer ${token}` },
        undefined,
        'odata',
      );
      const text = await this.read(res, url, METADATA_MAX_BYTES);
      if (res.status !== 200) {
        throw classifyFailure(res, text, tryJson(text, res.headers.get('content-type')), {
          endpoint: 'odata',
          method: 'GET',
          url,
        });
      }
      if (!text.includes('<edmx:Edmx') && !text.includes('<Edmx')) {
        throw new CreatioError(
          'unexpected_response',
          `${url} did not answer with an OData metadata document`,
          {
            status: 200,
          },
        );
      }
      return parseMetadata(text);
    })();
    this.metadataCache.catch(() => (this.metadataCache = undefined));
    return this.metadataCache;
  }

  // ---------------------------------------------------------------- typed helpers

  getCase<T extends Entity = Entity>(id: string, select: string[]): Promise<T | undefined> {
    return this.find<T>('Case', id, select);
  }

  getCaseStatus(
    id: string,
  ): Promise<(Entity & { Name: string; IsFinal: boolean; IsResolved: boolean }) | undefined> {
    return this.find('CaseStatus', id, ['Id', 'Name', 'IsFinal', 'IsResolved']);
  }

  listCaseStatuses(): Promise<(Entity & { Name: string; IsFinal: boolean; IsResolved: boolean })[]> {
    return this.list('CaseStatus', { select: ['Id', 'Name', 'IsFinal', 'IsResolved'], top: 500 });
  }

  getContact(id: string): Promise<(Entity & { Name: string }) | undefined> {
    return this.find('Contact', id, ['Id', 'Name']);
  }

  getSysAdminUnit(id: string): Promise<(Entity & { Name: string }) | undefined> {
    return this.find('SysAdminUnit', id, ['Id', 'Name']);
  }

  /** Lookup rows by exact name (e.g. ActivityType "Email"). */
  findByName(entitySet: string, name: string): Promise<(Entity & { Name: string })[]> {
    return this.list(entitySet, { select: ['Id', 'Name'], filter: `Name eq ${odataString(name)}`, top: 2 });
  }

  // ---------------------------------------------------------------- transport

  /** A response body, up to a cap (a larger one is a named error, never read into memory). */
  private async read(res: OutboundResponse, url: string, maxBytes = ODATA_MAX_BYTES): Promise<string> {
    try {
      return await readCapped(res, maxBytes, redactQuery(url));
    } catch (err) {
      if (err instanceof ResponseTooLargeError) {
        throw new CreatioError('too_large', err.message, { status: res.status });
      }
      throw err;
    }
  }

  private async send(
    method: string,
    url: string,
    headers: Record<string, string>,
    body: string | undefined,
    endpoint: 'token' | 'odata',
    entity?: string,
  ): Promise<OutboundResponse> {
    const { limiter } = this.opts;
    await limiter?.acquire();
    const started = Date.now();
    try {
      const res = await outboundRequest(url, {
        method,
        headers,
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      limiter?.done({
        status: res.status,
        retryAfterMs: parseRetryAfter(res.headers.get('retry-after')),
      });
      this.opts.onRequest?.({ method, url, status: res.status, ms: Date.now() - started });
      return res;
    } catch (err) {
      limiter?.done({ status: 'error' });
      this.opts.onRequest?.({ method, url, status: 'error', ms: Date.now() - started });
      throw networkError(err, method, url, endpoint, entity, this.timeoutMs);
    }
  }
}

/** Largest OData answer read (pages are at most a few hundred rows). */
const ODATA_MAX_BYTES = 16 * 1024 * 1024;
/** `$metadata` of a large tenant runs to megabytes. */
const METADATA_MAX_BYTES = 64 * 1024 * 1024;

function tryJson(text: string, contentType: string | null): unknown {
  if (!text) return undefined;
  if (contentType && !/json/i.test(contentType)) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The query string of an OData URL can carry filter values (emails, phones): keep it out of errors. */
function redactQuery(url: string): string {
  const i = url.indexOf('?');
  return i < 0 ? url : `${url.slice(0, i)}?…`;
}

const UNREACHABLE_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH']);

function networkError(
  err: unknown,
  method: string,
  url: string,
  endpoint: 'token' | 'odata',
  entity: string | undefined,
  timeoutMs: number,
): CreatioError {
  const e = err as { name?: string; cause?: { code?: string; message?: string } };
  const where = `${method} ${redactQuery(url)}`;
  if (err instanceof OutboundAddressRefusedError) {
    return new CreatioError('address_refused', err.message, { endpoint, entity });
  }
  if (e.name === 'TimeoutError' || e.name === 'AbortError') {
    return new CreatioError('transient', `${where} timed out after ${timeoutMs} ms`, {
      endpoint,
      entity,
      outcomeUnknown: method !== 'GET',
    });
  }
  const code = e.cause?.code ?? '';
  if (UNREACHABLE_CODES.has(code)) {
    return new CreatioError(
      'unreachable',
      `${where} failed: cannot connect to ${new URL(url).host} (${code})`,
      {
        endpoint,
        entity,
      },
    );
  }
  return new CreatioError('transient', `${where} failed: ${code || e.cause?.message || 'network error'}`, {
    endpoint,
    entity,
    outcomeUnknown: method !== 'GET',
  });
}

/** Every message text of an error body (the envelope's, its inner one, a Web API error's), joined. */
function allMessages(json: unknown): string {
  const j = json as
    | {
        error?: { message?: string; innererror?: { message?: string } };
        Message?: string;
        MessageDetail?: string;
      }
    | undefined;
  return [j?.error?.message, j?.error?.innererror?.message, j?.Message, j?.MessageDetail]
    .filter(Boolean)
    .join('\n');
}

function schemaMessage(where: string, m: { entity: string; column?: string }): string {
  return m.column
    ? `${where}: this Creatio has no column "${m.column}" on ${m.entity}`
    : `${where}: this Creatio has no entity set "${m.entity}"`;
}

/** Error message of an OData envelope, a Web API error, or an HTML page title, in that order. */
function describeBody(text: string, json: unknown): string {
  const j = json as
    | {
        error?: { message?: string; innererror?: { message?: string } };
        Message?: string;
        MessageDetail?: string;
        ExceptionMessage?: string;
      }
    | undefined;
  const msg =
    j?.error?.innererror?.message ||
    j?.error?.message ||
    j?.ExceptionMessage ||
    [j?.Message, j?.MessageDetail].filter(Boolean).join(' ');
  if (msg) return msg.slice(0, 500);
  const title = /<title>([^<]*)<\/title>/i.exec(text)?.[1]?.trim();
  // The page's own text is not repeated: an error message must not become a way to read other sites.
  return title ? 'an HTML page' : text ? 'a body that is not JSON' : 'an empty body';
}

function classifyFailure(
  res: OutboundResponse,
  text: string,
  json: unknown,
  ctx: { endpoint: 'token' | 'odata'; method: string; url: string; entity?: string },
): CreatioError {
  const where = `${ctx.method} ${redactQuery(ctx.url)}`;
  const detail = describeBody(text, json);
  const base = { status: res.status, endpoint: ctx.endpoint, entity: ctx.entity };
  const isOdataJson = json !== undefined;
  const write = ctx.method !== 'GET';
  switch (true) {
    case res.status === 429:
      return new CreatioError('rate_limited', `${where} was rate limited (429)`, {
        ...base,
        retryAfterMs: parseRetryAfter(res.headers.get('retry-after')),
      });
    case res.status >= 500:
      return new CreatioError('transient', `${where} failed with ${res.status}: ${detail}`, {
        ...base,
        retryAfterMs: parseRetryAfter(res.headers.get('retry-after')),
        outcomeUnknown: write,
      });
    case !isOdataJson && text.length > 0 && res.status === 404:
      // A 404 page where an OData route should be (a wrong base path, a proxy): retrying cannot fix it.
      return new CreatioError('route_not_found', `${where} answered 404 with ${detail}`, {
        ...base,
        request: where,
      });
    case !isOdataJson && text.length > 0 && res.status !== 401 && res.status !== 403:
      // HTML or other non-JSON answers come from proxies, deploy windows or another server.
      return new CreatioError('unexpected_response', `${where} answered ${res.status} with ${detail}`, {
        ...base,
        outcomeUnknown: write,
      });
    case res.status === 400: {
      const missing = missingFromMessage(allMessages(json), ctx.entity);
      if (missing) {
        return new CreatioError('schema', schemaMessage(where, missing), {
          ...base,
          missing,
          request: where,
        });
      }
      return new CreatioError('validation', `${where} was rejected as invalid: ${detail}`, base);
    }
    case res.status === 401:
      return new CreatioError('unauthorized', `${where} was refused with 401 even with a fresh token`, base);
    case res.status === 403:
      return new CreatioError('forbidden', `${where} was refused with 403: ${detail}`, base);
    case res.status === 404: {
      const routing = (json as { Message?: string } | undefined)?.Message?.startsWith('No HTTP resource');
      const missing = routing ? missingFromMessage(allMessages(json), ctx.entity) : undefined;
      if (missing) {
        return new CreatioError('schema', schemaMessage(where, missing), {
          ...base,
          missing,
          request: where,
        });
      }
      if (routing) {
        return new CreatioError('route_not_found', `${where}: ${detail}`, { ...base, request: where });
      }
      return new CreatioError('not_found', `${where}: not found`, base);
    }
    default:
      return new CreatioError('unexpected_response', `${where} answered ${res.status}: ${detail}`, {
        ...base,
        outcomeUnknown: write,
      });
  }
}
