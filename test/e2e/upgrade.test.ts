/**
 * An upgrade as it happens in production: the previous release's own worker and API
 * (`src/main.ts` of its commit, from a git worktree with its own `npm ci`, cached under
 * .cache/releases/) leave conversations open, handed off, resolved, closed by Creatio, parked and
 * continued as new; it is stopped; today's `src/main.ts` starts on the same Temporal server, the
 * same store and the same task queue, and finishes every one of them. Nothing is lost and nothing
 * is sent twice: every message is in Creatio once, every agent reply reached OpenCX once.
 * UPGRADE_FROM picks another release (default af7786c, the last release before the one-patch flow of
 * decision 0030; f646e51 and the others replay in test/unit/replay/releases.test.ts).
 *
 * A release before the workflow restructure (1ba2a26) cannot be replaced that way: today's worker
 * cannot replay its runs, and their activities go to per-organization queues today's workers do
 * not poll. Its upgrade is a drain (decision 0025): its workers keep running on its task queue
 * (RUN_API=false), today's API and worker start on a new TEMPORAL_TASK_QUEUE, today's API hands
 * the events of the old conversations to their running workflows (a signal addresses the workflow
 * id, not a queue), new conversations start on the new queue, and the old workers are stopped
 * once none of their runs is left. For such a release the second `describe` runs instead.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { createLogger } from '../../src/logger';
import { freePort, startTemporal } from '../../src/temporal/launcher';
import {
  agentEmail,
  completed,
  pollersOf,
  runningOn,
  runScenarios,
  sendMessage,
  taskQueueOf,
  type ScenarioResult,
} from '../replay/release-scenarios';
import {
  BridgeHttp,
  currentCode,
  ev,
  freshSchema,
  prepareRelease,
  PROJECT_ROOT,
  startReleaseEmulators,
  startReleaseProcess,
  waitFor,
  type ReleaseEmulators,
} from '../replay/releases-lib';
import { TEST_SCHEMA_PREFIX } from '../helpers';

/** The previous landed release, by its full id (a shallow clone can fetch it). */
const FROM = process.env.UPGRADE_FROM ?? 'af7786c68acbd374350bec056d5c3dcaf41fe7cd';

/** The workflow restructure: runs started by an earlier release finish only on that release's workers. */
const RESTRUCTURE = '1ba2a26c2187d31836e7552087ae9367465e1997';
/** Whether FROM is older than the restructure (then the upgrade is a drain on a new task queue). */
const DRAIN = ((): boolean => {
  const isAncestor = () => {
    const status = spawnSync('git', ['merge-base', '--is-ancestor', RESTRUCTURE, FROM], {
      cwd: PROJECT_ROOT,
    }).status;
    return status === 0 ? true : status === 1 ? false : undefined;
  };
  // A shallow clone may lack either commit: fetch them, then ask again.
  let answer = isAncestor();
  if (answer === undefined) {
    spawnSync('git', ['fetch', '--quiet', 'origin', RESTRUCTURE, FROM], { cwd: PROJECT_ROOT });
    answer = isAncestor();
  }
  if (answer === undefined) throw new Error(`git cannot tell whether ${FROM} is older than ${RESTRUCTURE}`);
  return !answer;
})();

/** Each text of the conversation's messages, as often as Creatio has it on the case. */
function inCreatio(
  emus: ReleaseEmulators,
  r: { caseId: string | null },
  texts: string[],
): Record<string, number> {
  const titles = emus.creatio
    .rows('Activity')
    .filter((a) => String(a.CaseId).toLowerCase() === String(r.caseId).toLowerCase())
    .map((a) => String(a.Title));
  return Object.fromEntries(texts.map((t) => [t, titles.filter((x) => x.endsWith(`: ${t}`)).length]));
}

