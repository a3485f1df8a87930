/**
 * Production topology: the API in the test process, the workers in processes of their own
 * (RUN_API=false), killed with SIGKILL under load.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { temporal } from '@temporalio/proto';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { Bridge, ev, waitFor } from '../bridge-harness';
import { killWorkerProcess, startWorkerProcess } from '../fixtures/worker-processes';

const sid = () => `t-${randomUUID().slice(0, 12)}`;

function messagesLogged(bridge: Bridge, prefix: string): number {
  return bridge.emu.rows('Activity').filter((a) => String(a.Title).includes(prefix)).length;
}

describe('worker processes under load (shipped limits)', () => {
  const bridge = new Bridge({ inProcessWorkers: false });
  const children: ChildProcess[] = [];
  before(() => bridge.start());
  after(async () => {
    await Promise.all(children.map((c) => killWorkerProcess(c)));
    await bridge.close();
  });

  it('a burst of 200 messages into one conversation, its worker killed mid-batch: each once, in order', async () => {
    const orgId = await bridge.connectOrg();
    children.push(await startWorkerProcess(bridge));
    const s = sid();
    // Sent concurrently, the way a burst arrives: the order is the order Temporal took them in.
    for (let n = 0; n < 200; n++) {
      const res = await bridge.send(
        orgId,
        'conversation.contact_response',
        ev.message(s, `m${n}`, `${s} #${n}`),
      );
      assert.equal(res.status, 202);
    }
    await waitFor('some of the burst logged', () => messagesLogged(bridge, s) >= 20, 60_000, 5);
    const loggedAtKill = messagesLogged(bridge, s);
    await killWorkerProcess(children[0]!);
    assert.ok(loggedAtKill < 200, `killed mid-burst (${loggedAtKill} of 200 written)`);
    children.push(await startWorkerProcess(bridge));
    await bridge.expectCustomerMessages(orgId, s, 200);
  });

  it('two worker processes share the queues; killing one mid-load loses and duplicates nothing', async () => {
    await Promise.all(children.map((c) => killWorkerProcess(c)));
    children.length = 0;
    children.push(await startWorkerProcess(bridge), await startWorkerProcess(bridge));
    const orgs = [await bridge.connectOrg(), await bridge.connectOrg()];
    // Both processes poll every queue (two poller identities on the Creatio queue).
    await waitFor('both processes polling the Creatio queue', async () => {
      const d = await bridge.client.workflowService.describeTaskQueue({
        namespace: 'default',
        taskQueue: { name: `${bridge.taskQueue}:creatio` },
        taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
      });
      const ids = d.pollers.map((p) => p.identity ?? '');
      return children.every((c) => ids.some((id) => id.startsWith(`${c.pid}@`)));
    });

    const conversations = Array.from({ length: 10 }, (_, i) => ({ orgId: orgs[i % 2]!, s: sid() }));
    const perConversation = 30;
    let killed = false;
    await Promise.all(
      conversations.map(async ({ orgId, s }, i) => {
        for (let n = 0; n < perConversation; n++) {
          const res = await bridge.send(
            orgId,
            'conversation.contact_response',
            ev.message(s, `m${n}`, `${s} #${n}`),
          );
          assert.equal(res.status, 202);
          if (i === 0 && n === 10 && !killed) {
            killed = true;
            await killWorkerProcess(children[0]!);
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      }),
    );
    assert.ok(killed);
    for (const { orgId, s } of conversations) await bridge.expectCustomerMessages(orgId, s, perConversation);
  });

  it('six quick agent replies, then a customer message: each reply once, in order, and the message logged at once', async () => {
    await Promise.all(children.map((c) => killWorkerProcess(c)));
    children.length = 0;
    children.push(await startWorkerProcess(bridge), await startWorkerProcess(bridge));
    const orgId = await bridge.connectOrg({ resolvedStatusId: IDS.caseStatus.Resolved });
    const url = await bridge.creatioWebhookUrl(orgId);
    bridge.emu.processes.push({ kind: 'agent_reply', url, retries: 2, activityTypes: ['Email'] });
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'c0', `${s} #0`));
    const caseId = await bridge.caseOf(orgId, s, 60_000);
    const replies = Array.from({ length: 6 }, (_, i) => `reply ${i + 1}`);
    for (const r of replies) bridge.agentReply(caseId, r);
    const t0 = Date.now();
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'c1', `${s} #1`));
    await bridge.expectCustomerMessages(orgId, s, 2);
    const messageMs = Date.now() - t0;
    const texts = () => bridge.sentTexts(s);
    await waitFor('six replies at OpenCX', () => texts().length >= 6, 120_000);
    const repliesMs = Date.now() - t0;
    console.log(
      `# two worker processes, shipped pacing: customer message logged ${messageMs} ms after it arrived; six replies at OpenCX within ${repliesMs} ms`,
    );
    assert.deepEqual(texts(), replies, 'each once, in order');
    // Not a speed target: the message must not wait behind the replies (it waited over 60 s before).
    assert.ok(messageMs < 30_000, `the message waited ${messageMs} ms behind the replies`);
  });
});
