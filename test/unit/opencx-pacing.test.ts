/**
 * The shared OpenCX pace (src/net/opencx-pacing.ts) with 1, 2 and 4 pacers on one database, each
 * standing for a worker process (on PostgreSQL each with its own connection pool): the combined
 * rate stays under the limit, every call is served (none starves, multi-call steps included),
 * calls are served in the order they reserved, and a 429 with Retry-After delays every pacer.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sha256Hex } from '../../src/crypto';
import { createLogger } from '../../src/logger';
import { CallLimiters, RateLimitedError } from '../../src/net/call-limiter';
import { OpenCXPacing, type OpenCXPacingOptions } from '../../src/net/opencx-pacing';
import { StoreUnavailableError, type Store } from '../../src/store';
import { newTestStoreConfig, openTestStore } from '../helpers';

/** The test's pace: 10 calls/s (600 a minute), bursts of 3; 100 ms between slots. */
const PER_SECOND = 10;
const BURST = 3;
const INTERVAL_MS = 1000 / PER_SECOND;

interface Served {
  pacer: number;
  slotMs: number | undefined;
  at: number;
}

const fallback = () => new CallLimiters({ initialPerSecond: PER_SECOND, maxPerSecond: PER_SECOND });

/** The most calls served within any window of `windowMs`. */
function busiestWindow(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= windowMs) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

