/**
 * The per-organization call limiter against a Creatio that enforces a quota (429 with
 * Retry-After past N requests a second), with the shipped limits.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SHIPPED_CALL_LIMITS } from '../../src/net/call-limiter';
import { Bridge, ev } from '../bridge-harness';

const sid = () => `r-${randomUUID().slice(0, 12)}`;

async function burst(bridge: Bridge, orgId: string, conversations: string[], each: number): Promise<void> {
  await Promise.all(
    conversations.map(async (s) => {
      for (let n = 0; n < each; n++) {
        const res = await bridge.send(
          orgId,
          'conversation.contact_response',
          ev.message(s, `m${n}`, `${s} #${n}`),
        );
        assert.equal(res.status, 202);
      }
    }),
  );
}

async function expectAll(
  bridge: Bridge,
  orgId: string,
  conversations: string[],
  each: number,
): Promise<void> {
  for (const s of conversations) await bridge.expectCustomerMessages(orgId, s, each);
}

describe('rate limits that adapt to what Creatio answers', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  it('a Creatio quota of 8 calls/s: the rate comes down to it, few calls meet a 429, every message lands once, in order; then it grows back', async () => {
    const orgId = await bridge.connectOrg();
    const rate = () =>
      bridge.workers!.describe().creatioCallsPerSecond[orgId] ?? SHIPPED_CALL_LIMITS.creatioInitialPerSecond;
    bridge.emu.setFaults({ maxPerSecond: 8, retryAfterSec: 1 });
    try {
      const first = Array.from({ length: 4 }, sid);
      await burst(bridge, orgId, first, 8);
      await expectAll(bridge, orgId, first, 8);
      const rejectedFirst = bridge.emu.rateLimited;
      assert.ok(rejectedFirst > 0, 'the quota was met (positive control)');
      assert.ok(rate() <= 16, `the organization's rate came down near the quota (${rate()} calls/s)`);

      // Adapted: a second burst meets a 429 on few of its calls.
      const calls = bridge.emu.odataCalls();
      const second = Array.from({ length: 4 }, sid);
      await burst(bridge, orgId, second, 8);
      await expectAll(bridge, orgId, second, 8);
      const rejectedSecond = bridge.emu.rateLimited - rejectedFirst;
      const share = rejectedSecond / (bridge.emu.odataCalls() - calls);
      assert.ok(
        share < 0.2,
        `429s on ${(share * 100).toFixed(0)} % of the second burst's calls (first burst: ${rejectedFirst})`,
      );
    } finally {
      bridge.emu.setFaults({ maxPerSecond: null });
    }

    // The quota lifted: the rate grows back while Creatio answers.
    const before = rate();
    const third = Array.from({ length: 4 }, sid);
    await burst(bridge, orgId, third, 8);
    await expectAll(bridge, orgId, third, 8);
    assert.ok(rate() > before, `grew back from ${before} to ${rate()} calls/s`);
  });

  it('a 30 % rate of 5xx (a flaky Creatio, not an overloaded one) does not slow the organization down', async () => {
    const orgId = await bridge.connectOrg();
    bridge.emu.setFaults({ errorRate: 0.3, errorStatus: 503 });
    try {
      const conversations = Array.from({ length: 4 }, sid);
      await burst(bridge, orgId, conversations, 10);
      await expectAll(bridge, orgId, conversations, 10);
    } finally {
      bridge.emu.setFaults({ errorRate: 0 });
    }
    const rate = bridge.workers!.describe().creatioCallsPerSecond[orgId]!;
    assert.ok(rate >= SHIPPED_CALL_LIMITS.creatioInitialPerSecond, `kept its pace: ${rate} calls/s`);
  });
});
