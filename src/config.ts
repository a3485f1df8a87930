import { isIP } from 'node:net';
import path from 'node:path';
import { SHIPPED_CALL_LIMITS } from './net/call-limiter';
import { EncryptionKey, KeyConfigError, LEGACY_KEY_ID, parseKeyList } from './crypto';
import { z } from 'zod';
import { msToNumber } from '@temporalio/common/lib/time';
import type { Duration } from '@temporalio/common';
import type { TemporalSecurity } from './temporal/connection';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const port = z.coerce.number().int().min(1).max(65535);

/** A Temporal duration: a number and a unit, e.g. 90s, 15m, 24h, 7d. */
const DURATION = /^\d+(ms|s|m|h|d)$/;
const duration = z.string().regex(DURATION, 'must be a number and a unit: ms, s, m, h or d (e.g. 24h)');

/**
 * Express `trust proxy`: a hop count, or a comma-separated list of loopback, linklocal,
 * uniquelocal, IP addresses and CIDR ranges. `true` (trust any X-Forwarded-For) is refused.
 */
const trustProxy = z
  .string()
  .trim()
  .refine(
    (v) =>
      /^\d{1,2}$/.test(v) ||
      v.split(',').every((item) => {
        const [ip = '', prefix, ...rest] = item.trim().split('/');
        if (rest.length > 0) return false;
        if (prefix === undefined)
          return ['loopback', 'linklocal', 'uniquelocal'].includes(ip) || isIP(ip) > 0;
        const max = isIP(ip) === 4 ? 32 : isIP(ip) === 6 ? 128 : -1;
        return /^\d{1,3}$/.test(prefix) && Number(prefix) <= max;
      }),
    'must be a hop count (e.g. 1) or a comma-separated list of loopback, linklocal, uniquelocal, IP addresses and CIDR ranges',
  )
  .transform((v) => (/^\d+$/.test(v) ? Number(v) : v));

const ms = (max: number) => z.coerce.number().int().min(1_000).max(max);

/** A duration of the form the schema accepts (e.g. `10m`), in milliseconds. */
function durationMs(v: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(v)!;
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    m[2] as 'ms' | 's' | 'm' | 'h' | 'd'
  ];
  return Number(m[1]) * unit;
}

