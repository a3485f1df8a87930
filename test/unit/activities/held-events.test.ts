/**
 * The events a conversation kept at its idle timeout (src/activities/store.ts, findHeld) are
 * handled by one run only: the run that takes the list gets it again on a retry, and a later run
 * never handles it a second time, even when the taking run could not delete it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../../src/activities';
import { HELD_CHUNK } from '../../../src/activities/store';
import { createLogger } from '../../../src/logger';
import type { Store } from '../../../src/store';
import type { HeldEvents } from '../../../src/workflows/contract';
import { openTestStore } from '../../helpers';

describe('events kept at the idle timeout are taken by one run', () => {
  let store: Store;
  before(async () => {
    store = await openTestStore(createLogger('error'));
  });
  after(() => store.close());

  it('a retry of the taking run gets the list again; a later run gets nothing, and the leftovers are deleted', async () => {
    const activities = createActivities({
      store,
      creatioTimeoutMs: 2_000,
      opencxSessionUrlTemplate: 'https://platform.open.cx/inbox/{sessionId}',
    }).store;
    const env = new MockActivityEnvironment();
    const workflowId = `conversation:held:${randomUUID().slice(0, 8)}`;
    await store.putSpill(workflowId, 0, JSON.stringify([{ kind: 'message' }]));
    await store.putSpill(workflowId, 1, JSON.stringify([{ kind: 'message' }]));
    const held: HeldEvents = {
      chunks: [0, 1],
      next: 2,
      events: 2,
      step: 'log message',
      at: new Date().toISOString(),
    };
    await activities.holdEvents({ workflowId, held });

    const first: HeldEvents | null = await env.run(() => activities.findHeld({ workflowId, runId: 'run-b' }));
    assert.deepEqual(first?.chunks, [0, 1]);
    const retry: HeldEvents | null = await env.run(() => activities.findHeld({ workflowId, runId: 'run-b' }));
    assert.deepEqual(retry?.chunks, [0, 1], 'the same run, retried, gets the list again');

    // Run B could not delete what it handled; run C starts later.
    const later = await env.run(() => activities.findHeld({ workflowId, runId: 'run-c' }));
    assert.equal(later, null, 'a later run does not handle the list again');
    assert.deepEqual(
      await store.spillChunks(workflowId, [0, 1, HELD_CHUNK]),
      [],
      'the leftovers are deleted',
    );
  });
});
