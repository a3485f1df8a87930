import { IDS } from '../src/sandbox/emulators/creatio-schema';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { createLogger, type Logger } from '../src/logger';
import { signedHeaders } from '../src/opencx/signature';
import type { Store } from '../src/store';
import { BridgeWorkers, installRuntime, type CallLimits, type WorkerOptions } from '../src/worker';
import { SHIPPED_CALL_LIMITS } from '../src/net/call-limiter';
import { EncryptionCodec, parsePayloadKeys } from '../src/temporal/codec';
import { apiGrpcInterceptors } from '../src/workflow-client/client';
import { CreatioInbox } from '../src/workflow-client/creatio-inbox';
import type { ConversationOptions } from '../src/workflows/contract';
import { conversationWorkflowId } from '../src/workflows/contract';
import { startCreatioEmulator, type CreatioEmulator } from '../src/sandbox/emulators/creatio';
import { startOpenCXEmulator, type OpenCXEmulator } from '../src/sandbox/emulators/opencx';
import { Metrics } from '../src/metrics';
import { freePort } from '../src/temporal/launcher';
import { TcpProxy } from './fixtures/tcp-proxy';
import {
  newTestStoreConfig,
  openTestStore,
  startApi,
  uniqueOrg,
  validSettings,
  type RunningApi,
  type TestStoreConfig,
} from './helpers';

export const WEBHOOK_SECRET = `whsec_${Buffer.from('test-webhook-signing-key-0123456789').toString('base64')}`;

export interface BridgeOptions {
  temporalAddress?: string;
  conversation?: Partial<ConversationOptions>;
  log?: Logger;
  store?: 'postgres' | 'pglite';
  /** OpenAI-compatible endpoint for AI fields (e.g. the LLM emulator). */
  llmBaseUrl?: string;
  /** False: no worker in this process (a test runs them in child processes). */
  inProcessWorkers?: boolean;
  /** How HTTP calls are paced per organization (the shipped defaults unless a test says otherwise). */
  limits?: CallLimits;
  /** Route the API's Temporal client through a proxy that the test can break (`bridge.temporalProxy`). */
  proxyApiTemporal?: boolean;
  /** Route every store connection (API and workers) through a proxy the test can break (`bridge.storeProxy`). */
  proxyStore?: boolean;
  /** How the workers are made (a test wraps Worker.create to make one fail). */
  createWorker?: WorkerOptions['createWorker'];
  /** Where the Creatio emulator serves OData (`/odata`: Creatio on .NET Core). */
  odataPath?: '/0/odata' | '/odata';
  /** How long the API keeps an organization's receiver (webhook secret, mode); 30 s as shipped. */
  receiversTtlMs?: number;
}

/** Worker settings of the test bridge, shared by in-process workers and worker child processes. */
export function testWorkerOptions(o: {
  connection: NativeConnection;
  taskQueue: string;
  store: Store;
  log: Logger;
  llmBaseUrl?: string;
  limits?: CallLimits;
  /** Payload encryption, with the key the client of the test uses. */
  payloadKey: Buffer;
  metrics?: Metrics;
}): ConstructorParameters<typeof BridgeWorkers>[0] {
  return {
    dataConverter: { payloadCodecs: [new EncryptionCodec(parsePayloadKeys(undefined, o.payloadKey))] },
    connection: o.connection,
    namespace: 'default',
    taskQueue: o.taskQueue,
    store: o.store,
    log: o.log,
    activityDeps: {
      ...(o.metrics && { metrics: o.metrics }),
      creatioTimeoutMs: 2_000,
      opencxSessionUrlTemplate: 'https://platform.open.cx/inbox/{sessionId}',
      allowLoopbackHttpLinks: true,
      ...(o.llmBaseUrl && {
        llm: { baseUrl: o.llmBaseUrl, apiKey: 'sk-test', model: 'emu-1', timeoutMs: 3_000 },
      }),
    },
    limits: o.limits ?? SHIPPED_CALL_LIMITS,
    maxCachedWorkflows: 100,
    // The bundle `npm test` builds once for every test process (test/run.ts).
    ...(process.env.WORKFLOW_BUNDLE && { workflowBundle: process.env.WORKFLOW_BUNDLE }),
  };
}

