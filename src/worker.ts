import {
  DefaultLogger,
  makeTelemetryFilterString,
  Runtime,
  Worker,
  bundleWorkflowCode,
  type NativeConnection,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import type { DataConverter } from '@temporalio/common';
import { createActivities, type ActivityDeps } from './activities';
import type { Logger } from './logger';
import type { Store } from './store';
import { creatioTaskQueue, opencxTaskQueue } from './workflows/task-queues';

let runtimeInstalled = false;

/**
 * Routes the SDK's (and the Rust core's) logs into pino; the service owns signal handling.
 * Must run before the first NativeConnection or Worker of the process.
 */
export function installRuntime(log: Logger): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const levels = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;
  Runtime.install({
    shutdownSignals: [],
    logger: new DefaultLogger('INFO', (entry) => {
      // Activity-only workers (one pair per organization) say this at start by design.
      const level = /^No (workflows|Nexus services) registered/.test(entry.message)
        ? 'debug'
        : levels[entry.level];
      log[level]({ ...entry.meta, temporal: true }, entry.message);
    }),
    telemetryOptions: { logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN' }) } },
  });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** The workflow code, bundled once per process. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: require.resolve('./workflows'),
    logger: {
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: console.error,
      log: () => undefined,
    },
  });
  return bundle;
}

export interface WorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  store: Store;
  log: Logger;
  activityDeps: Omit<ActivityDeps, 'store'>;
  /** Server-side cap on Creatio activities per second, per organization. */
  creatioActivitiesPerSecond: number;
  /** Server-side cap on OpenCX calls per second, per organization (OpenCX allows 100 per minute). */
  opencxActivitiesPerSecond: number;
  /** How often the pool looks for newly connected organizations. */
  orgRefreshMs: number;
  maxCachedWorkflows?: number;
  /** The payload codec (encryption) shared with the client: every worker reads and writes through it. */
  dataConverter?: DataConverter;
  /** How a worker is made (Worker.create); tests wrap it to make one fail. */
  createWorker?: (options: WorkerCreateOptions) => Promise<Worker>;
}

type WorkerCreateOptions = Parameters<typeof Worker.create>[0];

/** A worker that stopped with an error, as /readyz shows it. */
export interface WorkerFailure {
  worker: string;
  orgId: string | null;
  at: string;
  message: string;
}

/**
 * The bridge's workers: one for conversation workflows (and the local store reads), and one
 * activity worker per connected organization on that organization's Creatio task queue.
 */
export class BridgeWorkers {
  private readonly activities;
  private workflowWorker: Worker | undefined;
  private readonly orgWorkers = new Map<string, { worker: Worker; running: Promise<void> }[]>();
  private readonly runs: Promise<void>[] = [];
  private refreshTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  /** Most recent worker failures (an organization's workers are started again on the next refresh). */
  readonly failures: WorkerFailure[] = [];

  constructor(private readonly o: WorkerOptions) {
    this.activities = createActivities({ ...o.activityDeps, store: o.store });
  }

  get state(): string {
    return this.workflowWorker?.getState() ?? 'NOT_STARTED';
  }

  async start(): Promise<void> {
    this.workflowWorker = await this.create({
      connection: this.o.connection,
      namespace: this.o.namespace,
      taskQueue: this.o.taskQueue,
      workflowBundle: await workflowBundle(),
      // The store reads the workflow makes as local activities.
      activities: this.activities.settings,
      ...(this.o.dataConverter && { dataConverter: this.o.dataConverter }),
      maxCachedWorkflows: this.o.maxCachedWorkflows ?? 500,
      shutdownGraceTime: '10 seconds',
    });
    this.runs.push(this.track(this.workflowWorker, 'workflow worker', null));
    await this.refreshOrgs();
    this.refreshTimer = setInterval(() => {
      this.refreshOrgs().catch((err: unknown) =>
        // The workers already running go on; the next refresh tries again.
        this.o.log.warn(
          { reason: err instanceof Error ? err.message : String(err) },
          'could not refresh organization workers',
        ),
      );
    }, this.o.orgRefreshMs);
  }

  private refreshChain: Promise<void> = Promise.resolve();

  /**
   * Starts an activity worker for every organization that does not have one yet. Calls are
   * serialised: two overlapping refreshes would both see a new organization as missing.
   */
  refreshOrgs(): Promise<void> {
    const next = this.refreshChain.then(() => this.startMissingOrgWorkers());
    this.refreshChain = next.catch(() => undefined);
    return next;
  }

  private async startMissingOrgWorkers(): Promise<void> {
    if (this.stopping) return;
    for (const orgId of await this.o.store.listOrgIds()) {
      if (this.orgWorkers.has(orgId)) continue;
      const started: { worker: Worker; running: Promise<void> }[] = [];
      const { creatio, aiFields, opencx } = this.activities;
      for (const [taskQueue, perSecond, activities] of [
        [
          creatioTaskQueue(this.o.taskQueue, orgId),
          this.o.creatioActivitiesPerSecond,
          { ...creatio, ...aiFields },
        ],
        [opencxTaskQueue(this.o.taskQueue, orgId), this.o.opencxActivitiesPerSecond, opencx],
      ] as const) {
        const worker = await this.create({
          connection: this.o.connection,
          namespace: this.o.namespace,
          taskQueue,
          activities,
          ...(this.o.dataConverter && { dataConverter: this.o.dataConverter }),
          maxTaskQueueActivitiesPerSecond: perSecond,
          maxConcurrentActivityTaskExecutions: 20,
          shutdownGraceTime: '10 seconds',
        });
        started.push({ worker, running: this.track(worker, taskQueue, orgId) });
      }
      this.orgWorkers.set(orgId, started);
    }
  }

  private create(options: WorkerCreateOptions): Promise<Worker> {
    return (this.o.createWorker ?? ((opts) => Worker.create(opts)))(options);
  }

  /**
   * Runs a worker. One organization's worker failing never takes the process down: its workers
   * are stopped and started again by the next refresh, and the failure shows in /readyz. The
   * workflow worker failing makes the process not ready (the orchestrator restarts it).
   */
  private track(worker: Worker, name: string, orgId: string | null): Promise<void> {
    return worker.run().catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      this.failures.push({ worker: name, orgId, at: new Date().toISOString(), message });
      if (this.failures.length > 20) this.failures.shift();
      if (orgId === null) {
        this.o.log.fatal({ err, worker: name }, 'workflow worker stopped with an error: not ready');
        return;
      }
      this.o.log.error(
        { err, worker: name, orgId },
        'organization worker stopped with an error; restarting it',
      );
      const mine = this.orgWorkers.get(orgId);
      if (mine?.some((m) => m.worker === worker)) {
        this.orgWorkers.delete(orgId);
        for (const m of mine) if (m.worker.getState() === 'RUNNING') m.worker.shutdown();
      }
    });
  }

  /** Stops polling, lets running tasks finish (grace time), then resolves. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    const orgWorkers = [...this.orgWorkers.values()].flat();
    for (const w of [this.workflowWorker, ...orgWorkers.map((o) => o.worker)]) {
      if (w && w.getState() === 'RUNNING') w.shutdown();
    }
    await Promise.allSettled([...this.runs, ...orgWorkers.map((o) => o.running)]);
  }
}