for (const kind of ['postgres', 'pglite'] as const) {
  describe(`shared OpenCX pace across worker processes (${kind})`, () => {
    const log = createLogger('error');
    const stores: Store[] = [];
    before(async () => {
      const config = await newTestStoreConfig(kind);
      // PGlite serves one process only: there the pacers share one database handle.
      for (let i = 0; i < (kind === 'postgres' ? 4 : 1); i++)
        stores.push(await openTestStore(log, kind, config));
    });
    after(async () => {
      for (const s of stores) await s.close();
    });

    /** Opens connections ahead, so that a test's first reservations reach the database at once. */
    const warm = () =>
      Promise.all(
        stores.flatMap((s) => Array.from({ length: 10 }, () => s.db.query('SELECT pg_sleep(0.02)'))),
      );

    /** Waits until the key's reservations reach `ms` ahead (the turns asked for are reserved). */
    const reservedAhead = async (apiKey: string, ms: number) => {
      for (let tries = 0; ; tries++) {
        const [row] = await stores[0]!.db.query<{ ahead: number }>(
          `SELECT coalesce(max(extract(epoch FROM tat - now()) * 1000), 0)::float8 AS ahead
             FROM call_pace WHERE key_hash = $1`,
          [`opencx:${sha256Hex(apiKey)}`],
        );
        if (Number(row?.ahead) >= ms) return;
        assert.ok(tries < 200, `the turns were not reserved ${ms} ms ahead within 2 s`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };

    const pacers = (n: number, o: Partial<OpenCXPacingOptions> = {}) =>
      Array.from(
        { length: n },
        (_, i) =>
          new OpenCXPacing({
            db: stores[i % stores.length]!.db,
            perSecond: PER_SECOND,
            burst: BURST,
            fallback: fallback(),
            ...o,
          }),
      );

    for (const n of [1, 2, 4]) {
      it(`${n} pacer(s), 48 calls in steps of two (read, then send): under the limit, all served, in reservation order`, async () => {
        const apiKey = `ocx_live_${randomUUID()}`;
        const paces = pacers(n).map((p) => p.for(apiKey));
        const served: Served[] = [];
        const stepMs: number[] = [];
        const started = Date.now();
        // Each pacer runs 3 conversations at once, each doing steps of two calls, until the pacer
        // made its share of the 48 calls.
        await Promise.all(
          paces.map(async (pace, pacer) => {
            let left = 48 / n;
            await Promise.all(
              [0, 1, 2].map(async () => {
                while (left >= 2) {
                  left -= 2;
                  const t0 = Date.now();
                  for (let call = 0; call < 2; call++) {
                    const { slotMs } = await pace.turn();
                    served.push({ pacer, slotMs, at: Date.now() });
                    pace.done({ status: 200 });
                  }
                  stepMs.push(Date.now() - t0);
                }
              }),
            );
          }),
        );
        const elapsed = Date.now() - started;
        const times = served.map((s) => s.at);
        const perSecond = busiestWindow(times, 1000);
        const perWindow = (ms: number) => busiestWindow(times, ms);
        console.log(
          `    ${kind}, ${n} pacer(s): 48 calls in ${elapsed} ms; busiest second ${perSecond} calls, ` +
            `busiest 2 s ${perWindow(2000)}; slowest step ${Math.max(...stepMs)} ms`,
        );

        assert.equal(served.length, 48, 'every call was served');
        assert.ok(
          served.every((s) => s.slotMs !== undefined),
          'every call took its turn in the store',
        );
        // The limit: PER_SECOND a second plus the burst; 2 more for timers that fire late together.
        assert.ok(perSecond <= PER_SECOND + BURST + 2, `busiest second: ${perSecond} calls`);
        assert.ok(perWindow(2000) <= 2 * PER_SECOND + BURST + 2, `busiest 2 s: ${perWindow(2000)} calls`);
        assert.ok(
          elapsed >= (48 - BURST) * INTERVAL_MS * 0.9,
          `48 calls took ${elapsed} ms: at most ${PER_SECOND}/s after the burst`,
        );
        // None starves: the queue drains at the pace, whoever asks.
        assert.ok(elapsed < 48 * INTERVAL_MS * 3 + 2_000, `48 calls took ${elapsed} ms`);
        // Served in reservation order (a late timer may swap two neighbours by less than a slot).
        const bySlot = [...served].sort((a, b) => a.slotMs! - b.slotMs!);
        const inversions = bySlot.filter((s, i) => i > 0 && s.at < bySlot[i - 1]!.at - INTERVAL_MS / 2);
        assert.equal(inversions.length, 0, `served out of reservation order: ${JSON.stringify(inversions)}`);
      });
    }

    it('a 429 with Retry-After delays every pacer, calls already waiting included', async () => {
      const apiKey = `ocx_live_${randomUUID()}`;
      const [a, b] = pacers(2).map((p) => p.for(apiKey));
      await warm();
      // B queues 8 calls (after the burst of 3, the others 0.1 to 0.5 s away).
      const waiting = Array.from({ length: 8 }, () => b!.turn().then(() => Date.now()));
      await reservedAhead(apiKey, 300);
      const pushedAt = Date.now();
      a!.done({ status: 429, retryAfterMs: 1_500 });
      await a!.settled();
      const next = Promise.all([a!.turn(), b!.turn()]);
      const bServed = await Promise.all(waiting);
      const [aTurn, bTurn] = await next;
      const late = bServed.filter((t) => t > pushedAt + 50);
      console.log(
        `    ${kind}: after a 429 with Retry-After 1.5 s: B's waiting calls served at +${bServed.map((t) => t - pushedAt).join(', +')} ms; ` +
          `next turns waited ${aTurn.waitedMs} ms (A), ${bTurn.waitedMs} ms (B)`,
      );
      assert.ok(late.length >= 3, 'calls were still waiting when the 429 came');
      assert.ok(
        late.every((t) => t >= pushedAt + 1_400),
        `a waiting call went during the pause: ${late.map((t) => t - pushedAt).join(', ')}`,
      );
      assert.ok(aTurn.waitedMs >= 1_300 && bTurn.waitedMs >= 1_300, 'new turns wait for the pause');
    });

    it('a 429 without Retry-After halves the rate for every pacer', async () => {
      const apiKey = `ocx_live_${randomUUID()}`;
      const [a, b] = pacers(2).map((p) => p.for(apiKey));
      await a!.turn();
      a!.done({ status: 429 });
      await a!.settled();
      const t0 = Date.now();
      await Promise.all(Array.from({ length: 9 }, () => b!.turn()));
      const elapsed = Date.now() - t0;
      // At 5 calls/s, 9 more calls take about 1.4 s (at 10/s: 0.7 s).
      assert.ok(elapsed >= 1_000, `9 calls after a 429 took ${elapsed} ms`);
    });

    it('a turn further away than the attempt has left is not taken: RateLimitedError, the slot stays free', async () => {
      const apiKey = `ocx_live_${randomUUID()}`;
      const [busy] = pacers(1);
      const [short] = pacers(1, { timeLeftMs: () => 1_300, callMs: 1_000 });
      await warm();
      const queue = Array.from({ length: 8 }, () => busy!.for(apiKey).turn());
      // The busy turns are reserved (the queue reaches well past what the short attempt has left).
      await reservedAhead(apiKey, 500);
      await assert.rejects(short!.for(apiKey).turn(), (err: unknown) => {
        assert.ok(err instanceof RateLimitedError, String(err));
        assert.ok(err.retryAfterMs >= 1_000);
        return true;
      });
      const slots = (await Promise.all(queue)).map((t) => t.slotMs!);
      const next = await busy!.for(apiKey).turn();
      assert.ok(
        next.slotMs! - Math.max(...slots) < INTERVAL_MS * 1.5,
        'the refused turn left no gap in the queue',
      );
    });

    it('a long wait beats for the activity', async () => {
      const apiKey = `ocx_live_${randomUUID()}`;
      let beats = 0;
      const [p] = pacers(1, { beat: () => beats++, beatEveryMs: 100 });
      const turns = await Promise.all(Array.from({ length: 10 }, () => p!.for(apiKey).turn()));
      const longest = Math.max(...turns.map((t) => t.waitedMs));
      assert.ok(longest >= 500, `longest wait ${longest} ms`);
      assert.ok(beats >= 4, `${beats} beats`);
    });
  });
}

describe('shared OpenCX pace: the store cannot be reached', () => {
  it('calls are paced in-process instead, and none fails', async () => {
    let asked = 0;
    const down = {
      query: () => {
        asked++;
        return Promise.reject(new StoreUnavailableError('The database is unavailable: timeout'));
      },
    };
    const pacing = new OpenCXPacing({
      db: down,
      perSecond: PER_SECOND,
      fallback: new CallLimiters({ initialPerSecond: 5, maxPerSecond: 5, maxWaitMs: 5_000 }),
    });
    const pace = pacing.for('ocx_live_down');
    const t0 = Date.now();
    const turns = await Promise.all(Array.from({ length: 8 }, () => pace.turn()));
    for (let i = 0; i < turns.length; i++) pace.done({ status: 200 });
    assert.ok(turns.every((t) => t.slotMs === undefined));
    // The in-process bucket (5/s, a second's worth banked) lets five go, then spaces the other
    // three 200 ms apart.
    assert.ok(Date.now() - t0 >= 500, `${Date.now() - t0} ms`);
    // The store is asked again only seconds later: meanwhile a call does not wait for its timeouts.
    const before = asked;
    assert.equal((await pace.turn()).slotMs, undefined);
    assert.equal(asked, before);
    pace.done({ status: 429, retryAfterMs: 100 });
    await pace.settled();
  });
});
