/**
 * Replays conversation histories written by earlier releases' own code
 * (test/replay/releases/<commit>/, `npm run replay:record-release -- <commit>`) against today's
 * workflow code: a conversation an earlier release started must go on on today's workers.
 * Histories today's code cannot replay are kept under releases/known-incompatible/, with the
 * error, and are not replayed here (docs/decisions/0025-release-histories.md).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { HistoryAndWorkflowId } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, ReplayError, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { createLogger } from '../../../src/logger';
import { EncryptionCodec, parsePayloadKeys } from '../../../src/temporal/codec';
import { installRuntime, workflowBundle } from '../../../src/worker';
import { writeJson } from '../../replay/releases-lib';

installRuntime(createLogger(process.env.TEST_LOG_LEVEL ?? 'error'));

const DIR = path.join(__dirname, '..', '..', 'replay', 'releases');
const KNOWN_INCOMPATIBLE = 'known-incompatible';

interface Release {
  name: string;
  key: Buffer | undefined;
  histories: HistoryAndWorkflowId[];
  names: string[];
}

/** Every release folder under `base` with its histories (known-incompatible/ left out). */
async function releases(base = DIR): Promise<Release[]> {
  if (!existsSync(base)) return [];
  const out: Release[] = [];
  for (const name of (await readdir(base)).sort()) {
    if (name === KNOWN_INCOMPATIBLE) continue;
    const dir = path.join(base, name);
    const files = (await readdir(dir)).filter((f) => /-run\d+\.json$/.test(f)).sort();
    if (files.length === 0) continue;
    const keyFile = path.join(dir, 'payload-key.base64');
    const key = existsSync(keyFile)
      ? Buffer.from((await readFile(keyFile, 'utf8')).trim(), 'base64')
      : undefined;
    const histories: HistoryAndWorkflowId[] = [];
    const names: string[] = [];
    for (const f of files) {
      const rec = JSON.parse(await readFile(path.join(dir, f), 'utf8')) as {
        workflowId: string;
        name: string;
        history: object;
      };
      histories.push({
        workflowId: rec.workflowId,
        history: temporal.api.history.v1.History.fromObject(rec.history),
      });
      names.push(`${path.relative(path.dirname(DIR), dir)}/${f} (${rec.name})`);
    }
    out.push({ name, key, histories, names });
  }
  return out;
}

const errorText = (e: unknown): string => (e instanceof Error ? e.toString() : JSON.stringify(e));

async function replay(bundle: Awaited<ReturnType<typeof workflowBundle>>, rel: Release) {
  const results: { name: string; error: unknown }[] = [];
  let i = 0;
  for await (const r of Worker.runReplayHistories(
    {
      workflowBundle: bundle,
      ...(rel.key && {
        dataConverter: { payloadCodecs: [new EncryptionCodec(parsePayloadKeys(undefined, rel.key))] },
      }),
    },
    rel.histories,
  )) {
    results.push({ name: rel.names[i++]!, error: r.error });
  }
  return results;
}

describe('replay of histories written by earlier releases', () => {
  it('every history an earlier release wrote replays against the current workflow code', async () => {
    const all = await releases();
    assert.ok(all.length >= 1, 'at least one earlier release is recorded');
    const bundle = await workflowBundle(process.env.WORKFLOW_BUNDLE);
    const failed: string[] = [];
    let replayed = 0;
    for (const rel of all) {
      for (const r of await replay(bundle, rel)) {
        replayed++;
        if (r.error !== undefined) failed.push(`${r.name}: ${errorText(r.error)}`);
      }
    }
    assert.ok(replayed >= 5, `${replayed} histories replayed`);
    assert.deepEqual(failed, [], `histories that do not replay:\n${failed.join('\n')}`);
  });

  it('a workflow whose commands come in another order fails on them too', async () => {
    const changed = await bundleWorkflowCode({
      workflowsPath: require.resolve('../../../src/workflows'),
      workflowInterceptorModules: [require.resolve('../../replay/changed-order')],
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} },
    });
    let checked = 0;
    for (const rel of await releases()) {
      for (const r of await replay(changed, rel)) {
        checked++;
        // A nondeterminism error, or the SDK's replay failure when the shifted timer meets the
        // recorded history's timer events: either way the replay refuses the changed code.
        assert.ok(
          r.error instanceof DeterminismViolationError || r.error instanceof ReplayError,
          `${r.name} did not fail: ${String(r.error)}`,
        );
      }
    }
    assert.ok(checked > 0);
  });

  // Not dropped: each is replayed on every run, and must still fail with the error recorded
  // beside it (UPDATE_KNOWN_INCOMPATIBLE=1 writes errors.json). One that starts replaying is
  // moved back to releases/<commit>/, where the test above holds it.
  it('histories known not to replay on the current code still fail, with the recorded error', async () => {
    const base = path.join(DIR, KNOWN_INCOMPATIBLE);
    const bundle = await workflowBundle(process.env.WORKFLOW_BUNDLE);
    for (const rel of await releases(base)) {
      const errorsFile = path.join(base, rel.name, 'errors.json');
      // null: this history replays (e.g. a continued run that met only signals so far).
      const got: Record<string, string | null> = {};
      for (const r of await replay(bundle, rel)) {
        got[r.name.split(' ')[0]!.split('/').pop()!] = r.error === undefined ? null : errorText(r.error);
      }
      assert.ok(
        Object.values(got).some((e) => e !== null),
        `every history of ${KNOWN_INCOMPATIBLE}/${rel.name} replays on the current code now: move it to releases/${rel.name}`,
      );
      if (process.env.UPDATE_KNOWN_INCOMPATIBLE === '1') {
        await writeJson(errorsFile, got);
        continue;
      }
      const recorded = JSON.parse(await readFile(errorsFile, 'utf8')) as Record<string, string | null>;
      assert.deepEqual(got, recorded, `${KNOWN_INCOMPATIBLE}/${rel.name}: the errors changed`);
    }
  });
});
