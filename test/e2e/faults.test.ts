import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/logger';
import { freePort, startTemporal, type TemporalServer } from '../../src/temporal/launcher';
import { Bridge, ev, waitFor } from '../bridge-harness';

const sid = () => `f-${randomUUID().slice(0, 12)}`;

/** Message activities of a conversation's case, in the order Creatio received them. */
function loggedTexts(bridge: Bridge, caseId: string): string[] {
  return bridge
    .activitiesOf(caseId)
    .map((a) => String(a.Title))
    .filter((t) => /^\[OpenCX\] (Customer|AI agent):/.test(t))
    .map((t) => t.replace(/^\[OpenCX\] (Customer|AI agent): /, ''));
}

async function sendConversation(
  bridge: Bridge,
  orgId: string,
  s: string,
  from: number,
  to: number,
): Promise<void> {
  for (let n = from; n < to; n++) {
    const kind = n % 2 === 0 ? 'conversation.contact_response' : 'conversation.ai_response';
    const res = await bridge.send(orgId, kind, ev.message(s, `m${n}`, `${s} #${n}`));
    assert.equal(res.status, 202, JSON.stringify(res.body));
  }
}

async function expectExactlyOnceInOrder(
  bridge: Bridge,
  orgId: string,
  s: string,
  count: number,
  timeoutMs: number,
) {
  await waitFor(
    `${count} logged for ${s}`,
    async () => (await bridge.session(orgId, s)).body?.messages?.logged === count,
    timeoutMs,
    250,
  );
  const state = (await bridge.session(orgId, s)).body;
  assert.equal(bridge.emu.rows('Case').filter((c) => c.Id === state.caseId).length, 1, 'one case');
  assert.deepEqual(
    loggedTexts(bridge, state.caseId),
    Array.from({ length: count }, (_, n) => `${s} #${n}`),
    'every message exactly once, in order',
  );
}

describe('faults: nothing lost, nothing duplicated', () => {
  const bridge = new Bridge({ conversation: { creatioRetryFor: '10m' } });
  before(() => bridge.start());
  after(() => bridge.close());

  it('20 concurrent conversations through 30 % 5xx, 429 bursts, lost write answers and expiring tokens', async () => {
    const orgId = await bridge.connectOrg();
    bridge.emu.setFaults({
      errorRate: 0.3,
      errorStatus: 502,
      writeThenFailRate: 0.1,
      tokenLifetimeSec: 2,
      rateLimitBurst: 20,
      retryAfterSec: 1,
    });
    bridge.emu.revokeTokens(); // from now on every token lives 2 s
    // Two more bursts of 429s, 10 s apart (a limit that never lifts would be an outage).
    let bursts = 0;
    const refill = setInterval(() => {
      if (++bursts <= 2) bridge.emu.setFaults({ rateLimitBurst: 15 });
    }, 10_000);
    const sessions = Array.from({ length: 20 }, sid);
    try {
      await Promise.all(sessions.map((s) => sendConversation(bridge, orgId, s, 0, 10)));
      try {
        await Promise.all(sessions.map((s) => expectExactlyOnceInOrder(bridge, orgId, s, 10, 180_000)));
      } catch (err) {
        for (const s of sessions) {
          const st = (await bridge.session(orgId, s)).body;
          if (st.messages.logged !== 10)
            console.error(
              'STUCK',
              st.messages.logged,
              JSON.stringify(st.retrying),
              JSON.stringify(st.lastError),
            );
        }
        throw err;
      }
    } finally {
      clearInterval(refill);
      bridge.emu.setFaults({ errorRate: 0, writeThenFailRate: 0, rateLimitBurst: 0, tokenLifetimeSec: 3600 });
    }
    assert.ok(bridge.emu.count('token') > 1, 'tokens expired and were re-minted');
  });

  it('a 30-second Creatio outage mid-conversation', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await sendConversation(bridge, orgId, s, 0, 3);
    await expectExactlyOnceInOrder(bridge, orgId, s, 3, 30_000);
    bridge.emu.setFaults({ outage: 'http503' });
    // Fifteen tries and more at the harness's 2 s between tries, all refused.
    const outageEnds = Date.now() + 30_000;
    try {
      await sendConversation(bridge, orgId, s, 3, 8);
      // The positive control first: the write was tried, refused, and the retry is visible.
      await waitFor('the refused write shown as retrying', async () => {
        const st = (await bridge.session(orgId, s)).body;
        return (
          st.retrying.length > 0 && /503/.test(st.retrying[0].lastFailure) && st.retrying[0].attempt >= 3
        );
      });
      const during = (await bridge.session(orgId, s)).body;
      assert.equal(during.messages.logged, 3, 'nothing is logged while Creatio is down');
      await sendConversation(bridge, orgId, s, 8, 10);
      await new Promise((r) => setTimeout(r, Math.max(0, outageEnds - Date.now())));
    } finally {
      bridge.emu.setFaults({ outage: false });
    }
    await expectExactlyOnceInOrder(bridge, orgId, s, 10, 120_000);
  });

  it('a worker stopped and restarted mid-conversation', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await sendConversation(bridge, orgId, s, 0, 4);
    await expectExactlyOnceInOrder(bridge, orgId, s, 4, 30_000);
    await bridge.stopWorkers();
    // OpenCX keeps sending while no worker runs: the server keeps the signals.
    await sendConversation(bridge, orgId, s, 4, 9);
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(
      loggedTexts(bridge, (await bridge.handle(orgId, s).describe()).memo!.caseId as string).length,
      4,
    );
    await bridge.startWorkers();
    await expectExactlyOnceInOrder(bridge, orgId, s, 9, 60_000);
  });
});

describe('faults: a Temporal dev-server restart', () => {
  let dir: string;
  let port: number;
  let server: TemporalServer;
  let bridge: Bridge;
  const log = createLogger('warn');

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bridge-restart-'));
    port = await freePort();
    server = await startTemporal({ dbFile: path.join(dir, 'temporal.sqlite'), port, log });
    bridge = await new Bridge({ temporalAddress: server.address }).start();
  });
  after(async () => {
    await bridge.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('loses nothing: events sent while the server is down are retried by the sender and logged once', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await sendConversation(bridge, orgId, s, 0, 3);
    await expectExactlyOnceInOrder(bridge, orgId, s, 3, 30_000);
    await server.stop();

    // While Temporal is down the ingress answers 503, so OpenCX retries the same delivery later.
    const pending = Array.from({ length: 3 }, (_, i) => ({ id: `msg_${randomUUID()}`, n: 3 + i }));
    const down = await bridge.send(orgId, 'conversation.ai_response', ev.message(s, 'm3', `${s} #3`), {
      id: pending[0]!.id,
    });
    assert.equal(down.status, 503);
    assert.equal(down.body.error.code, 'temporal_unavailable');

    server = await startTemporal({ dbFile: path.join(dir, 'temporal.sqlite'), port, log });
    for (const p of pending) {
      const kind = p.n % 2 === 0 ? 'conversation.contact_response' : 'conversation.ai_response';
      const res = await waitFor(
        'the ingress to accept again',
        async () => {
          const r = await bridge.send(orgId, kind, ev.message(s, `m${p.n}`, `${s} #${p.n}`), { id: p.id });
          return r.status === 202 ? r : undefined;
        },
        60_000,
        500,
      );
      assert.equal(res.status, 202);
    }
    await expectExactlyOnceInOrder(bridge, orgId, s, 6, 90_000);
  });
});