/**
 * The whole bridge in one test process: the Creatio emulator, the real store (PostgreSQL), real
 * workers on a unique task queue, and the real HTTP API with a real Temporal client.
 */
export class Bridge {
  emu!: CreatioEmulator;
  opencx!: OpenCXEmulator;
  store!: Store;
  storeConfig!: TestStoreConfig;
  codec!: EncryptionCodec;
  api!: RunningApi;
  client!: Client;
  workers: BridgeWorkers | undefined;
  inbox: CreatioInbox | undefined;
  temporalProxy: TcpProxy | undefined;
  storeProxy: TcpProxy | undefined;
  /** More API processes (startOtherApi), closed with the bridge. */
  private readonly otherApis: { api: RunningApi; store: Store; inbox: CreatioInbox }[] = [];
  private connection!: Connection;
  private apiConnection: Connection | undefined;
  private native: NativeConnection | undefined;
  readonly taskQueue = `bridge-test-${randomUUID().slice(0, 8)}`;
  /** The process's metrics, shared by the API and the workers as in src/main.ts. */
  readonly metrics = new Metrics();
  log: Logger;
  address: string;

  constructor(private readonly opts: BridgeOptions = {}) {
    this.log = opts.log ?? createLogger(process.env.TEST_LOG_LEVEL ?? 'warn');
    this.address = opts.temporalAddress ?? process.env.TEMPORAL_ADDRESS!;
  }

  get options(): ConversationOptions {
    return {
      taskQueue: this.taskQueue,
      creatioRetryFor: '10m',
      creatioRetryMaxInterval: '2s',
      parkedRetryEvery: '1h',
      maxHistoryEvents: 10_000,
      idleTimeout: '1d',
      aiFieldsDeadline: '8s',
      ...this.opts.conversation,
    };
  }

  async start(): Promise<this> {
    this.emu = await startCreatioEmulator(0, this.opts.odataPath ? { odataPath: this.opts.odataPath } : {});
    this.opencx = await startOpenCXEmulator();
    this.storeConfig = await newTestStoreConfig(this.opts.store ?? 'postgres');
    if (this.opts.proxyStore && this.storeConfig.databaseUrl) {
      const url = new URL(this.storeConfig.databaseUrl);
      this.storeProxy = await TcpProxy.start(url.host);
      url.host = this.storeProxy.address;
      this.storeConfig = { ...this.storeConfig, databaseUrl: url.toString() };
    }
    this.store = await openTestStore(this.log, this.opts.store ?? 'postgres', this.storeConfig);
    this.codec = new EncryptionCodec(parsePayloadKeys(undefined, this.storeConfig.key));
    this.connection = await Connection.connect({
      address: this.address,
      interceptors: apiGrpcInterceptors(),
    });
    this.client = new Client({ connection: this.connection, dataConverter: { payloadCodecs: [this.codec] } });
    let apiClient = this.client;
    if (this.opts.proxyApiTemporal) {
      this.temporalProxy = await TcpProxy.start(this.address);
      this.apiConnection = await Connection.connect({
        address: this.temporalProxy.address,
        interceptors: apiGrpcInterceptors(),
      });
      apiClient = new Client({
        connection: this.apiConnection,
        dataConverter: { payloadCodecs: [this.codec] },
      });
    }
    if (this.opts.inProcessWorkers !== false) await this.startWorkers();
    this.inbox = new CreatioInbox(this.store, apiClient, this.log);
    this.inbox.startSweep(1_000, 1_000);
    this.api = await startApi({
      store: this.store,
      log: this.log,
      metrics: this.metrics,
      codec: this.codec,
      ...(this.opts.receiversTtlMs && { receiversTtlMs: this.opts.receiversTtlMs }),
      conversations: {
        client: apiClient,
        taskQueue: this.taskQueue,
        options: this.options,
        creatioInbox: this.inbox,
      },
    });
    return this;
  }

  async startWorkers(): Promise<void> {
    // The SDK's Prometheus exporter on a free port of this test process (see runtimeMetricsAddress).
    installRuntime(this.log, { metricsAddress: `127.0.0.1:${await freePort()}` });
    this.native = await NativeConnection.connect({ address: this.address });
    this.workers = new BridgeWorkers({
      ...testWorkerOptions({
        connection: this.native,
        taskQueue: this.taskQueue,
        store: this.store,
        log: this.log,
        payloadKey: this.storeConfig.key,
        metrics: this.metrics,
        ...(this.opts.llmBaseUrl && { llmBaseUrl: this.opts.llmBaseUrl }),
        ...(this.opts.limits && { limits: this.opts.limits }),
      }),
      ...(this.opts.createWorker && { createWorker: this.opts.createWorker }),
    });
    await this.workers.start();
  }