/** How today's API finishes a conversation a release left (both upgrade modes). */
function finishing(api: BridgeHttp, client: Client, emus: ReleaseEmulators) {
  const close = async (r: { orgId: string; sessionId: string; workflowId: string }) => {
    await api.send(r.orgId, 'conversation.closed', ev.closed(r.sessionId));
    await waitFor(`${r.sessionId} finished`, () => completed(client, r.workflowId), 120_000);
  };
  const loggedAll = (r: { orgId: string; sessionId: string; texts: string[] }) =>
    waitFor(
      `${r.texts.length} messages of ${r.sessionId} logged`,
      async () => Number((await api.session(r.orgId, r.sessionId))?.messages?.logged) >= r.texts.length,
      120_000,
    );
  return {
    close,
    loggedAll,
    /** One more message, then closed. */
    oneMoreAndClose: async (r: ScenarioResult): Promise<void> => {
      r.texts.push(await sendMessage(api, r.orgId, r.sessionId, r.texts.length));
      await loggedAll(r);
      await close(r);
    },
    /** An agent answers in Creatio; its process calls today's API; the reply reaches OpenCX. Then closed. */
    answerAndClose: async (r: ScenarioResult, when: string): Promise<void> => {
      const hook = await api.creatioWebhookUrl(r.orgId);
      emus.creatio.processes!.push({ kind: 'agent_reply', url: hook, retries: 2, activityTypes: ['Email'] });
      agentEmail(emus, r.caseId!, { title: `Re: ${when}`, body: `<p>Answered ${when}.</p>` });
      await waitFor('the reply at OpenCX', () => emus.opencx!.messagesFor(r.sessionId).length > 0, 120_000);
      await close(r);
      emus.creatio.processes!.length = 0;
    },
  };
}

describe(
  `upgrade from release ${FROM.slice(0, 7)} to the current code`,
  { timeout: 20 * 60_000, skip: DRAIN },
  () => {
    it('every conversation the release left is finished by the current code: nothing lost, nothing sent twice', async () => {
      const say = (m: string) => console.log(`  upgrade: ${m}`);
      const rel = await prepareRelease(
        FROM,
        say,
        process.env.RELEASE_WORKTREES ?? path.join(PROJECT_ROOT, '.cache', 'releases'),
      );
      const current = await currentCode();
      // Stopped in reverse order, whatever fails on the way.
      const cleanup: (() => Promise<unknown>)[] = [];
      try {
        const server = await startTemporal({
          log: createLogger('error'),
          // Continue-as-new after a few dozen messages, as a long conversation does after thousands.
          extraArgs: ['--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=150'],
        });
        cleanup.push(() => server.stop());
        const connection = await Connection.connect({ address: server.address });
        cleanup.push(() => connection.close());
        const client = new Client({ connection });
        const databaseUrl = await freshSchema(
          process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
          `${TEST_SCHEMA_PREFIX}upgrade`,
        );
        const key = randomBytes(32);
        // One port for both: the Creatio processes keep calling the webhook URL they were given.
        const port = await freePort();
        const emus = await startReleaseEmulators(rel);
        cleanup.push(() => emus.close());
        const env = { temporalAddress: server.address, databaseUrl, key, port };
        let proc = await startReleaseProcess(rel, {
          ...env,
          logFile: path.join(os.tmpdir(), `upgrade-release-${rel.short}.log`),
        });
        cleanup.push(() => proc.stop());
        say(`release ${rel.short} running`);
        const left = await runScenarios({
          api: new BridgeHttp(proc.url, proc.adminToken),
          emus,
          client,
          prefix: 'up',
          continueAsNewMessages: 300,
          log: say,
        });
        assert.deepEqual(
          left.map((r) => r.reached),
          ['open', 'handed-off', 'resolved', 'closed-by-creatio', 'parked', 'continued-as-new'],
          'the release reached every state',
        );
        const repliesBefore = Object.fromEntries(
          left.map((r) => [r.sessionId, emus.opencx!.messagesFor(r.sessionId).length]),
        );
        await proc.stop();
        say(`release ${rel.short} stopped; starting the current code`);

        proc = await startReleaseProcess(current, {
          ...env,
          logFile: path.join(os.tmpdir(), 'upgrade-current.log'),
        });
        const api = new BridgeHttp(proc.url, proc.adminToken);
        const by = (reached: ScenarioResult['reached']) => left.find((r) => r.reached === reached)!;
        const { close, loggedAll, oneMoreAndClose, answerAndClose } = finishing(api, client, emus);
        const replies: Record<string, number> = { ...repliesBefore };

        // Open: one more message, then closed.
        await oneMoreAndClose(by('open'));
        // Handed off: an agent answers from Creatio (its process calls the current API), then closed.
        await answerAndClose(by('handed-off'), 'after the upgrade');
        replies[by('handed-off').sessionId] = 1;
        // Parked: an operator resumes it on the current API, the refused message is written, then closed.
        {
          const r = by('parked');
          const res = await api.request('POST', `/v1/orgs/${r.orgId}/sessions/${r.sessionId}/resume`);
          assert.equal(res.status, 200, `resume answered ${res.status}: ${JSON.stringify(res.body)}`);
          await loggedAll(r);
          await close(r);
        }
        // Continued as new: one more message, then closed.
        await oneMoreAndClose(by('continued-as-new'));

        // Every conversation finished; every message in Creatio once; every reply at OpenCX once.
        const rows = [];
        for (const r of left) {
          assert.ok(await completed(client, r.workflowId), `${r.sessionId} finished`);
          const counts = inCreatio(emus, r, r.texts);
          const sentToOpenCX = emus.opencx!.messagesFor(r.sessionId).length;
          rows.push({
            conversation: r.sessionId,
            leftIn: r.reached,
            messages: r.texts.length,
            inCreatioOnce: Object.values(counts).filter((c) => c === 1).length,
            repliesAtOpenCX: sentToOpenCX,
          });
          for (const [text, c] of Object.entries(counts))
            assert.equal(c, 1, `${text}: ${c} times in Creatio`);
          assert.equal(sentToOpenCX, replies[r.sessionId], `${r.sessionId}: agent replies at OpenCX`);
        }
        console.table(rows);
      } finally {
        for (const stop of cleanup.reverse()) await stop().catch(() => {});
      }
    });
  },
);

