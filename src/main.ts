import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { NativeConnection } from '@temporalio/worker';
import { createApp, createOpsApp } from './api/app';
import type { Readiness } from './api/deps';
import { createHttpServer } from './api/server';
import { apiGrpcInterceptors } from './workflow-client/client';
import { CreatioInbox } from './workflow-client/creatio-inbox';
import { Metrics } from './metrics';
import { ConfigError, loadConfig, type Config } from './config';
import { EncryptionKey, LEGACY_KEY_ID, randomToken } from './crypto';
import { createLogger, prettyStream, prettyWanted, type Logger } from './logger';
import { openStore, resolveEncryptionKey } from './store';
import { setOutboundPolicy } from './net/outbound';
import { EncryptionCodec, parsePayloadKeys } from './temporal/codec';
import { connectionSecurity } from './temporal/connection';
import { startTemporal } from './temporal/launcher';
import { BridgeWorkers, installRuntime, workflowBundle } from './worker';
import type { ConversationOptions } from './workflows/contract';

/** Closers run in reverse order of registration, each at most once. */
class Shutdown {
  private readonly steps: { name: string; fn: () => Promise<unknown> }[] = [];
  private running: Promise<void> | undefined;
  constructor(private readonly log: Logger) {}
  add(name: string, fn: () => Promise<unknown>): void {
    this.steps.push({ name, fn });
  }
  run(reason: string): Promise<void> {
    this.running ??= (async () => {
      this.log.info({ reason }, 'shutting down');
      for (const step of this.steps.reverse()) {
        try {
          await step.fn();
          this.log.info({ step: step.name }, 'stopped');
        } catch (err) {
          this.log.error({ err, step: step.name }, 'error while stopping');
        }
      }
    })();
    return this.running;
  }
}

