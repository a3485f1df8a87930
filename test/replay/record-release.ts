/**
 * `npm run replay:record-release -- <commit>`: records conversation histories written by an
 * earlier release's own code, so that `npm test` proves today's workflow code replays them
 * (test/unit/replay/releases.test.ts; docs/decisions/0025-release-histories.md).
 *
 * The release runs from a git worktree (`<RELEASE_WORKTREES or /tmp>/release-<short>`, its own
 * `npm ci`), its `src/main.ts` against a Temporal dev server started by today's launcher and a
 * fresh schema `release_<short>` of the PostgreSQL database at RECORD_DATABASE_URL (else
 * TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres). Its own emulators stand
 * in for Creatio and OpenCX; the conversations go through its own HTTP API
 * (test/replay/release-scenarios.ts). Every run of every conversation is written to
 * test/replay/releases/<short>/ with the payload key and a manifest. Running it again replaces
 * that folder (the histories differ in ids and times only).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { createLogger } from '../../src/logger';
import { freePort, startTemporal } from '../../src/temporal/launcher';
import { runScenarios } from './release-scenarios';
import {
  BridgeHttp,
  freshSchema,
  prepareRelease,
  startReleaseEmulators,
  startReleaseProcess,
  writeJson,
} from './releases-lib';

export const RELEASES_DIR = path.join(__dirname, 'releases');

/** The server suggests continue-as-new at this history length, so a short conversation shows it. */
export const SUGGEST_CONTINUE_AS_NEW_AT = 150;

const { History } = temporal.api.history.v1;

function toPlain(history: temporal.api.history.v1.IHistory): unknown {
  return History.toObject(History.fromObject(history), { longs: String, bytes: String });
}

async function main(): Promise<void> {
  const ref = process.argv[2];
  if (!ref) {
    console.error('usage: npm run replay:record-release -- <commit>');
    process.exit(2);
  }
  const say = (m: string) => console.log(m);
  const rel = await prepareRelease(ref, say);
  const log = createLogger('error');
  const server = await startTemporal({
    log,
    extraArgs: [
      '--dynamic-config-value',
      `limit.historyCount.suggestContinueAsNew=${SUGGEST_CONTINUE_AS_NEW_AT}`,
    ],
  });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const baseUrl =
    process.env.RECORD_DATABASE_URL ??
    process.env.TEST_DATABASE_URL ??
    'postgres://postgres@127.0.0.1:5432/postgres';
  const databaseUrl = await freshSchema(baseUrl, `release_${rel.short}`);
  const key = randomBytes(32);
  const emus = await startReleaseEmulators(rel);
  const logFile = path.join(rel.dir, 'release-record.log');
  const proc = await startReleaseProcess(rel, {
    temporalAddress: server.address,
    databaseUrl,
    key,
    port: await freePort(),
    logFile,
  });
  say(`release ${rel.short} (${rel.date}) running at ${proc.url}; its log: ${logFile}`);
  try {
    const results = await runScenarios({
      api: new BridgeHttp(proc.url, proc.adminToken),
      emus,
      client,
      prefix: `rel-${rel.short}`,
      continueAsNewMessages: 300,
      log: say,
    });
    // A release today's code cannot replay stays where it was classified (releases.test.ts).
    const incompatible = path.join(RELEASES_DIR, 'known-incompatible', rel.short);
    const dir = existsSync(incompatible) ? incompatible : path.join(RELEASES_DIR, rel.short);
    const errors = path.join(dir, 'errors.json');
    const keptErrors = existsSync(errors) ? await readFile(errors, 'utf8') : undefined;
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    // Test data only: the store's key, which the releases that encrypt payloads use for them too.
    if (keptErrors !== undefined) await writeFile(errors, keptErrors);
    await writeFile(path.join(dir, 'payload-key.base64'), `${key.toString('base64')}\n`);
    const scenarios = [];
    for (const r of results) {
      // Read raw: a release may encrypt its memo, which the list would otherwise decode.
      const listed = await client.workflowService.listWorkflowExecutions({
        namespace: client.options.namespace,
        query: `WorkflowId = "${r.workflowId}"`,
      });
      const runs = listed.executions
        .map((e) => ({
          runId: e.execution!.runId!,
          start: Number(e.startTime!.seconds) * 1e3 + e.startTime!.nanos! / 1e6,
        }))
        .sort((a, b) => a.start - b.start);
      const files: string[] = [];
      for (const [i, run] of runs.entries()) {
        const history = await client.workflow.getHandle(r.workflowId, run.runId).fetchHistory();
        const file = `${r.sessionId.replace(`rel-${rel.short}-`, '')}-run${i + 1}.json`;
        await writeJson(path.join(dir, file), {
          name: r.name,
          workflowId: r.workflowId,
          history: toPlain(history),
        });
        files.push(file);
      }
      scenarios.push({
        name: r.name,
        reached: r.reached,
        workflowId: r.workflowId,
        finished: r.finished,
        logged: r.logged,
        runs: runs.length,
        files,
      });
    }
    await writeJson(path.join(dir, 'manifest.json'), {
      release: rel.sha,
      date: rel.date,
      subject: rel.subject,
      recordedWith: `npm run replay:record-release -- ${rel.short}`,
      payloadKey: 'payload-key.base64',
      suggestContinueAsNewAt: SUGGEST_CONTINUE_AS_NEW_AT,
      scenarios,
    });
    const count = (await readdir(dir)).filter((f) => /-run\d+\.json$/.test(f)).length;
    if (dir === incompatible) {
      say(
        'a known-incompatible release: write its errors.json again with ' +
          'UPDATE_KNOWN_INCOMPATIBLE=1 npx tsx test/run.ts test/unit/replay/releases.test.ts',
      );
    }
    say(
      `recorded ${count} histories of ${results.length} conversations in ${path.relative(process.cwd(), dir)}`,
    );
  } finally {
    await proc.stop();
    await emus.close();
    await connection.close();
    await server.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
