/**
 * Promises the conversation workflow creates: per new conversation (its first message) and per
 * later message. Each one costs the worker's workflow thread a stack trace (the SDK's promise
 * hook, for the stack-trace query), so this count is a cost of the hot path
 * (docs/decisions/0028-load-and-the-floor.md); with them, the history events each conversation has
 * after it. Activities are faked (test/workflow/fake-peers.ts);
 * its own Temporal dev server.
 *
 * Then the CPU of replaying the new conversations' histories (their first message), with the
 * workflow bundle as shipped and with Node's default stack-trace limit in the sandbox, in
 * alternating rounds (docs/decisions/0035-workflow-stack-trace-limit.md). Written to
 * bench/results/workflow-promises-<date>.json.
 *
 *   npx tsx bench/workflow-promises.ts [--stacks] [--rounds=9]   # --stacks: where a new conversation's come from
 */
import v8 from 'node:v8';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { HistoryAndWorkflowId } from '@temporalio/common';
import { Worker, bundleWorkflowCode } from '@temporalio/worker';
import { withMode } from '../src/api/opencx-ingress';
import { createLogger } from '../src/logger';
import { startTemporal } from '../src/temporal/launcher';
import { installRuntime, workflowBundle, workflowBundleOptions } from '../src/worker';
import { creatioTaskQueue, opencxTaskQueue } from '../src/workflows/task-queues';
import { WORKFLOW_STACK_TRACE_LIMIT } from '../src/workflows/stack-trace-limit';
import { waitFor } from '../test/bridge-harness';
import { FakePeers, message, send } from '../test/workflow/fake-peers';
import { writeResult } from './results';

const N = 20;
const stacksWanted = process.argv.includes('--stacks');
const ROUNDS = Number(process.argv.find((a) => a.startsWith('--rounds='))?.slice(9) ?? 9);
/** Each round replays every history this many times. */
const REPEAT = 5;
let counting = false;
let count = 0;
const stacks = new Map<string, number>();

/** The workflow's promises only: those made in a workflow's context (as the SDK's own hook tells them). */
v8.promiseHooks.createHook({
  init(promise: Promise<unknown>) {
    if (!counting) return;
    const fn = promise.constructor.constructor as (src: string) => () => unknown;
    if (!fn('return globalThis.__TEMPORAL_ACTIVATOR__')()) return;
    count++;
    if (!stacksWanted) return;
    const where = (new Error().stack ?? '')
      .split('\n')
      .slice(2)
      .filter((l) => l.includes('workflow-bundle'))
      .slice(0, 3)
      .map((l) => l.trim().replace(/ \(.*\)$/, ''))
      .join(' < ');
    stacks.set(where, (stacks.get(where) ?? 0) + 1);
  },
});

async function measure(what: string, fn: () => Promise<number>): Promise<number> {
  count = 0;
  stacks.clear();
  counting = true;
  const events = await fn();
  counting = false;
  console.log(`${what}: ${count / N} promises; history events per conversation after it: ${events}`);
  return count / N;
}

