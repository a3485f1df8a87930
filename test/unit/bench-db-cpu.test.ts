/**
 * bench:load's count of PostgreSQL's CPU (bench/load.ts `dbCpuSnapshot` / `dbCpuSince`): work a
 * backend does for the store's database shows under `db store`, and a backend that ends within
 * the window is still counted, under `db ended`. Each case makes PostgreSQL do a known amount of
 * work and looks for it, so a count that finds no processes, or the wrong ones, fails.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import pg from 'pg';
import { dbCpuSince, dbCpuSnapshot, sleep } from '../../bench/load';
import { testDatabaseUrl } from '../helpers';

/** About half a second of one backend's CPU. */
const WORK = 'SELECT sum(i::bigint * i % 7) FROM generate_series(1, 4000000) AS i';

describe('bench:load counts PostgreSQL CPU by database', () => {
  const storeDb = new URL(testDatabaseUrl()).pathname.slice(1);

  it("counts a live backend's work under the store's database", async () => {
    const client = new pg.Client({ connectionString: testDatabaseUrl() });
    await client.connect();
    try {
      const before = dbCpuSnapshot(storeDb);
      const t0 = performance.now();
      await client.query(WORK);
      const wallS = (performance.now() - t0) / 1000;
      const used = dbCpuSince(before, storeDb);
      assert.ok(used['db store']! >= 0.1, `db store ${used['db store']} s for a ${wallS} s query`);
    } finally {
      await client.end();
    }
  });

  it('counts a backend that ended within the window', async () => {
    const client = new pg.Client({ connectionString: testDatabaseUrl() });
    await client.connect();
    let ended = false;
    try {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const pid = rows[0]!.pid;
      const before = dbCpuSnapshot(storeDb);
      assert.equal(before.byPid.get(pid)?.bucket, 'db store');
      await client.query(WORK);
      await client.end();
      ended = true;
      const until = Date.now() + 10_000;
      while (existsSync(`/proc/${pid}`) && Date.now() < until) await sleep(20);
      assert.ok(!existsSync(`/proc/${pid}`), 'the backend did not exit within 10 s');
      const used = dbCpuSince(before, storeDb);
      assert.ok(used['db ended']! >= 0.1, `db ended ${used['db ended']} s`);
    } finally {
      if (!ended) await client.end();
    }
  });
});
