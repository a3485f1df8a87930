import {
  DefaultLogger,
  makeTelemetryFilterString,
  Runtime,
  Worker,
  bundleWorkflowCode,
  type BundleOptions,
  type NativeConnection,
  type WorkflowBundle,
} from '@temporalio/worker';
import type { DataConverter } from '@temporalio/common';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { activationTimeoutOption } from './temporal/isolate-timeout';
import { createActivities, type ActivityDeps } from './activities';
import { activityOpenCXPacing } from './activities/context';
import { CallLimiters } from './net/call-limiter';
import { OPENCX_FALLBACK_MAX_WAIT_MS } from './net/opencx-pacing';
import type { Logger } from './logger';
import type { Store } from './store';
import { creatioTaskQueue, opencxTaskQueue } from './workflows/task-queues';

/** How the HTTP calls to each organization's Creatio and OpenCX are paced (src/net/call-limiter.ts). */
export interface CallLimits {
  /** Hard cap on Creatio calls per second per organization, all worker processes together. */
  creatioMaxPerSecond?: number;
  /** Creatio calls per second an organization starts at (it adapts from there). */
  creatioInitialPerSecond: number;
  /**
   * OpenCX calls per second per API key, all worker processes together (OpenCX allows 100 per
   * minute per key; 1.5 is 90 a minute).
   */
  opencxMaxPerSecond: number;
}

let runtimeInstalled = false;
let metricsAddress: string | undefined;

/** Where this process's Temporal SDK metrics are served, if they are. */
export function runtimeMetricsAddress(): string | undefined {
  return metricsAddress;
}

/**
 * Routes the SDK's (and the Rust core's) logs into pino; the service owns signal handling.
 * Must run before the first NativeConnection or Worker of the process.
 */
export function installRuntime(log: Logger, opts: { metricsAddress?: string } = {}): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  metricsAddress = opts.metricsAddress;
  const levels = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;
  Runtime.install({
    shutdownSignals: [],
    logger: new DefaultLogger('INFO', (entry) => {
      // The activity-only workers (Creatio, OpenCX) say this at start by design.
      const level = /^No (workflows|Nexus services) registered/.test(entry.message)
        ? 'debug'
        : levels[entry.level];
      log[level]({ ...entry.meta, temporal: true }, entry.message);
    }),
    telemetryOptions: {
      logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN' }) },
      ...(opts.metricsAddress && {
        metrics: {
          prometheus: {
            bindAddress: opts.metricsAddress,
            countersTotalSuffix: true,
            useSecondsForDurations: true,
          },
        },
      }),
    },
  });
}

const bundles = new Map<string, Promise<WorkflowBundle>>();

/**
 * How the workflow code is bundled. The preloaded module sets up the sandbox before the workflow
 * code loads (docs/decisions/0035-workflow-stack-trace-limit.md).
 */
export const workflowBundleOptions = {
  workflowsPath: require.resolve('./workflows'),
  preloadModules: [require.resolve('./workflows/stack-trace-limit')],
  logger: {
    trace: () => undefined,
    debug: () => undefined,
    info: () => undefined,
    warn: () => undefined,
    error: console.error,
    log: () => undefined,
  },
} satisfies BundleOptions;

/**
 * The workflow code, once per process: read from `file`, a bundle built ahead from this same code
 * (`npm run build` writes dist/workflow-bundle.js; WORKFLOW_BUNDLE), or else bundled here from
 * src/workflows, which takes seconds of CPU at every start
 * (docs/decisions/0037-workflow-bundle-built-ahead.md).
 */
export function workflowBundle(file?: string): Promise<WorkflowBundle> {
  const key = file ?? '';
  let bundle = bundles.get(key);
  if (!bundle) {
    bundle = file ? readWorkflowBundle(file) : bundleWorkflowCode(workflowBundleOptions);
    bundles.set(key, bundle);
  }
  return bundle;
}

async function readWorkflowBundle(file: string): Promise<WorkflowBundle> {
  let code: string;
  try {
    code = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new Error(
      `WORKFLOW_BUNDLE ${file} cannot be read (${reason}): build it with npm run build, or unset WORKFLOW_BUNDLE to bundle the workflows at start`,
    );
  }
  // The mark opens the file (the compiled worker holds it too, as a string).
  if (!code.startsWith(WORKFLOW_BUNDLE_MARK)) {
    throw new Error(
      `WORKFLOW_BUNDLE ${file} is not a workflow bundle of this service (npm run build writes one)`,
    );
  }
  return { code };
}

/** What `writeWorkflowBundle` puts first in the file, and `workflowBundle` checks for. */
const WORKFLOW_BUNDLE_MARK = '/* opencx-creatio-bridge workflow bundle */';