  /**
   * Another API process beside the first, as production runs several behind a load balancer: the
   * same Temporal and the same database, with its own store connection, caches and delivery records.
   */
  async startOtherApi(): Promise<RunningApi> {
    const store = await openTestStore(this.log, this.opts.store ?? 'postgres', this.storeConfig);
    const inbox = new CreatioInbox(store, this.client, this.log);
    const api = await startApi({
      store,
      log: this.log,
      codec: this.codec,
      ...(this.opts.receiversTtlMs && { receiversTtlMs: this.opts.receiversTtlMs }),
      conversations: {
        client: this.client,
        taskQueue: this.taskQueue,
        options: this.options,
        creatioInbox: inbox,
      },
    });
    this.otherApis.push({ api, store, inbox });
    return api;
  }

  async stopWorkers(): Promise<void> {
    await this.workers?.shutdown();
    this.workers = undefined;
    await this.native?.close();
    this.native = undefined;
  }

  async close(): Promise<void> {
    for (const o of this.otherApis.splice(0)) {
      await o.api.close();
      await o.inbox.stop();
      await o.store.close();
    }
    await this.api?.close();
    await this.inbox?.stop();
    await this.stopWorkers();
    await this.connection?.close();
    await this.apiConnection?.close();
    await this.temporalProxy?.close();
    await this.store?.close();
    await this.storeProxy?.close();
    await this.emu?.processesIdle();
    await this.emu?.close();
    await this.opencx?.close();
  }

  /** Connects a new organization through Test & Save; returns its id. */
  async connectOrg(overrides: Record<string, unknown> = {}): Promise<string> {
    const orgId = uniqueOrg();
    const res = await this.api.request(
      'PUT',
      `/v1/orgs/${orgId}/integrations/creatio`,
      validSettings(this.emu, {
        opencx: { apiBaseUrl: this.opencx.url, apiKey: 'ocx_test_key', webhookSecret: WEBHOOK_SECRET },
        ...overrides,
      }),
    );
    if (res.status !== 201) throw new Error(`connect failed: ${res.text}`);
    this.emu.calls.clear();
    return orgId;
  }

  /** Saves the organization's settings again (Test & Save) with `changes` over what it has now. */
  async changeSettings(
    orgId: string,
    changes: Record<string, unknown>,
  ): Promise<{ status: number; text: string }> {
    const { clientSecret: _c, ...settings } = {
      ...(await this.api.request('GET', `/v1/orgs/${orgId}/integrations/creatio`)).body,
    };
    const { orgId: _o, webhookUrl: _w, opencx: _x, notices: _n, ...input } = settings;
    return this.api.request('PUT', `/v1/orgs/${orgId}/integrations/creatio`, { ...input, ...changes });
  }

