/**
 * WORKER_ACTIVATION_TIMEOUT reaches the workflow's context (docs/decisions/0031): with a duration, an
 * activation that computes longer fails its task with Node's timeout; with `off` (the default) it
 * runs to its end and the worker compiled no timeout at all. Both through the option the bridge's
 * workers are made with.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker, type WorkflowBundle } from '@temporalio/worker';
import { createLogger } from '../../src/logger';
import { activationTimeoutOption } from '../../src/temporal/isolate-timeout';
import { installRuntime } from '../../src/worker';
import { waitFor } from '../bridge-harness';
import { spin } from '../fixtures/busy-workflow';

describe('how long one workflow activation may run', () => {
  let native: NativeConnection;
  let connection: Connection;
  let client: Client;
  /** Steps of the loop that take about 1.8 s here. */
  let steps: number;
  let bundle: WorkflowBundle;
  before(async () => {
    installRuntime(createLogger(process.env.TEST_LOG_LEVEL ?? 'warn'));
    native = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    client = new Client({ connection });
    const n = 20_000_000;
    const t0 = performance.now();
    spin(n);
    steps = Math.round((n * 1_800) / (performance.now() - t0));
    bundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('../fixtures/busy-workflow'),
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
    });
  });
  after(async () => {
    await connection.close();
    await native.close();
  });

  /** Runs `fn` with a worker made with `setting`; answers its result and the timeout the SDK compiled. */
  async function withWorker<T>(
    setting: string,
    fn: (taskQueue: string) => Promise<T>,
  ): Promise<{ result: T; compiledMs: number | undefined }> {
    const taskQueue = `activation-timeout-${randomUUID().slice(0, 8)}`;
    const worker = await Worker.create({
      connection: native,
      taskQueue,
      workflowBundle: bundle,
      ...activationTimeoutOption(setting),
    });
    const compiledMs = worker.options.isolateExecutionTimeoutMs as number | undefined;
    return { result: await worker.runUntil(fn(taskQueue)), compiledMs };
  }

  it('a duration: an activation that computes longer fails its task with the timeout', async () => {
    const { compiledMs } = await withWorker('500ms', async (taskQueue) => {
      const handle = await client.workflow.start('busyWorkflow', {
        taskQueue,
        workflowId: `busy-${randomUUID()}`,
        args: [steps],
      });
      try {
        await waitFor('the workflow task failed by the timeout', async () => {
          const { events } = await handle.fetchHistory();
          return (events ?? []).some((e) =>
            /timed out after 500ms/.test(e.workflowTaskFailedEventAttributes?.failure?.message ?? ''),
          );
        });
      } finally {
        await handle.terminate('test over');
      }
    });
    assert.equal(compiledMs, 500);
  });

  it('off: the same activation runs to its end, with no timeout at all', async () => {
    const { result, compiledMs } = await withWorker('off', (taskQueue) =>
      client.workflow.execute('busyWorkflow', {
        taskQueue,
        workflowId: `busy-${randomUUID()}`,
        args: [steps],
        workflowTaskTimeout: '60s',
      }),
    );
    assert.equal(result, spin(steps));
    // Not the SDK's 5 s either: nothing for Node to start a watchdog for.
    assert.equal(compiledMs, undefined);
  });
});