/** Every environment variable the service reads. `.env.example` documents each one. */
const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: port.default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  TRUST_PROXY: trustProxy.default('loopback'),
  HTTP_HEADERS_TIMEOUT_MS: ms(600_000).default(20_000),
  HTTP_REQUEST_TIMEOUT_MS: ms(3_600_000).default(60_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: ms(600_000).default(5_000),
  HTTP_MAX_CONNECTIONS: z.coerce.number().int().min(1).max(1_000_000).default(1_000),
  PUBLIC_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** auto: human-readable on a terminal outside production, JSON lines otherwise. */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  ADMIN_API_TOKEN: z.string().min(24, 'must be at least 24 characters').optional(),
  DATA_DIR: z.string().min(1).default('.data'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  ENCRYPTION_KEY: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes, base64-encoded')
    .optional(),
  /**
   * Several keys, for rotation: `id:base64key,…` (32-byte keys), the first seals, every one opens.
   * Instead of ENCRYPTION_KEY, which is the same as `k0:<that key>`.
   */
  ENCRYPTION_KEYS: z.string().min(1).optional(),
  TEMPORAL_ADDRESS: z
    .string()
    .regex(/^[^:\s]+:\d+$/, 'must be host:port')
    .optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /** TLS to TEMPORAL_ADDRESS (implied by a client certificate or an API key). */
  TEMPORAL_TLS: bool.default(false),
  TEMPORAL_TLS_CA_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_KEY_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().min(1).optional(),
  /** Temporal Cloud API key. */
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('opencx-creatio-bridge'),
  /**
   * Worker versioning (Temporal Worker Deployments): this release's build id. Set, the workers join
   * the deployment WORKER_DEPLOYMENT_NAME as that version, and each conversation run stays on the
   * version that started it until it moves to the current one (docs/production.md, Upgrades).
   */
  WORKER_BUILD_ID: z
    .string()
    .regex(/^[\w.+-]{1,255}$/, 'letters, digits, ".", "_", "+" or "-" (a release tag or commit)')
    .optional(),
  WORKER_DEPLOYMENT_NAME: z
    .string()
    .regex(/^[\w.-]{1,255}$/, 'letters, digits, ".", "_" or "-"')
    .default('opencx-creatio-bridge'),
  /**
   * `auto-upgrade`: a running conversation moves to the current version at its next workflow task
   * (old histories replay on the new code: patched(), the replay corpus). `pinned`: a run stays on
   * the version that started it, and moves at continue-as-new when the server says the current
   * version changed (Temporal servers with upgrade-on-continue-as-new); the old workers then run
   * until their conversations have moved or ended.
   */
  WORKER_VERSIONING_BEHAVIOR: z.enum(['auto-upgrade', 'pinned']).default('auto-upgrade'),
  TEMPORAL_CLI_PATH: z.string().min(1).optional(),
  TEMPORAL_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  RUN_WORKER: bool.default(true),
  RUN_API: bool.default(true),
  SANDBOX: z.enum(['auto', 'on', 'off']).default('auto'),
  SANDBOX_PORT: port.default(8300),
  CREATIO_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(15_000),
  CREATIO_RETRY_FOR: duration.default('24h'),
  CREATIO_RETRY_MAX_INTERVAL: duration.default('10s'),
  /** Hard cap on Creatio HTTP calls per second per organization (all processes); unset: adaptive only. */
  CREATIO_MAX_CALLS_PER_SECOND: z.coerce.number().positive().max(10_000).optional(),
  /** Where an organization's adaptive Creatio call rate starts (it grows while Creatio answers). */
  CREATIO_INITIAL_CALLS_PER_SECOND: z.coerce
    .number()
    .positive()
    .max(10_000)
    .default(SHIPPED_CALL_LIMITS.creatioInitialPerSecond),
  /**
   * OpenCX calls per second per API key, all worker processes together, paced in the store (OpenCX
   * allows 100 per minute per key; the default 1.5 is 90 a minute).
   */
  OPENCX_MAX_CALLS_PER_SECOND: z.coerce
    .number()
    .positive()
    .max(1000)
    .default(SHIPPED_CALL_LIMITS.opencxMaxPerSecond),
  /** Creatio activities one worker process runs at once (I/O-bound). */
  WORKER_ACTIVITY_SLOTS: z.coerce.number().int().min(1).max(2000).default(100),
  /** Threads that run conversation workflows in a worker process (docs/decisions/0028-load-and-the-floor.md). */
  WORKER_WORKFLOW_THREADS: z.coerce.number().int().min(1).max(16).default(1),
  /**
   * A workflow bundle built ahead from this same code (`npm run build` writes
   * dist/workflow-bundle.js); unset: the workers bundle src/workflows at start.
   */
  WORKFLOW_BUNDLE: z.string().min(1).optional(),
  /** How long one workflow activation may run, or `off` (docs/decisions/0031-activations-without-a-watchdog.md). */
  WORKER_ACTIVATION_TIMEOUT: z
    .union([
      z.literal('off'),
      duration.refine((v) => {
        // Refinements run on a value the regex refused too.
        if (!DURATION.test(v)) return true;
        const ms = msToNumber(v as Duration);
        return ms >= 1 && ms <= 4_294_967_295;
      }, 'must be off, or from 1ms to 49d (what Node takes as a vm timeout)'),
    ])
    .default('off'),
  CONVERSATION_IDLE_TIMEOUT: duration.default('30d'),
  PARKED_STEP_RETRY_EVERY: duration.default('1h'),
  /** `id:base64key,…` (32-byte keys), the first encrypts; unset: one key derived from ENCRYPTION_KEY. */
  TEMPORAL_PAYLOAD_KEYS: z.string().min(1).optional(),
  /** The Temporal UI's origin, allowed by CORS on the codec endpoint (/codec/decode). */
  TEMPORAL_UI_ORIGIN: z.url().default('http://localhost:8233'),
  /** host:port where the Temporal SDK serves its worker metrics for Prometheus (unset: not served). */
  TEMPORAL_METRICS_ADDRESS: z
    .string()
    .regex(/^[\w.-]+:\d{1,5}$/, 'must be host:port, e.g. 0.0.0.0:9464')
    .optional(),
  REPLY_CHECK_EVERY: duration.default('2m'),
  REPLY_CHECK_MAX_EVERY: duration.default('30m'),
  REPLY_LOOKBACK: duration.default('10m'),
  CREDENTIAL_ROTATION_OVERLAP: duration.default('10m'),
  HISTORY_CHECK_AFTER: duration
    .refine((v) => !/^(\d{1,3}ms|0+[smhd])$/.test(v), 'must be at least 1s (each check reads OpenCX)')
    .default('2m'),
  HISTORY_CHECK_MAX_EVERY: duration.default('6h'),
  REPLY_ATTACHMENT_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .max(100 * 1024 * 1024)
    .default(5 * 1024 * 1024),
  LLM_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  LLM_API_KEY: z.string().min(1).optional(),
  LLM_MODEL: z.string().min(1).default('gpt-4o-mini'),
  AI_FIELDS_DEADLINE: duration.default('20s'),
  AI_TRANSCRIPT_BUDGET_CHARS: z.coerce.number().int().min(500).max(500_000).default(12_000),
  OPENCX_SESSION_URL_TEMPLATE: z
    .string()
    .regex(/^https?:\/\/\S*\{sessionId\}/, 'must be an http(s) URL containing {sessionId}')
    .default('https://platform.open.cx/inbox/{sessionId}'),
});