/** The release's task queue (its default) and the one today's release starts on beside it. */
const OLD_QUEUE = 'opencx-creatio-bridge';
const NEW_QUEUE = 'opencx-creatio-bridge-2';

describe(
  `drain of release ${FROM.slice(0, 7)} (before the restructure): today's release on a new task queue beside its workers`,
  { timeout: 20 * 60_000, skip: !DRAIN },
  () => {
    it("the release's workers finish its conversations, fed by today's API; new ones run on today's workers", async () => {
      const say = (m: string) => console.log(`  drain: ${m}`);
      const rel = await prepareRelease(
        FROM,
        say,
        process.env.RELEASE_WORKTREES ?? path.join(PROJECT_ROOT, '.cache', 'releases'),
      );
      const current = await currentCode();
      const cleanup: (() => Promise<unknown>)[] = [];
      try {
        const server = await startTemporal({
          log: createLogger('error'),
          extraArgs: ['--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=150'],
        });
        cleanup.push(() => server.stop());
        const connection = await Connection.connect({ address: server.address });
        cleanup.push(() => connection.close());
        const client = new Client({ connection });
        const databaseUrl = await freshSchema(
          process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
          `${TEST_SCHEMA_PREFIX}drain`,
        );
        const key = randomBytes(32);
        // The public URL stays: today's API takes the port of the release's API once that stops
        // (the Creatio processes keep calling the webhook URL they were given).
        const port = await freePort();
        const emus = await startReleaseEmulators(rel);
        cleanup.push(() => emus.close());
        const env = { temporalAddress: server.address, databaseUrl, key };
        const releaseApi = await startReleaseProcess(rel, {
          ...env,
          port,
          logFile: path.join(os.tmpdir(), `drain-release-${rel.short}.log`),
        });
        cleanup.push(() => releaseApi.stop());
        say(`release ${rel.short} running (API and worker, task queue ${OLD_QUEUE})`);
        const left = await runScenarios({
          api: new BridgeHttp(releaseApi.url, releaseApi.adminToken),
          emus,
          client,
          prefix: 'dr',
          continueAsNewMessages: 300,
          log: say,
        });
        assert.deepEqual(
          left.map((r) => r.reached),
          ['open', 'handed-off', 'resolved', 'closed-by-creatio', 'parked', 'continued-as-new'],
          'the release reached every state',
        );
        const replies: Record<string, number> = Object.fromEntries(
          left.map((r) => [r.sessionId, emus.opencx!.messagesFor(r.sessionId).length]),
        );

        // Step 1: the release's workers alone (RUN_API=false), on its own task queue; then its API
        // (with the worker in the same process) stops.
        const oldWorkerLog = path.join(os.tmpdir(), `drain-release-${rel.short}-worker.log`);
        await rm(oldWorkerLog, { force: true });
        const startOldWorkers = async () => {
          // Ready once a poller not seen before (the process runs the worker in a child of tsx).
          const seen = new Set(await pollersOf(client, OLD_QUEUE));
          return startReleaseProcess(rel, {
            ...env,
            port: await freePort(),
            logFile: oldWorkerLog,
            env: { RUN_API: 'false', TEMPORAL_TASK_QUEUE: OLD_QUEUE },
            ready: async () => (await pollersOf(client, OLD_QUEUE)).some((id) => !seen.has(id)),
          });
        };
        let oldWorkers = await startOldWorkers();
        cleanup.push(() => oldWorkers.stop());
        await releaseApi.stop();
        say(`release ${rel.short}: its API stopped, its workers run alone`);

        // Step 2: today's API and worker, on the same store, Temporal and public URL, a new queue.
        const today = await startReleaseProcess(current, {
          ...env,
          port,
          logFile: path.join(os.tmpdir(), 'drain-current.log'),
          env: { TEMPORAL_TASK_QUEUE: NEW_QUEUE },
        });
        cleanup.push(() => today.stop());
        say(`today's release running on ${NEW_QUEUE}; every request below goes to today's API`);

        // Today's store migrations ran on the release's schema. The release's workers restarted on
        // it (as a pod restarts during a drain of weeks) run their own migrations and serve on.
        await oldWorkers.stop();
        oldWorkers = await startOldWorkers();
        say(`release ${rel.short}'s workers restarted after today's migrations`);
        // The release's API could not come back (rollback): its Test & Save writes no opencx_org_id,
        // which today's migration 11 made NOT NULL. Said here; the procedure never runs that API again.
        {
          const relStore = (await import(path.join(rel.dir, 'src', 'store', 'index.ts'))) as {
            openStore(o: { databaseUrl: string; dataDir: undefined; key: Buffer; log: unknown }): Promise<{
              getOrg(orgId: string): Promise<{ settings: unknown } | undefined>;
              saveOrg(orgId: string, settings: unknown): Promise<unknown>;
              close(): Promise<void>;
            }>;
          };
          const store = await relStore.openStore({
            databaseUrl,
            dataDir: undefined,
            key,
            log: createLogger('error'),
          });
          try {
            const org = await store.getOrg(left[0]!.orgId);
            assert.ok(org, `the release's store reads ${left[0]!.orgId} after today's migrations`);
            const saved = await store.saveOrg(left[0]!.orgId, org.settings).then(
              () => 'saved',
              (err: unknown) => `refused: ${err instanceof Error ? err.message : String(err)}`,
            );
            say(`the release's own saveOrg (its Test & Save) after today's migrations: ${saved}`);
          } finally {
            await store.close();
          }
        }
        const api = new BridgeHttp(today.url, today.adminToken);
        const by = (reached: ScenarioResult['reached']) => left.find((r) => r.reached === reached)!;
        const stillOpen = left.filter((r) => !r.finished);
        // Positive control of the drain's end below: the release's open runs are counted on its queue.
        await waitFor(
          `${stillOpen.length} runs counted on ${OLD_QUEUE}`,
          async () => (await runningOn(client, OLD_QUEUE)) === stillOpen.length,
          30_000,
        );
        const { close, loggedAll, oneMoreAndClose, answerAndClose } = finishing(api, client, emus);

        // A new conversation through today's API: started on today's queue, served by today's worker.
        const fresh: { orgId: string; sessionId: string; workflowId: string; texts: string[] }[] = [];
        const newConversation = async (orgId: string, sessionId: string) => {
          await api.send(orgId, 'conversation.started', ev.started(sessionId));
          const texts = [
            await sendMessage(api, orgId, sessionId, 0),
            await sendMessage(api, orgId, sessionId, 1, 'ai'),
          ];
          const s = await waitFor(`state of ${sessionId}`, () => api.session(orgId, sessionId));
          const r = { orgId, sessionId, workflowId: String(s.workflowId), texts };
          await loggedAll(r);
          assert.equal(
            await taskQueueOf(client, r.workflowId),
            NEW_QUEUE,
            `${sessionId} runs on the new queue`,
          );
          await close(r);
          fresh.push(r);
          replies[sessionId] = 0;
        };
        // While the release's workers still serve its runs: a new conversation of an organization
        // the release connected.
        await newConversation(by('open').orgId, 'dr-open-2');

        // Open: one more message through today's API, then closed.
        await oneMoreAndClose(by('open'));
        // Handed off: an agent answers in Creatio; its process calls today's API, whose inbox
        // signals the release's run; the release's worker sends the reply. Then closed.
        await answerAndClose(by('handed-off'), 'during the drain');
        replies[by('handed-off').sessionId] = 1;
        // Parked: an operator resumes it on today's API; the release's run has no `resumeStep`
        // update, so the API sends it the `resume` signal the release does have.
        {
          const r = by('parked');
          const res = await api.request('POST', `/v1/orgs/${r.orgId}/sessions/${r.sessionId}/resume`);
          assert.equal(res.status, 200, `resume answered ${res.status}: ${JSON.stringify(res.body)}`);
          say(`POST …/resume of the release's parked run: ${JSON.stringify(res.body)}`);
          await loggedAll(r);
          await close(r);
        }
        // Continued as new: one more message, then closed.
        await oneMoreAndClose(by('continued-as-new'));
        // Every run the release started is finished: none is left on its queue; its workers stop.
        await waitFor(
          `no run left on ${OLD_QUEUE}`,
          async () => (await runningOn(client, OLD_QUEUE)) === 0,
          30_000,
        );
        for (const r of left) {
          assert.equal(
            await taskQueueOf(client, r.workflowId),
            OLD_QUEUE,
            `${r.sessionId} ran on the release's queue`,
          );
        }
        const oldErrors = (await readFile(oldWorkerLog, 'utf8'))
          .split('\n')
          .filter((l) => /"level":"(error|fatal)"/.test(l));
        await oldWorkers.stop();
        say(`release ${rel.short}'s workers stopped (${oldErrors.length} error lines in ${oldWorkerLog})`);
        for (const l of oldErrors.slice(0, 5)) say(`  ${l.slice(0, 400)}`);

        // A late message for a conversation the release finished: a new run of today's code on the
        // new queue (resumed), which finds the release's case and logs the message there once.
        {
          const r = by('resolved');
          const text = await sendMessage(api, r.orgId, r.sessionId, r.texts.length);
          r.texts.push(text);
          await waitFor(`${text} in Creatio`, () => inCreatio(emus, r, [text])[text] === 1, 120_000);
          assert.equal(
            await taskQueueOf(client, r.workflowId),
            NEW_QUEUE,
            `${r.sessionId} resumed on the new queue`,
          );
          await close(r);
        }
        // A new conversation in an organization connected today, after the release's workers are gone.
        await api.connectOrg('dr-new', emus);
        await newConversation('dr-new', 'dr-new-1');

        const all = [
          ...left.map((l) => ({ ...l, leftIn: l.reached })),
          ...fresh.map((f) => ({ ...f, leftIn: 'new', caseId: null as string | null })),
        ];
        const rows = [];
        for (const r of all) {
          assert.ok(await completed(client, r.workflowId), `${r.sessionId} finished`);
          const caseId = r.caseId ?? String((await api.session(r.orgId, r.sessionId))?.caseId);
          const counts = inCreatio(emus, { caseId }, r.texts);
          const sentToOpenCX = emus.opencx!.messagesFor(r.sessionId).length;
          rows.push({
            conversation: r.sessionId,
            leftIn: r.leftIn,
            lastRunQueue: await taskQueueOf(client, r.workflowId),
            messages: r.texts.length,
            inCreatioOnce: Object.values(counts).filter((c) => c === 1).length,
            repliesAtOpenCX: sentToOpenCX,
          });
          for (const [text, c] of Object.entries(counts))
            assert.equal(c, 1, `${text}: ${c} times in Creatio`);
          assert.equal(sentToOpenCX, replies[r.sessionId], `${r.sessionId}: agent replies at OpenCX`);
        }
        console.table(rows);
        assert.deepEqual(oldErrors, [], "the release's workers logged no error next to today's store");
      } finally {
        for (const stop of cleanup.reverse()) await stop().catch(() => {});
      }
    });
  },
);
