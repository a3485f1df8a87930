import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Worker } from '@temporalio/worker';
import { Bridge, ev, waitFor } from './bridge-harness';

describe('one organization worker failing (issue 9.7)', () => {
  let victim = '';
  let failures = 0;
  const bridge = new Bridge({
    // The first Creatio worker of the victim organization stops with a fatal error soon after start.
    createWorker: async (options) => {
      const w = await Worker.create(options);
      if (victim && failures === 0 && options.taskQueue.endsWith(`:creatio:${victim}`)) {
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

  it('never takes the process down: it is recorded, its workers start again, and its conversations and the others go on', async () => {
    const other = await bridge.connectOrg();
    victim = `org-${randomUUID().slice(0, 8)}`;
    // connectOrg makes its own id; connect the victim under the chosen one.
    const res = await bridge.api.request('PUT', `/v1/orgs/${victim}/integrations/creatio`, {
      ...(await import('./helpers')).validSettings(bridge.emu, {
        opencx: {
          apiBaseUrl: bridge.opencx.url,
          apiKey: 'ocx_test_key',
          webhookSecret: (await import('./bridge-harness')).WEBHOOK_SECRET,
        },
      }),
    });
    assert.equal(res.status, 201, res.text);
    await bridge.workers!.refreshOrgs();
    await waitFor('the failure recorded', () => bridge.workers!.failures.find((f) => f.orgId === victim));
    assert.match(bridge.workers!.failures[0]!.message, /injected fatal worker error/);
    assert.equal(bridge.workers!.state, 'RUNNING');

    await bridge.workers!.refreshOrgs();
    for (const orgId of [victim, other]) {
      const s = `w-${randomUUID().slice(0, 10)}`;
      await bridge.send(orgId, 'conversation.started', ev.started(s));
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'still served'));
      const caseId = await bridge.caseOf(orgId, s);
      await waitFor('the message logged', () =>
        bridge.activitiesOf(caseId).some((a) => String(a.Title).includes('still served')),
      );
    }
  });
});
