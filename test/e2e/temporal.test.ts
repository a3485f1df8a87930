import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import {
  bundleWorkflowCode,
  NativeConnection,
  Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { createLogger } from '../../src/logger';
import { SEARCH_ATTRIBUTE_KEYS } from '../../src/temporal/search-attributes';
import { startTemporal } from '../../src/temporal/launcher';
import { readinessWorkflow, release } from '../fixtures/readiness-workflow';

const log = createLogger('warn');

describe('Temporal dev server through the launcher', () => {
  let bundle: WorkflowBundleWithSourceMap;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bridge-temporal-'));
    bundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('../fixtures/readiness-workflow'),
      logger: {
        ...console,
        log: () => undefined,
        info: () => undefined,
        debug: () => undefined,
        trace: () => undefined,
        warn: () => undefined,
      },
    });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function runWorker<T>(address: string, taskQueue: string, fn: () => Promise<T>): Promise<T> {
    const connection = await NativeConnection.connect({ address });
    try {
      const worker = await Worker.create({ connection, taskQueue, workflowBundle: bundle });
      return await worker.runUntil(fn());
    } finally {
      await connection.close();
    }
  }

  it('runs a workflow on the shared test server (readiness check)', async () => {
    const address = process.env.TEMPORAL_ADDRESS!;
    assert.ok(address, 'npm test provides TEMPORAL_ADDRESS');
    const connection = await Connection.connect({ address });
    const client = new Client({ connection });
    const taskQueue = `readiness-${Date.now()}`;
    const result = await runWorker(address, taskQueue, async () => {
      const handle = await client.workflow.start(readinessWorkflow, {
        taskQueue,
        workflowId: `readiness-${Date.now()}`,
      });
      await handle.signal(release, 'now');
      return handle.result();
    });
    assert.equal(result, 'released:now');
    await connection.close();
  });

  it('keeps workflows and search attributes across a dev-server restart', async () => {
    const dbFile = path.join(dir, 'temporal.sqlite');
    const workflowId = `survives-restart-${Date.now()}`;
    const taskQueue = 'restart-test';

    let server = await startTemporal({ dbFile, log });
    let connection = await Connection.connect({ address: server.address });
    let client = new Client({ connection });
    await client.workflow.start(readinessWorkflow, {
      taskQueue,
      workflowId,
      typedSearchAttributes: [{ key: SEARCH_ATTRIBUTE_KEYS.OrgId, value: 'org-restart' }],
    });
    await connection.close();
    await server.stop();

    server = await startTemporal({ dbFile, log });
    try {
      connection = await Connection.connect({ address: server.address });
      client = new Client({ connection });
      const handle = client.workflow.getHandle(workflowId);
      const described = await handle.describe();
      assert.equal(described.status.name, 'RUNNING');
      assert.equal(described.typedSearchAttributes.get(SEARCH_ATTRIBUTE_KEYS.OrgId), 'org-restart');
      // The custom search attributes are registered and queryable after the restart.
      let found = 0;
      for (let i = 0; i < 50 && found === 0; i++) {
        found = (await client.workflow.count(`OrgId = 'org-restart'`)).count;
        if (found === 0) await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(found, 1);
      const result = await runWorker(server.address, taskQueue, async () => {
        await handle.signal(release, 'after-restart');
        return handle.result();
      });
      assert.equal(result, 'released:after-restart');
      await connection.close();
    } finally {
      await server.stop();
    }
  });
});