async function main(): Promise<void> {
  const log = createLogger('error');
  installRuntime(log);
  const temporal = await startTemporal({ log, cliPath: process.env.TEMPORAL_CLI_PATH });
  const env = await TestWorkflowEnvironment.createFromExistingServer({ address: temporal.address });
  const peers = new FakePeers();
  const taskQueue = `promises-${Date.now()}`;
  const common = { connection: env.nativeConnection, namespace: 'default' };
  // debugMode: workflows run on this thread, where the hook above sees their promises.
  const workers = [
    await Worker.create({
      ...common,
      taskQueue,
      debugMode: true,
      workflowBundle: await workflowBundle(),
      activities: { ...peers.store(), ...peers.attention(), ...peers.creatio() },
    }),
    await Worker.create({
      ...common,
      taskQueue: creatioTaskQueue(taskQueue),
      activities: { ...peers.creatio(), ...peers.ai() },
    }),
    await Worker.create({ ...common, taskQueue: opencxTaskQueue(taskQueue), activities: peers.opencx() }),
  ];
  const runs = workers.map((w) => w.run());
  const promises: Record<string, number> = {};
  const firstMessages: HistoryAndWorkflowId[] = [];
  try {
    const written = (n: number) => () =>
      Array.from({ length: N }, (_, i) => peers.texts(`case-p${i}`).length).every((k) => k === n);
    const round = (n: number, text: string) => async () => {
      for (let i = 0; i < N; i++)
        await send(env, taskQueue, `p${i}`, [withMode(message(`m${n}`, text), false)]);
      await waitFor(`${N} conversations with ${n} message(s)`, written(n));
      // Their workflow tasks complete after the write: every conversation is idle again.
      await waitFor('idle', async () => {
        const open = await Promise.all(
          Array.from({ length: N }, (_, i) =>
            env.client.workflow
              .getHandle(`conversation:org-wf:p${i}`)
              .describe()
              .then((d) => d.raw.pendingWorkflowTask === undefined || d.raw.pendingWorkflowTask === null),
          ),
        );
        return open.every(Boolean);
      });
      const lengths = await Promise.all(
        Array.from({ length: N }, (_, i) =>
          env.client.workflow
            .getHandle(`conversation:org-wf:p${i}`)
            .describe()
            .then((d) => d.historyLength),
        ),
      );
      return lengths.reduce((a, b) => a + b, 0) / N;
    };
    promises.newConversation = await measure('a new conversation (its first message)', round(1, 'hello'));
    if (stacksWanted) {
      for (const [k, v] of [...stacks].sort((a, b) => b[1] - a[1])) console.log(`  ${v / N} ${k}`);
    }
    for (let i = 0; i < N; i++) {
      const handle = env.client.workflow.getHandle(`conversation:org-wf:p${i}`);
      firstMessages.push({ workflowId: handle.workflowId, history: await handle.fetchHistory() });
    }
    promises.laterMessage = await measure('a later message', round(2, 'again'));
  } finally {
    for (const w of workers) w.shutdown();
    await Promise.all(runs);
    await env.teardown();
    await temporal.stop();
  }
  const replay = await replayCpu(firstMessages);
  const file = await writeResult('workflow-promises', { promises, replayCpuMsPerNewConversation: replay });
  console.log(`written to ${file}`);
}

/**
 * CPU per replayed new conversation (this process: the replay runs on it), median [min-max] over
 * the rounds, for the shipped bundle and for one with Node's default stack-trace limit.
 */
async function replayCpu(
  histories: HistoryAndWorkflowId[],
): Promise<Record<string, { median: number; min: number; max: number }>> {
  const nodeDefault = await bundleWorkflowCode({ ...workflowBundleOptions, preloadModules: [] });
  const variants = {
    [`shipped (${WORKFLOW_STACK_TRACE_LIMIT} frames)`]: await workflowBundle(),
    "Node's default (10 frames)": nodeDefault,
  };
  const all = Array.from({ length: REPEAT }, () => histories).flat();
  const samples = new Map<string, number[]>();
  for (let r = 0; r < ROUNDS + 1; r++) {
    for (const [name, bundle] of Object.entries(variants)) {
      const before = process.cpuUsage();
      let n = 0;
      for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, all)) {
        if (result.error) throw result.error;
        n++;
      }
      const used = process.cpuUsage(before);
      // The first round warms both bundles up and is not counted.
      if (r > 0) samples.set(name, [...(samples.get(name) ?? []), (used.user + used.system) / 1000 / n]);
    }
  }
  const out: Record<string, { median: number; min: number; max: number }> = {};
  console.log(`replaying a new conversation's history, ms of CPU, median [min-max] over ${ROUNDS} rounds:`);
  for (const [name, ms] of samples) {
    ms.sort((a, b) => a - b);
    out[name] = { median: ms[Math.floor(ms.length / 2)]!, min: ms[0]!, max: ms.at(-1)! };
    const f = (x: number) => x.toFixed(2);
    console.log(`  ${name}: ${f(out[name].median)} [${f(out[name].min)}-${f(out[name].max)}]`);
  }
  return out;
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
