import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Coalescer } from '../../src/workflow-client/coalesce';

describe('Coalescer', () => {
  it('answers every caller after a send that started after it arrived, with few sends', async () => {
    const c = new Coalescer();
    const starts: number[] = [];
    let lastFinished = -1;
    const send = async () => {
      const idx = starts.push(performance.now()) - 1;
      await new Promise((r) => setTimeout(r, 20));
      lastFinished = idx;
    };
    const arrivals: { at: number; servedBy: Promise<number> }[] = [];
    for (let i = 0; i < 50; i++) {
      arrivals.push({ at: performance.now(), servedBy: c.run('k', send).then(() => lastFinished) });
      await new Promise((r) => setTimeout(r, 1));
    }
    const served = await Promise.all(arrivals.map((a) => a.servedBy));
    assert.ok(starts.length >= 2 && starts.length <= 10, `sends: ${starts.length}`);
    // Each caller was answered by a send that started at or after its arrival.
    arrivals.forEach((a, i) =>
      assert.ok(starts[served[i]!]! >= a.at, `caller ${i} was answered by an earlier send`),
    );
  });

  it('keeps keys apart and recovers after a failed send', async () => {
    const c = new Coalescer();
    let n = 0;
    await assert.rejects(c.run('a', () => Promise.reject(new Error('down'))));
    await c.run('a', async () => {
      n++;
    });
    await Promise.all([c.run('b', async () => void n++), c.run('c', async () => void n++)]);
    assert.equal(n, 3);
  });
});