  /** Sends one signed OpenCX event; returns the HTTP status and body. */
  async send(
    orgId: string,
    event: string,
    data: Record<string, unknown>,
    o: {
      id?: string;
      timestamp?: number;
      secret?: string;
      headers?: Record<string, string>;
      /** The API process that receives it (the first by default; see startOtherApi). */
      api?: RunningApi;
    } = {},
  ): Promise<{ status: number; body: any }> {
    const body = JSON.stringify({ event, organization_id: orgId, data });
    const res = await fetch(`${(o.api ?? this.api).url}/webhooks/opencx`, {
      method: 'POST',
      headers: { ...signedHeaders(o.secret ?? WEBHOOK_SECRET, body, o.id, o.timestamp), ...o.headers },
      body,
      // A bridge that leaves the sender hanging fails the test rather than hanging it.
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  /** The organization's Creatio webhook URL, on this test API's real address. */
  async creatioWebhookUrl(orgId: string): Promise<string> {
    const res = await this.api.request('GET', `/v1/orgs/${orgId}/integrations/creatio`);
    return `${this.api.url}/webhooks/creatio/${String(res.body.webhookUrl).split('/').pop()}`;
  }

  async session(orgId: string, sessionId: string): Promise<{ status: number; body: any }> {
    return this.api.request('GET', `/v1/orgs/${orgId}/sessions/${sessionId}`);
  }

  /** The conversation's case id, once the workflow has created the case. */
  caseOf(orgId: string, sessionId: string, ms = 30_000): Promise<string> {
    return waitFor(
      `the case of ${sessionId}`,
      async () => (await this.session(orgId, sessionId)).body?.caseId as string | undefined,
      ms,
    );
  }

  /** The workflow's result, or a failure after `ms` (a test never hangs on a conversation that stays open). */
  async result(orgId: string, sessionId: string, ms = 60_000) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`conversation ${sessionId} did not finish within ${ms} ms`)),
        ms,
      );
    });
    try {
      return await Promise.race([this.handle(orgId, sessionId).result(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  handle(orgId: string, sessionId: string) {
    return this.client.workflow.getHandle(conversationWorkflowId(orgId, sessionId));
  }

  /** Activities of a case as the emulator stored them, in the order they were written. */
  activitiesOf(caseId: string) {
    return this.emu.rows('Activity').filter((a) => a.CaseId === caseId);
  }

  /**
   * Waits until the conversation's `count` customer messages (texts `<session> #<n>`) are in
   * Creatio, then checks each is there once, in order.
   */
  async expectCustomerMessages(orgId: string, sessionId: string, count: number): Promise<void> {
    const caseId = await this.caseOf(orgId, sessionId, 60_000);
    await waitFor(
      `${count} messages of ${sessionId} in Creatio`,
      () => this.customerTexts(caseId).length >= count,
      120_000,
    );
    assert.deepEqual(
      this.customerTexts(caseId),
      Array.from({ length: count }, (_, n) => `${sessionId} #${n}`),
      'every message exactly once, in order',
    );
  }

  /**
   * An agent answers the customer from Creatio: a sent, outgoing Email To the case's contact (the
   * reply the default filter delivers), with `text` as its body.
   */
  agentReply(caseId: string, text: string) {
    return this.emu.agentEmail(caseId, {
      title: `Re: ${text}`,
      body: `<p>${text}</p>`,
      ownerId: IDS.contact.Supervisor,
    });
  }

  /** The texts OpenCX received for the session (agent replies), in order. */
  sentTexts(sessionId: string): string[] {
    return this.opencx.messagesFor(sessionId).map((m) => m.text);
  }

  /** The customer messages logged on a case, in the order Creatio received them. */
  customerTexts(caseId: string): string[] {
    const prefix = '[OpenCX] Customer: ';
    return this.activitiesOf(caseId)
      .map((a) => String(a.Title))
      .filter((t) => t.startsWith(prefix))
      .map((t) => t.slice(prefix.length));
  }
}

export async function waitFor<T>(
  what: string,
  fn: () => T | Promise<T>,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

let clock = Date.parse('2026-11-20T10:00:00Z');
/** Increasing event timestamps, one second apart. */
/** Strictly increasing, and never before now (a message's time is compared with the close's). */
export function nextTimestamp(): string {
  clock = Math.max(clock + 1000, Date.now());
  return new Date(clock).toISOString();
}

export const ev = {
  started: (
    sessionId: string,
    contact: Record<string, unknown> = { name: 'Jane Doe', email: 'jane@example.com' },
    channel = 'web',
  ) => ({
    conversation_id: sessionId,
    contact,
    channel,
    timestamp: nextTimestamp(),
  }),
  message: (sessionId: string, id: string, text: string, agent?: string) => ({
    conversation_id: sessionId,
    message: { id, text },
    ...(agent && { agent: { id: 7, name: agent } }),
    timestamp: nextTimestamp(),
  }),
  handoff: (sessionId: string) => ({
    conversation_id: sessionId,
    reason: 'user_requested_human',
    summary: 'Customer cannot log in after the password reset.',
    language: 'en',
    sentiment: 'angry',
    timestamp: nextTimestamp(),
  }),
  closed: (sessionId: string, resolution: 'resolved' | 'not_resolved' = 'resolved') => ({
    conversation_id: sessionId,
    resolution_status: resolution,
    summary: 'Password reset link resent.',
    language: 'en',
    user_sentiment: 'neutral',
    timestamp: nextTimestamp(),
  }),
};