export type Env = z.infer<typeof envSchema>;

export interface Config {
  env: Env['NODE_ENV'];
  port: number;
  host: string;
  /** Express `trust proxy`: which peers' X-Forwarded-For is believed (a hop count or a list). */
  trustProxy: number | string;
  /** Limits of the HTTP server (src/api/server.ts). */
  http: {
    headersTimeoutMs: number;
    requestTimeoutMs: number;
    keepAliveTimeoutMs: number;
    maxConnections: number;
  };
  publicBaseUrl: string;
  logLevel: Env['LOG_LEVEL'];
  logFormat: Env['LOG_FORMAT'];
  adminApiToken: string | undefined;
  dataDir: string;
  databaseUrl: string | undefined;
  /**
   * The store's keys, the first the current one (ENCRYPTION_KEYS, or ENCRYPTION_KEY as `k0`);
   * undefined: none configured (development generates one).
   */
  encryptionKeys: EncryptionKey[] | undefined;
  temporal: {
    address: string | undefined;
    namespace: string;
    taskQueue: string;
    cliPath: string | undefined;
    port: number;
    uiPort: number;
    security: TemporalSecurity;
    /** Worker versioning: this release's version in the worker deployment (unset: unversioned). */
    deployment: { name: string; buildId: string; behavior: 'auto-upgrade' | 'pinned' } | undefined;
  };
  runWorker: boolean;
  runApi: boolean;
  sandbox: boolean;
  sandboxPort: number;
  creatioRequestTimeoutMs: number;
  creatioRetryFor: string;
  creatioRetryMaxInterval: string;
  creatioMaxCallsPerSecond: number | undefined;
  creatioInitialCallsPerSecond: number;
  opencxMaxCallsPerSecond: number;
  workerActivitySlots: number;
  workerWorkflowThreads: number;
  workerActivationTimeout: string;
  workflowBundle: string | undefined;
  conversationIdleTimeout: string;
  parkedStepRetryEvery: string;
  temporalPayloadKeys: string | undefined;
  temporalUiOrigin: string;
  temporalMetricsAddress: string | undefined;
  replyCheckEvery: string;
  replyCheckMaxEvery: string;
  replyLookback: string;
  historyCheckAfter: string;
  /** How long a rotated Creatio webhook token or OpenCX webhook secret is still accepted, in ms. */
  credentialRotationOverlapMs: number;
  historyCheckMaxEvery: string;
  replyAttachmentMaxBytes: number;
  opencxSessionUrlTemplate: string;
  llm: { baseUrl: string; apiKey: string | undefined; model: string } | undefined;
  aiFieldsDeadline: string;
  aiTranscriptBudgetChars: number;
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Reads and validates the configuration. Every problem is collected so that one run shows all of
 * them. Values are never echoed back: some of these variables are secrets.
 */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const raw = Object.fromEntries(
    Object.keys(envSchema.shape).map((k) => [k, source[k] === '' ? undefined : source[k]]),
  );
  const parsed = envSchema.safeParse(raw);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${issue.path.join('.')}: ${issue.message}`);
  }
  if (raw.NODE_ENV === 'production') {
    for (const name of ['ADMIN_API_TOKEN', 'DATABASE_URL', 'TEMPORAL_ADDRESS', 'PUBLIC_BASE_URL']) {
      if (raw[name] === undefined) problems.push(`${name}: required when NODE_ENV=production`);
    }
    if (raw.ENCRYPTION_KEY === undefined && raw.ENCRYPTION_KEYS === undefined) {
      problems.push('ENCRYPTION_KEY: required when NODE_ENV=production (or ENCRYPTION_KEYS)');
    }
    if (raw.SANDBOX === 'on') problems.push('SANDBOX: cannot be "on" when NODE_ENV=production');
    if (typeof raw.PUBLIC_BASE_URL === 'string' && !raw.PUBLIC_BASE_URL.startsWith('https://')) {
      problems.push(
        'PUBLIC_BASE_URL: must be https:// when NODE_ENV=production (the Creatio webhook URL carries its secret token)',
      );
    }
  }
  const sandboxOn = raw.SANDBOX === 'on' || (raw.SANDBOX !== 'off' && raw.NODE_ENV !== 'production');
  if (sandboxOn && parsed.success && !isLoopbackHost(parsed.data.HOST)) {
    problems.push(
      `HOST: the sandbox (SANDBOX=${raw.SANDBOX ?? 'auto'}) listens with well-known credentials and runs only on a loopback HOST; set SANDBOX=off to listen on ${parsed.data.HOST}`,
    );
  }
  if (parsed.success && parsed.data.HTTP_HEADERS_TIMEOUT_MS > parsed.data.HTTP_REQUEST_TIMEOUT_MS) {
    problems.push('HTTP_HEADERS_TIMEOUT_MS: must not be more than HTTP_REQUEST_TIMEOUT_MS');
  }
  let encryptionKeys: EncryptionKey[] | undefined;
  if (typeof raw.ENCRYPTION_KEYS === 'string') {
    if (raw.ENCRYPTION_KEY !== undefined) {
      problems.push(
        `ENCRYPTION_KEY and ENCRYPTION_KEYS: set only one (ENCRYPTION_KEY=<key> is ENCRYPTION_KEYS=${LEGACY_KEY_ID}:<key>)`,
      );
    }
    try {
      encryptionKeys = parseKeyList(raw.ENCRYPTION_KEYS);
    } catch (err) {
      if (!(err instanceof KeyConfigError)) throw err;
      problems.push(err.message);
    }
  }
  if (Boolean(raw.TEMPORAL_TLS_CERT_PATH) !== Boolean(raw.TEMPORAL_TLS_KEY_PATH)) {
    problems.push('TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH: mTLS needs both');
  }
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;

  return {
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    trustProxy: e.TRUST_PROXY,
    http: {
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      maxConnections: e.HTTP_MAX_CONNECTIONS,
    },
    publicBaseUrl: (e.PUBLIC_BASE_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ''),
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    adminApiToken: e.ADMIN_API_TOKEN,
    dataDir: path.resolve(e.DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    encryptionKeys:
      encryptionKeys ??
      (e.ENCRYPTION_KEY
        ? [new EncryptionKey(LEGACY_KEY_ID, Buffer.from(e.ENCRYPTION_KEY, 'base64'))]
        : undefined),
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      security: {
        tls: e.TEMPORAL_TLS,
        caPath: e.TEMPORAL_TLS_CA_PATH,
        certPath: e.TEMPORAL_TLS_CERT_PATH,
        keyPath: e.TEMPORAL_TLS_KEY_PATH,
        serverName: e.TEMPORAL_TLS_SERVER_NAME,
        apiKey: e.TEMPORAL_API_KEY,
      },
      taskQueue: e.TEMPORAL_TASK_QUEUE,
      cliPath: e.TEMPORAL_CLI_PATH,
      port: e.TEMPORAL_PORT,
      uiPort: e.TEMPORAL_UI_PORT,
      deployment: e.WORKER_BUILD_ID
        ? {
            name: e.WORKER_DEPLOYMENT_NAME,
            buildId: e.WORKER_BUILD_ID,
            behavior: e.WORKER_VERSIONING_BEHAVIOR,
          }
        : undefined,
    },
    runWorker: e.RUN_WORKER,
    runApi: e.RUN_API,
    sandbox: e.SANDBOX === 'on' || (e.SANDBOX === 'auto' && e.NODE_ENV !== 'production'),
    sandboxPort: e.SANDBOX_PORT,
    creatioRequestTimeoutMs: e.CREATIO_REQUEST_TIMEOUT_MS,
    creatioRetryFor: e.CREATIO_RETRY_FOR,
    creatioRetryMaxInterval: e.CREATIO_RETRY_MAX_INTERVAL,
    creatioMaxCallsPerSecond: e.CREATIO_MAX_CALLS_PER_SECOND,
    creatioInitialCallsPerSecond: e.CREATIO_INITIAL_CALLS_PER_SECOND,
    opencxMaxCallsPerSecond: e.OPENCX_MAX_CALLS_PER_SECOND,
    workerActivitySlots: e.WORKER_ACTIVITY_SLOTS,
    workerWorkflowThreads: e.WORKER_WORKFLOW_THREADS,
    workerActivationTimeout: e.WORKER_ACTIVATION_TIMEOUT,
    workflowBundle: e.WORKFLOW_BUNDLE,
    conversationIdleTimeout: e.CONVERSATION_IDLE_TIMEOUT,
    parkedStepRetryEvery: e.PARKED_STEP_RETRY_EVERY,
    temporalPayloadKeys: e.TEMPORAL_PAYLOAD_KEYS,
    temporalUiOrigin: e.TEMPORAL_UI_ORIGIN.replace(/\/+$/, ''),
    temporalMetricsAddress: e.TEMPORAL_METRICS_ADDRESS,
    replyCheckEvery: e.REPLY_CHECK_EVERY,
    replyCheckMaxEvery: e.REPLY_CHECK_MAX_EVERY,
    replyLookback: e.REPLY_LOOKBACK,
    historyCheckAfter: e.HISTORY_CHECK_AFTER,
    credentialRotationOverlapMs: durationMs(e.CREDENTIAL_ROTATION_OVERLAP),
    historyCheckMaxEvery: e.HISTORY_CHECK_MAX_EVERY,
    replyAttachmentMaxBytes: e.REPLY_ATTACHMENT_MAX_BYTES,
    opencxSessionUrlTemplate: e.OPENCX_SESSION_URL_TEMPLATE,
    llm: e.LLM_BASE_URL ? { baseUrl: e.LLM_BASE_URL, apiKey: e.LLM_API_KEY, model: e.LLM_MODEL } : undefined,
    aiFieldsDeadline: e.AI_FIELDS_DEADLINE,
    aiTranscriptBudgetChars: e.AI_TRANSCRIPT_BUDGET_CHARS,
  };
}

export const ENV_VARIABLES = Object.keys(envSchema.shape);
