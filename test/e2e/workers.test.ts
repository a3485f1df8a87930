import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Worker } from '@temporalio/worker';
import { Bridge, ev, waitFor } from '../bridge-harness';

describe('the Creatio activity worker failing', () => {
  let failures = 0;
  const bridge = new Bridge({
    // The first Creatio activity worker stops with a fatal error soon after it starts.
    createWorker: async (options) => {
      const w = await Worker.create(options);
      if (failures === 0 && options.taskQueue.endsWith(':creatio')) {
        failures++;
        const run = w.run.bind(w);
        w.run = () =>
          new Promise<void>((_, reject) => {
            run().catch(() => undefined);
            setTimeout(() => {
              w.shutdown();
              reject(new Error('injected fatal worker error'));
            }, 300);
          });
      }
      return w;
    },
  });
  before(() => bridge.start());
  after(() => bridge.close());

  it('never takes the process down: it is recorded, started again, and every organization is served', async () => {
    await waitFor('the failure recorded', () => bridge.workers!.failures[0]);
    assert.match(bridge.workers!.failures[0]!.message, /injected fatal worker error/);
    assert.match(bridge.workers!.failures[0]!.worker, /:creatio$/);
    assert.equal(bridge.workers!.state, 'RUNNING');

    for (const orgId of [await bridge.connectOrg(), await bridge.connectOrg()]) {
      const s = `w-${randomUUID().slice(0, 10)}`;
      await bridge.send(orgId, 'conversation.started', ev.started(s));
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'still served'));
      const caseId = await bridge.caseOf(orgId, s);
      await waitFor('the message logged', () =>
        bridge.activitiesOf(caseId).some((a) => String(a.Title).includes('still served')),
      );
    }
    // Pollers are fixed: three workers, whatever the number of organizations.
    assert.equal(bridge.workers!.describe().pollers, 18);
  });
});
