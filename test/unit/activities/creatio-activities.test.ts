/**
 * The Creatio activities on their own (MockActivityEnvironment), against the Creatio emulator
 * and a test store: no Temporal server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities, type EnsureCaseInput } from '../../../src/activities';
import { createLogger } from '../../../src/logger';
import { CallLimiters } from '../../../src/net/call-limiter';
import { setOutboundPolicy } from '../../../src/net/outbound';
import { startCreatioEmulator, type CreatioEmulator } from '../../../src/sandbox/emulators/creatio';
import type { Store } from '../../../src/store';
import type { LogEntry } from '../../../src/workflows/contract';
import { openTestStore, storedSettings, uniqueOrg } from '../../helpers';
import { SANDBOX_CLIENT } from '../../../src/sandbox/emulators/creatio';

const entry = (i: number): LogEntry => ({
  kind: 'message',
  messageId: `m${i}`,
  author: 'customer',
  text: `message ${i}`,
  attachments: [],
  timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
});

describe('Creatio activities (MockActivityEnvironment, emulator)', () => {
  let emu: CreatioEmulator;
  let store: Store;
  before(async () => {
    setOutboundPolicy({ allowLoopback: true });
    emu = await startCreatioEmulator();
    store = await openTestStore(createLogger('error'));
  });
  after(async () => {
    await store.close();
    await emu.close();
  });

  const activities = (limiters?: { creatio: CallLimiters; opencx: CallLimiters }) =>
    createActivities({
      store,
      creatioTimeoutMs: 2_000,
      opencxSessionUrlTemplate: 'https://platform.open.cx/inbox/{sessionId}',
      ...(limiters && { limiters }),
    }).creatio;

  async function connected(): Promise<{ orgId: string; caseId: string }> {
    const orgId = uniqueOrg('act');
    await store.saveOrg(orgId, storedSettings({ instanceUrl: emu.url, ...SANDBOX_CLIENT }));
    const acts = activities();
    const input: EnsureCaseInput = {
      orgId,
      sessionId: `s-${orgId}`,
      contact: {},
      channel: 'web',
      description: 'test',
      registeredOn: new Date().toISOString(),
    };
    type Made = Awaited<ReturnType<typeof acts.ensureCase>>;
    const made = await new MockActivityEnvironment().run<[], Made, () => Promise<Made>>(() =>
      acts.ensureCase(input),
    );
    return { orgId, caseId: made.caseId };
  }

  it('logEntries twice (an attempt that lost its answer, then a retry): each entry once, in order', async () => {
    const { orgId, caseId } = await connected();
    const at = { orgId, sessionId: `s-${orgId}`, caseId };
    const acts = activities();
    const logEntries = (i: Parameters<typeof acts.logEntries>[0]) => acts.logEntries(i);
    await new MockActivityEnvironment().run(logEntries, { ...at, entries: [0, 1, 2].map(entry) });
    await new MockActivityEnvironment({ attempt: 2 }).run(logEntries, {
      ...at,
      entries: [0, 1, 2, 3].map(entry),
    });
    const titles = emu
      .rows('Activity')
      .filter((a) => a.CaseId === caseId)
      .map((a) => String(a.Title));
    assert.deepEqual(
      titles.filter((t) => t.includes('message')),
      [0, 1, 2, 3].map((i) => `[OpenCX] Customer: message ${i}`),
    );
  });

  it('a call its organization may not make yet fails as RateLimitedError with the wait as the next retry delay', async () => {
    const { orgId, caseId } = await connected();
    const limiters = {
      creatio: new CallLimiters({ initialPerSecond: 0.5, maxPerSecond: 0.5, maxWaitMs: 10 }),
      opencx: new CallLimiters({ initialPerSecond: 1, maxPerSecond: 1 }),
    };
    const acts = activities(limiters);
    const logEntry = (i: Parameters<typeof acts.logEntry>[0]) => acts.logEntry(i);
    const at = { orgId, sessionId: `s-${orgId}`, caseId };
    const before = emu.odataCalls();
    await assert.rejects(
      (async () => {
        for (let i = 10; i < 14; i++)
          await new MockActivityEnvironment().run(logEntry, { ...at, entry: entry(i) });
      })(),
      (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.type, 'RateLimitedError');
        assert.ok(err.nextRetryDelay !== undefined);
        return true;
      },
    );
    assert.ok(emu.odataCalls() - before <= 3, 'the paced call was not made');
  });

  it('ensureCase records its progress in heartbeats (a retry resumes where the attempt stopped)', async () => {
    const orgId = uniqueOrg('act');
    await store.saveOrg(orgId, storedSettings({ instanceUrl: emu.url, ...SANDBOX_CLIENT }));
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const acts = activities();
    await env.run((i: EnsureCaseInput) => acts.ensureCase(i), {
      orgId,
      sessionId: `s-${orgId}`,
      contact: { email: 'beat@example.com', name: 'Beat' },
      channel: 'web',
      description: 'test',
      registeredOn: new Date().toISOString(),
    });
    assert.ok(
      beats.some((b) => b && typeof b === 'object'),
      `progress recorded: ${JSON.stringify(beats)}`,
    );
  });
});