/** In development an admin token is generated once and kept in the data directory (never logged). */
async function adminToken(config: Config, log: Logger): Promise<string> {
  if (config.adminApiToken) return config.adminApiToken;
  const file = path.join(config.dataDir, 'admin-token');
  try {
    const token = (await readFile(file, 'utf8')).trim();
    if (token.length >= 24) return token;
  } catch {
    // first start
  }
  await mkdir(config.dataDir, { recursive: true });
  const token = randomToken();
  await writeFile(file, token, { mode: 0o600 });
  log.warn({ file }, 'ADMIN_API_TOKEN is not set: generated one for development; read it from the file');
  return token;
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(
    config.logLevel,
    prettyWanted(config.logFormat, config.env, process.stdout.isTTY === true) ? prettyStream() : undefined,
  );
  const shutdown = new Shutdown(log);
  const stop = (reason: string) => void shutdown.run(reason).then(() => process.exit(0));
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));

  try {
    // A bundle built ahead is read first: a wrong WORKFLOW_BUNDLE stops the service before it starts anything.
    if (config.runWorker && config.workflowBundle) await workflowBundle(config.workflowBundle);
    // The embedded dev server is plain; a configured server gets the TLS / mTLS / API key settings.
    const security = config.temporal.address ? connectionSecurity(config.temporal.security) : {};
    const temporal = await startTemporal({
      address: config.temporal.address,
      security,
      namespace: config.temporal.namespace,
      cliPath: config.temporal.cliPath,
      dbFile: path.join(config.dataDir, 'temporal.sqlite'),
      port: config.temporal.port,
      uiPort: config.temporal.uiPort,
      // The embedded UI decodes through this process's codec endpoint (open to loopback in development).
      ...(config.env === 'development' && { uiCodecEndpoint: `http://127.0.0.1:${config.port}/codec` }),
      log,
    });
    shutdown.add('temporal server', () => temporal.stop());

    // ENCRYPTION_KEYS (the first seals) or ENCRYPTION_KEY (id k0); in development a generated k0.
    const keys = config.encryptionKeys ?? [
      new EncryptionKey(LEGACY_KEY_ID, await resolveEncryptionKey(undefined, config.dataDir, log)),
    ];
    log.info({ current: keys[0]!.id, accepted: keys.map((k) => k.id) }, 'encryption keys');
    const store = await openStore({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      key: keys,
      log,
    });
    store.rotation.overlapMs = config.credentialRotationOverlapMs;
    shutdown.add('store', () => store.close());

    if (config.sandbox) {
      const { startSandbox } = await import('./sandbox');
      const sandbox = await startSandbox({
        port: config.sandboxPort,
        bridgeUrl: `http://127.0.0.1:${config.port}`,
        store,
        log,
        timeoutMs: config.creatioRequestTimeoutMs,
      });
      shutdown.add('sandbox', () => sandbox.close());
    }

    // User-given URLs may only reach public addresses in production (loopback: the sandbox, tests).
    setOutboundPolicy({ allowLoopback: config.env !== 'production' });
    const codec = new EncryptionCodec(parsePayloadKeys(config.temporalPayloadKeys, keys));
    const dataConverter = { payloadCodecs: [codec] };
    const connection = await Connection.connect({
      address: temporal.address,
      ...security,
      interceptors: apiGrpcInterceptors(),
    });
    shutdown.add('temporal client', () => connection.close());
    const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter });

    const metrics = new Metrics();
    let workers: BridgeWorkers | undefined;
    if (!config.llm)
      log.info('LLM_BASE_URL is not set: AI fields are skipped, with that reason recorded at each handoff');
    if (config.runWorker) {
      installRuntime(log, { metricsAddress: config.temporalMetricsAddress });
      const native = await NativeConnection.connect({ address: temporal.address, ...security });
      shutdown.add('worker connection', () => native.close());
      workers = new BridgeWorkers({
        connection: native,
        namespace: config.temporal.namespace,
        taskQueue: config.temporal.taskQueue,
        store,
        log,
        dataConverter,
        ...(config.temporal.deployment && { deployment: config.temporal.deployment }),
        activityDeps: {
          metrics,
          creatioTimeoutMs: config.creatioRequestTimeoutMs,
          opencxSessionUrlTemplate: config.opencxSessionUrlTemplate,
          allowLoopbackHttpLinks: config.env !== 'production',
          llm: config.llm && { ...config.llm, timeoutMs: 15_000 },
          aiTranscriptBudgetChars: config.aiTranscriptBudgetChars,
          replyLimits: {
            attachmentMaxBytes: config.replyAttachmentMaxBytes,
            attachmentsTotalMaxBytes: 2 * config.replyAttachmentMaxBytes,
          },
        },
        limits: {
          ...(config.creatioMaxCallsPerSecond && { creatioMaxPerSecond: config.creatioMaxCallsPerSecond }),
          creatioInitialPerSecond: config.creatioInitialCallsPerSecond,
          opencxMaxPerSecond: config.opencxMaxCallsPerSecond,
        },
        activitySlots: config.workerActivitySlots,
        workflowThreads: config.workerWorkflowThreads,
        activationTimeout: config.workerActivationTimeout,
        ...(config.workflowBundle && { workflowBundle: config.workflowBundle }),
      });
      await workers.start();
      const w = workers;
      shutdown.add('workers (drained)', () => w.shutdown());
      log.info(
        { taskQueue: config.temporal.taskQueue, workflowBundle: config.workflowBundle ?? 'bundled at start' },
        'worker running',
      );
    }

    const conversationOptions: ConversationOptions = {
      taskQueue: config.temporal.taskQueue,
      creatioRetryFor: config.creatioRetryFor as ConversationOptions['creatioRetryFor'],
      creatioRetryMaxInterval:
        config.creatioRetryMaxInterval as ConversationOptions['creatioRetryMaxInterval'],
      parkedRetryEvery: config.parkedStepRetryEvery as ConversationOptions['parkedRetryEvery'],
      maxHistoryEvents: 8_000,
      idleTimeout: config.conversationIdleTimeout as ConversationOptions['idleTimeout'],
      aiFieldsDeadline: config.aiFieldsDeadline as ConversationOptions['aiFieldsDeadline'],
      replyCheckEvery: config.replyCheckEvery as Duration,
      replyCheckMaxEvery: config.replyCheckMaxEvery as Duration,
      replyLookback: config.replyLookback as Duration,
      historyCheckAfter: config.historyCheckAfter as Duration,
      historyCheckMaxEvery: config.historyCheckMaxEvery as Duration,
    };

    const readiness = async (): Promise<Readiness> => {
      const checks: Readiness['checks'] = {};
      const probe = async (name: string, fn: () => Promise<unknown>) => {
        try {
          await fn();
          checks[name] = { ok: true };
        } catch (err) {
          checks[name] = { ok: false, detail: err instanceof Error ? err.message : String(err) };
        }
      };
      await Promise.all([
        probe('temporal', () => client.workflowService.getSystemInfo({})),
        probe('store', () => store.ping()),
        probe('worker', () =>
          !workers || workers.state === 'RUNNING'
            ? Promise.resolve()
            : Promise.reject(new Error(`worker is ${workers.state}`)),
        ),
      ]);
      if (workers) {
        // An activity worker that failed is started again; the last failures stay visible.
        const recent = workers.failures.filter((f) => Date.now() - Date.parse(f.at) < 600_000);
        checks.workers = {
          ok: true,
          detail: { ...workers.describe(), ...(recent.length > 0 && { restartedAfter: recent }) },
        };
      }
      return { ready: Object.values(checks).every((c) => c.ok), checks };
    };

    /** Listens on PORT; on shutdown, requests under way finish first. */
    const serve = async (app: http.RequestListener) => {
      const server = createHttpServer(app, config.http);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, resolve);
      });
      shutdown.add('http', async () => {
        server.closeIdleConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      });
    };

    if (config.runApi) {
      const creatioInbox = new CreatioInbox(store, client, log);
      creatioInbox.startSweep();
      shutdown.add('creatio inbox', () => creatioInbox.stop());
      const app = createApp({
        config: { ...config, adminApiToken: await adminToken(config, log) },
        store,
        log,
        metrics,
        readiness,
        codec,
        conversations: {
          client,
          taskQueue: config.temporal.taskQueue,
          options: conversationOptions,
          creatioInbox,
        },
      });
      await serve(app);
      log.info(
        {
          api: `http://${config.host}:${config.port}`,
          temporalUi: temporal.uiUrl,
          temporal: temporal.address,
        },
        'OpenCX ⇄ Creatio bridge is up',
      );
    } else {
      // A worker-only process still answers probes and scrapes (domain metrics are counted here).
      await serve(
        createOpsApp({
          log,
          metrics,
          readiness,
          config: { adminApiToken: config.adminApiToken, trustProxy: config.trustProxy },
        }),
      );
      log.info({ ops: `http://${config.host}:${config.port}` }, 'health and metrics served');
    }
  } catch (err) {
    log.fatal({ err }, 'start-up failed');
    await shutdown.run('start-up failed');
    process.exit(1);
  }
}

void main();
