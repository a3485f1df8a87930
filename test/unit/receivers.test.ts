/**
 * The API's cache of OpenCX organizations (webhook secret and mode), against a store whose reads
 * take as long as the test says: no entry is used past its time, an organization with steady
 * traffic never waits for the store after its first read, and a settings change is never undone by
 * a read that began before it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Receivers } from '../../src/api/opencx-ingress';
import type { Store, StoredOrg } from '../../src/store';

/** A store of one organization: each read takes `delayMs` and returns what the store held when it began. */
class SlowStore {
  secret = 'secret-a';
  delayMs = 0;
  failing = false;
  reads = 0;
  private listeners: (() => void)[] = [];

  onSettingsChanged(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** A settings change saved through this process. */
  change(secret: string): void {
    this.secret = secret;
    for (const fn of this.listeners) fn();
  }

  async getOrgByOpencxOrganization(): Promise<StoredOrg | undefined> {
    this.reads++;
    const secret = this.secret;
    const failing = this.failing;
    await sleep(this.delayMs);
    if (failing) throw new Error('the store cannot be reached');
    return {
      orgId: 'org-1',
      settings: { opencx: { webhookSecret: secret }, createCaseOnlyOnHandoff: false },
      webhookToken: 'token',
      updatedAt: new Date(),
      notices: [],
    } as unknown as StoredOrg;
  }
}

const receivers = (store: SlowStore, ttlMs: number, failed: string[] = []) =>
  new Receivers(store as unknown as Store, ttlMs, (id, err) => failed.push(`${id}: ${String(err)}`));

/** A cache that has read its organization once, from a store whose reads take `delayMs`. */
async function primed(
  ttlMs: number,
  delayMs: number,
): Promise<{ store: SlowStore; cache: Receivers; failed: string[] }> {
  const store = new SlowStore();
  store.delayMs = delayMs;
  const failed: string[] = [];
  const cache = receivers(store, ttlMs, failed);
  await cache.get('oc-1');
  assert.equal(store.reads, 1);
  return { store, cache, failed };
}

describe('the receivers cache', () => {
  it('steady traffic never waits for the store after the first read, and no entry outlives its time', async () => {
    const ttlMs = 900;
    const { store, cache } = await primed(ttlMs, 150);

    // A webhook every 25 ms for over three cache times; the store keeps taking 150 ms a read.
    const waits: number[] = [];
    const end = performance.now() + 3 * ttlMs + 300;
    while (performance.now() < end) {
      const t0 = performance.now();
      const r = await cache.get('oc-1');
      waits.push(performance.now() - t0);
      assert.ok(Date.now() - r.cachedAt < ttlMs, `an entry ${Date.now() - r.cachedAt} ms old was used`);
      await sleep(25);
    }
    assert.ok(store.reads >= 4, `read again in the background (${store.reads} reads)`);
    const slowest = Math.max(...waits);
    assert.ok(slowest < 75, `a webhook waited ${Math.round(slowest)} ms for the store`);
  });

  it('a secret changed in the store is used within the cache time', async () => {
    const ttlMs = 600;
    const { store, cache } = await primed(ttlMs, 20);
    store.secret = 'secret-b'; // changed through another process: no event here
    const changedAt = Date.now();
    let seen = '';
    while (seen !== 'secret-b') {
      seen = (await cache.get('oc-1')).secret ?? '';
      assert.ok(Date.now() - changedAt <= ttlMs + 200, 'the old secret outlived the cache time');
      await sleep(10);
    }
  });

  it('a read that began before a settings change is not cached after it', async () => {
    const store = new SlowStore();
    const cache = receivers(store, 30_000);
    store.delayMs = 100;
    const before = cache.get('oc-1'); // reads secret-a, answers in 100 ms
    await sleep(10);
    store.change('secret-b');
    assert.equal((await before).secret, 'secret-a');
    assert.equal((await cache.get('oc-1')).secret, 'secret-b');
  });

  it('concurrent misses share one read; a forced read does not', async () => {
    const store = new SlowStore();
    const cache = receivers(store, 30_000);
    store.delayMs = 50;
    const all = await Promise.all(Array.from({ length: 5 }, () => cache.get('oc-1')));
    assert.equal(store.reads, 1);
    assert.ok(all.every((r) => r.secret === 'secret-a'));
    store.secret = 'secret-b';
    assert.equal((await cache.get('oc-1', true)).secret, 'secret-b');
    assert.equal(store.reads, 2);
  });

  it('a background read that fails is told once and not repeated; the entry serves to its time, then the store answers', async () => {
    const ttlMs = 400;
    const { store, cache, failed } = await primed(ttlMs, 0);
    store.failing = true;
    await sleep(ttlMs * 0.7);
    // Webhooks through the rest of the entry's time, while every read fails behind them.
    while (Date.now() - (await cache.get('oc-1')).cachedAt < ttlMs - 40) {
      assert.equal((await cache.get('oc-1')).secret, 'secret-a', 'the entry, while a read fails behind it');
      await sleep(10);
    }
    assert.equal(store.reads, 2, 'one read ahead for the entry, not one per webhook');
    assert.deepEqual(failed, ['oc-1: Error: the store cannot be reached']);
    await sleep(60);
    await assert.rejects(cache.get('oc-1'), /cannot be reached/);
  });
});
