import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import http from 'node:http';
import { Writable } from 'node:stream';
import { Metrics } from '../src/metrics';
import { createApp } from '../src/api/app';
import type { AppDeps } from '../src/api/deps';
import { createLogger, type Logger } from '../src/logger';
import { openStore, type Store } from '../src/store';
import { SANDBOX_CLIENT, type CreatioEmulator } from '../src/sandbox/emulators/creatio';
import type { OrgSettings } from '../src/settings/schema';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

/** A logger whose every line is kept, to assert what reaches the logs (and what never does). */
export function capturingLogger(level = 'debug'): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { log: createLogger(level, stream), lines };
}

export function testDatabaseUrl(): string {
  return process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
}

export const TEST_SCHEMA_PREFIX = 'bridge_test_';

/** Where a test store lives: on PostgreSQL a fresh schema; another process can open the same one. */
export interface TestStoreConfig {
  databaseUrl: string | undefined;
  key: Buffer;
}

export async function newTestStoreConfig(kind: 'postgres' | 'pglite' = 'postgres'): Promise<TestStoreConfig> {
  let databaseUrl: string | undefined;
  if (kind === 'postgres') {
    const schema = `${TEST_SCHEMA_PREFIX}${randomUUID().replace(/-/g, '').slice(0, 16)}`;
    const { Client } = await import('pg');
    const admin = new Client({ connectionString: testDatabaseUrl() });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.end();
    const url = new URL(testDatabaseUrl());
    url.searchParams.set('options', `-c search_path=${schema}`);
    databaseUrl = url.toString();
  }
  return { databaseUrl, key: randomBytes(32) };
}

/**
 * A store of its own: on PostgreSQL a fresh schema (npm test drops the old ones at start), so
 * tests running side by side never see each other's organizations.
 */
export async function openTestStore(
  log: Logger,
  kind: 'postgres' | 'pglite' = 'postgres',
  config?: TestStoreConfig,
): Promise<Store> {
  const c = config ?? (await newTestStoreConfig(kind));
  return openStore({ databaseUrl: c.databaseUrl, dataDir: undefined, key: c.key, log });
}

export function uniqueOrg(prefix = 'org'): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export interface RunningApi {
  url: string;
  close(): Promise<void>;
  request(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: any; text: string }>;
}

export async function startApi(
  deps: Omit<AppDeps, 'metrics' | 'config' | 'readiness'> & Partial<AppDeps>,
): Promise<RunningApi> {
  const app = createApp({
    metrics: new Metrics(),
    readiness: async () => ({ ready: true, checks: {} }),
    ...deps,
    config: {
      publicBaseUrl: 'https://bridge.example.com',
      adminApiToken: ADMIN_TOKEN,
      creatioRequestTimeoutMs: 3_000,
      ...deps.config,
    },
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    async close() {
      // Requests under way finish first (their Temporal calls end within the API's deadline), as
      // in production: a hand-over still retrying must not meet a closed Temporal connection.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), 10_000);
      await closed;
      clearTimeout(force);
    },
    async request(method, path, body, headers = {}) {
      const res = await fetch(url + path, {
        method,
        headers: {
          authorization: `Bearer ${ADMIN_TOKEN}`,
          ...(body !== undefined && { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = undefined;
      }
      return { status: res.status, body: parsed, text };
    },
  };
}

/** Stored settings of an organization (as Test & Save would have saved them), for a store or activity test. */
export function storedSettings(o: Partial<OrgSettings> = {}): OrgSettings {
  return {
    instanceUrl: 'https://acme.creatio.com',
    identityServiceUrl: undefined,
    clientId: 'client',
    clientSecret: 'secret',
    defaultCaseOwnerId: undefined,
    defaultCaseGroupId: undefined,
    resolvedStatusId: undefined,
    afterClose: 'log',
    reopenStatusId: undefined,
    createCaseOnlyOnHandoff: false,
    agentReplyFilter: { activityTypes: ['Email'], activityCategories: [] },
    closureStatusNames: ['Resolved'],
    aiFields: [],
    opencx: { apiBaseUrl: 'https://api.open.cx', apiKey: undefined, webhookSecret: undefined },
    ...o,
  };
}

/** Settings that pass Test & Save against the emulator. */
export function validSettings(
  emu: CreatioEmulator,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    instanceUrl: emu.url,
    clientId: SANDBOX_CLIENT.clientId,
    clientSecret: SANDBOX_CLIENT.clientSecret,
    ...overrides,
  };
}
