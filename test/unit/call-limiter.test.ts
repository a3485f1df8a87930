import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CallLimiter, MAX_ADAPTIVE_PER_SECOND, RateLimitedError } from '../../src/net/call-limiter';

/** A limiter on a clock the test moves. */
function limiter(o: Partial<ConstructorParameters<typeof CallLimiter>[1]> = {}) {
  let now = 1_000_000;
  const l = new CallLimiter('org-1', { initialPerSecond: 20, now: () => now, ...o });
  return { l, advance: (ms: number) => (now += ms) };
}

async function call(l: CallLimiter, status: number | 'error', retryAfterMs?: number) {
  await l.acquire();
  l.done(status === 'error' ? { status } : { status, retryAfterMs });
}

describe('the call limiter', () => {
  it('halves on a 429 or a 5xx at most once a second, and grows back while the remote answers', async () => {
    const { l, advance } = limiter();
    await call(l, 429);
    assert.equal(l.perSecond, 10);
    // Failures of calls already in flight in the same second count once.
    advance(10);
    await call(l, 503);
    assert.equal(l.perSecond, 10);
    advance(1_000);
    await call(l, 'error');
    assert.equal(l.perSecond, 5);
    for (let i = 0; i < 40; i++) {
      advance(200);
      await call(l, 200);
    }
    const grown: number = l.perSecond;
    assert.ok(grown > 10, `grew back to ${grown}`);
  });

  it('a flaky remote (some 5xx among answers) keeps its pace; an overloaded one (most calls failing) does not', async () => {
    const { l, advance } = limiter();
    for (let i = 0; i < 30; i++) {
      advance(1_000);
      await call(l, i % 3 === 0 ? 503 : 200);
    }
    assert.ok(l.perSecond >= 20, `kept ${l.perSecond}`);
    for (let i = 0; i < 20; i++) {
      advance(10_000);
      await call(l, 503);
    }
    assert.ok(l.perSecond < 1, `came down to ${l.perSecond}`);
  });

  it('never drops under the floor (a probe finds a recovered remote) nor grows past the hard cap', async () => {
    const { l, advance } = limiter({ maxPerSecond: 30 });
    for (let i = 0; i < 20; i++) {
      advance(5_000);
      await call(l, 'error');
    }
    assert.equal(l.perSecond, 0.2);
    // From the floor back to the cap of 30 calls/s in well under a minute of a remote that answers.
    let elapsed = 0;
    while (l.perSecond < 30) {
      const step = Math.ceil(1000 / l.perSecond);
      advance(step);
      elapsed += step;
      await call(l, 200);
    }
    assert.equal(l.perSecond, 30);
    assert.ok(elapsed < 40_000, `back at the cap after ${elapsed} ms`);
    const uncapped = limiter();
    while (uncapped.l.perSecond < MAX_ADAPTIVE_PER_SECOND) {
      uncapped.advance(Math.ceil(1000 / uncapped.l.perSecond));
      await call(uncapped.l, 200);
    }
    assert.equal(uncapped.l.perSecond, MAX_ADAPTIVE_PER_SECOND);
  });

  it('starts with a second of calls banked, then refuses a call whose turn is further than maxWait, naming the wait', async () => {
    const { l } = limiter({ initialPerSecond: 2, maxWaitMs: 100 });
    // A new limiter is full, as after a quiet second: a burst of new conversations goes at once.
    await call(l, 200);
    await call(l, 200);
    await assert.rejects(l.acquire(), (err: unknown) => {
      assert.ok(err instanceof RateLimitedError);
      assert.ok(err.retryAfterMs > 100 && err.retryAfterMs <= 500, String(err.retryAfterMs));
      return true;
    });
  });

  it('pauses every call until a Retry-After has passed', async () => {
    const { l, advance } = limiter();
    await call(l, 429, 3_000);
    advance(1_000);
    await assert.rejects(l.acquire(), (err: unknown) => {
      assert.ok(err instanceof RateLimitedError);
      assert.equal(err.retryAfterMs, 2_000);
      return true;
    });
    advance(2_001);
    await l.acquire();
  });

  it('holds its share when several worker processes are alive, and caps calls in flight', async () => {
    let processes = 4;
    const { l, advance } = limiter({ maxPerSecond: 40, initialPerSecond: 40, share: () => 1 / processes });
    assert.equal(l.perSecond, 10);
    processes = 1;
    assert.equal(l.perSecond, 40);
    advance(1_000);
    const inFlight = limiter({ maxInFlight: 2 });
    inFlight.advance(1_000);
    await inFlight.l.acquire();
    await inFlight.l.acquire();
    await assert.rejects(inFlight.l.acquire(), /too many calls in flight/);
    inFlight.l.done({ status: 200 });
    await inFlight.l.acquire();
  });
});