/** Bundles src/workflows into `file` (npm run build). */
export async function writeWorkflowBundle(file: string): Promise<void> {
  const { code } = await bundleWorkflowCode(workflowBundleOptions);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${WORKFLOW_BUNDLE_MARK}\n${code}`);
}

export interface WorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  store: Store;
  log: Logger;
  activityDeps: Omit<ActivityDeps, 'store' | 'limiters' | 'opencxPacing'>;
  limits: CallLimits;
  /** Activities one process runs at once on the Creatio queue (they wait on I/O, not CPU). */
  activitySlots?: number;
  /** Threads that run workflow activations (WORKER_WORKFLOW_THREADS). */
  workflowThreads?: number;
  /** How long one workflow activation may run: a duration, or `off` (WORKER_ACTIVATION_TIMEOUT). */
  activationTimeout?: string;
  maxCachedWorkflows?: number;
  /** A workflow bundle built ahead (WORKFLOW_BUNDLE); unset: bundled at start. */
  workflowBundle?: string;
  /** The payload codec (encryption) shared with the client: every worker reads and writes through it. */
  dataConverter?: DataConverter;
  /** How a worker is made (Worker.create); tests wrap it to make one fail. */
  createWorker?: (options: WorkerCreateOptions) => Promise<Worker>;
  /**
   * Worker versioning: the workers are this version of the deployment; conversations move to the
   * current version at their next workflow task (`auto-upgrade`), or at continue-as-new (`pinned`).
   * See docs/decisions/0026-worker-versioning.md.
   */
  deployment?: { name: string; buildId: string; behavior?: 'auto-upgrade' | 'pinned' };
}

type WorkerCreateOptions = Parameters<typeof Worker.create>[0];

/** A worker that stopped with an error, as /readyz shows it. */
export interface WorkerFailure {
  worker: string;
  at: string;
  message: string;
}

/** How often a worker process says it is alive (the call limits are shared among the live ones). */
const PRESENCE_EVERY_MS = 5_000;
/**
 * Pollers per worker: fixed, whatever the number of organizations. Workflow tasks get more: a
 * task that runs a first try (a local activity) holds its slot for a Creatio round trip, and a new
 * conversation's first task comes from the shared (non-sticky) queue, which gets half of them.
 */
const ACTIVITY_POLLERS = 4;
const WORKFLOW_POLLERS = 10;

/**
 * The bridge's workers, three per process whatever the number of organizations: one for the
 * conversation workflows (and the local store reads), one for the Creatio activities of every
 * organization, one for the OpenCX activities. Organizations are kept apart in the process, not
 * by task queues: each has its own call limiter (a slow or failing Creatio gives its worker slots
 * back at once instead of holding them), and every task carries the organization as its fairness
 * key. See docs/decisions/0014-shared-task-queues.md.
 */
export class BridgeWorkers {
  private readonly activities;
  private readonly limiters;
  private workflowWorker: Worker | undefined;
  private readonly activityWorkers = new Map<string, Worker>();
  private readonly runs: Promise<void>[] = [];
  private stopping = false;
  private presenceTimer: NodeJS.Timeout | undefined;
  private liveProcesses = 1;
  readonly processId = `${process.pid}-${randomUUID().slice(0, 8)}`;
  /** Most recent worker failures (an activity worker is started again after a failure). */
  readonly failures: WorkerFailure[] = [];

  constructor(private readonly o: WorkerOptions) {
    const share = () => 1 / this.liveProcesses;
    this.limiters = {
      creatio: new CallLimiters({
        initialPerSecond: o.limits.creatioInitialPerSecond,
        ...(o.limits.creatioMaxPerSecond && { maxPerSecond: o.limits.creatioMaxPerSecond }),
        share,
      }),
      opencx: new CallLimiters({
        initialPerSecond: o.limits.opencxMaxPerSecond,
        maxPerSecond: o.limits.opencxMaxPerSecond,
        minPerSecond: Math.min(0.2, o.limits.opencxMaxPerSecond),
        maxWaitMs: OPENCX_FALLBACK_MAX_WAIT_MS,
        share,
      }),
    };
    // OpenCX calls take turns in one queue per API key in the store, across worker processes; the
    // in-process OpenCX limiters above pace them only while the store cannot be reached.
    const opencxPacing = activityOpenCXPacing({
      db: o.store.db,
      perSecond: o.limits.opencxMaxPerSecond,
      fallback: this.limiters.opencx,
      callMs: o.activityDeps.creatioTimeoutMs,
      log: o.log,
    });
    this.activities = createActivities({
      ...o.activityDeps,
      store: o.store,
      limiters: this.limiters,
      opencxPacing,
    });
  }

  get state(): string {
    return this.workflowWorker?.getState() ?? 'NOT_STARTED';
  }

  /** What /readyz shows of the workers: states, pollers, live processes, current call rates. */
  describe() {
    return {
      processId: this.processId,
      liveProcesses: this.liveProcesses,
      pollers: WORKFLOW_POLLERS + ACTIVITY_POLLERS * this.activityWorkers.size,
      workers: Object.fromEntries([...this.activityWorkers].map(([q, w]) => [q, w.getState()])),
      creatioCallsPerSecond: this.limiters.creatio.rates(),
    };
  }

  async start(): Promise<void> {
    await this.announce();
    this.presenceTimer = setInterval(() => {
      this.announce().catch((err: unknown) =>
        this.o.log.warn(
          { reason: err instanceof Error ? err.message : String(err) },
          'could not record this worker process as alive; keeping the last share of the call limits',
        ),
      );
    }, PRESENCE_EVERY_MS);
    this.presenceTimer.unref();

    this.workflowWorker = await this.create({
      connection: this.o.connection,
      namespace: this.o.namespace,
      taskQueue: this.o.taskQueue,
      workflowBundle: await workflowBundle(this.o.workflowBundle),
      // Local activities only: the store reads, and the first try of short Creatio writes. Every
      // activity task goes to the peers' queues, so this worker polls for none (a poller that never
      // gets a task still costs a long poll on the server).
      activities: { ...this.activities.store, ...this.activities.creatio },
      enableNonLocalActivities: false,
      ...(this.o.dataConverter && { dataConverter: this.o.dataConverter }),
      maxCachedWorkflows: this.o.maxCachedWorkflows ?? 500,
      // One thread runs every activation by default; more run conversations side by side, for a
      // host with cores to spare (each costs CPU: docs/decisions/0028-load-and-the-floor.md).
      workflowThreadPoolSize: this.o.workflowThreads ?? 1,
      ...activationTimeoutOption(this.o.activationTimeout ?? 'off'),
      maxConcurrentWorkflowTaskPolls: WORKFLOW_POLLERS,
      nonStickyToStickyPollRatio: 0.5,
      shutdownGraceTime: '10 seconds',
    });
    this.runs.push(this.track(this.workflowWorker, 'workflow worker'));
    await Promise.all([this.startActivityWorker('creatio'), this.startActivityWorker('opencx')]);
  }

  private async announce(): Promise<void> {
    this.liveProcesses = Math.max(
      1,
      await this.o.store.announceWorkerProcess(this.processId, 3 * PRESENCE_EVERY_MS),
    );
  }

  private async startActivityWorker(peer: 'creatio' | 'opencx'): Promise<void> {
    if (this.stopping) return;
    const { creatio, aiFields, opencx } = this.activities;
    const taskQueue =
      peer === 'creatio' ? creatioTaskQueue(this.o.taskQueue) : opencxTaskQueue(this.o.taskQueue);
    const worker = await this.create({
      connection: this.o.connection,
      namespace: this.o.namespace,
      taskQueue,
      activities: peer === 'creatio' ? { ...creatio, ...aiFields } : opencx,
      ...(this.o.dataConverter && { dataConverter: this.o.dataConverter }),
      maxConcurrentActivityTaskExecutions: peer === 'creatio' ? (this.o.activitySlots ?? 100) : 20,
      maxConcurrentActivityTaskPolls: ACTIVITY_POLLERS,
      shutdownGraceTime: '10 seconds',
    });
    this.activityWorkers.set(taskQueue, worker);
    const running = this.track(worker, taskQueue, () => {
      // An activity worker that failed is made again: its tasks wait in the queue meanwhile.
      setTimeout(() => {
        this.startActivityWorker(peer).catch((err: unknown) =>
          this.o.log.error({ err, taskQueue }, 'could not start the activity worker again'),
        );
      }, 1_000).unref();
    });
    this.runs.push(running);
  }

  private create(options: WorkerCreateOptions): Promise<Worker> {
    const d = this.o.deployment;
    if (d) {
      options = {
        ...options,
        workerDeploymentOptions: {
          version: { deploymentName: d.name, buildId: d.buildId },
          useWorkerVersioning: true,
          defaultVersioningBehavior: d.behavior === 'pinned' ? 'PINNED' : 'AUTO_UPGRADE',
        },
      };
    }
    return (this.o.createWorker ?? ((opts) => Worker.create(opts)))(options);
  }

  /**
   * Runs a worker. An activity worker failing never takes the process down: it is made again and
   * the failure shows in /readyz. The workflow worker failing makes the process not ready (the
   * orchestrator restarts it).
   */
  private track(worker: Worker, name: string, restart?: () => void): Promise<void> {
    return worker.run().catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      this.failures.push({ worker: name, at: new Date().toISOString(), message });
      if (this.failures.length > 20) this.failures.shift();
      if (!restart) {
        this.o.log.fatal({ err, worker: name }, 'workflow worker stopped with an error: not ready');
        return;
      }
      this.o.log.error({ err, worker: name }, 'activity worker stopped with an error; starting it again');
      if (!this.stopping) restart();
    });
  }

  /** Stops polling, lets running tasks finish (grace time), then resolves. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    if (this.presenceTimer) clearInterval(this.presenceTimer);
    for (const w of [this.workflowWorker, ...this.activityWorkers.values()]) {
      if (w && w.getState() === 'RUNNING') w.shutdown();
    }
    await Promise.allSettled(this.runs);
    await this.o.store.retireWorkerProcess(this.processId).catch(() => undefined);
  }
}
