/**
 * Replays every recorded conversation history (test/replay/histories, `npm run replay:record`)
 * against the current workflow code. A change that would break a conversation already running
 * fails here; such a change goes behind patched() (docs/decisions/0016-replay-and-patching.md).
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { HistoryAndWorkflowId } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { EncryptionCodec, parsePayloadKeys } from '../../../src/temporal/codec';
import { createLogger } from '../../../src/logger';
import { installRuntime, workflowBundle } from '../../../src/worker';

// The core's nondeterminism warnings of the deliberate change are expected: keep them out of the output.
installRuntime(createLogger(process.env.TEST_LOG_LEVEL ?? 'error'));

const DIR = path.join(__dirname, '..', '..', 'replay', 'histories');

async function corpus(): Promise<{ histories: HistoryAndWorkflowId[]; names: string[]; key: Buffer }> {
  const files = (await readdir(DIR)).filter((f) => f.endsWith('.json')).sort();
  const histories: HistoryAndWorkflowId[] = [];
  const names: string[] = [];
  for (const f of files) {
    const { workflowId, history, name } = JSON.parse(await readFile(path.join(DIR, f), 'utf8')) as {
      workflowId: string;
      name: string;
      history: unknown;
    };
    histories.push({ workflowId, history: temporal.api.history.v1.History.fromObject(history as object) });
    names.push(`${f} (${name})`);
  }
  const key = Buffer.from((await readFile(path.join(DIR, 'payload-key.base64'), 'utf8')).trim(), 'base64');
  return { histories, names, key };
}

async function replay(bundle: Awaited<ReturnType<typeof workflowBundle>>) {
  const { histories, names, key } = await corpus();
  const results: { name: string; error: unknown }[] = [];
  let i = 0;
  for await (const r of Worker.runReplayHistories(
    {
      workflowBundle: bundle,
      dataConverter: { payloadCodecs: [new EncryptionCodec(parsePayloadKeys(undefined, key))] },
    },
    histories,
  )) {
    results.push({ name: names[i++]!, error: r.error });
  }
  return results;
}

describe('replay of recorded conversations', () => {
  it('every recorded history replays against the current workflow code', async () => {
    const results = await replay(await workflowBundle(process.env.WORKFLOW_BUNDLE));
    assert.ok(results.length >= 10, `${results.length} histories in the corpus`);
    const runs = new Set(results.map((r) => r.name.replace(/-run\d+\.json.*/, '')));
    assert.ok(runs.size >= 5, 'every flow is in the corpus');
    for (const r of results) assert.equal(r.error, undefined, `${r.name}: ${String(r.error)}`);
  });

  it('a workflow whose commands come in another order fails the replay (the corpus can catch a change)', async () => {
    const changed = await bundleWorkflowCode({
      workflowsPath: require.resolve('../../../src/workflows'),
      workflowInterceptorModules: [require.resolve('../../replay/changed-order')],
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} },
    });
    const results = await replay(changed);
    assert.ok(results.length > 0);
    for (const r of results) {
      assert.ok(r.error instanceof DeterminismViolationError, `${r.name} did not fail: ${String(r.error)}`);
    }
  });
});
