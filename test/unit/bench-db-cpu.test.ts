/**
 * bench:load's count of PostgreSQL's CPU (bench/load.ts `dbCpuSnapshot` / `dbCpuSince`): a
 * backend's work shows under the database it is connected to, and a backend that ends within the
 * window is still counted, under `db ended`. Each case makes its own backend do a known amount of
 * work and looks for that backend by its pid. Other tests' backends on the same database can only
 * add to a bucket, so the `db ended` check is a lower bound on its own backend's work.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import pg from 'pg';
import { dbCpuSince, dbCpuSnapshot, sleep } from '../../bench/load';
import { testDatabaseUrl } from '../helpers';

/** About half a second of one backend's CPU. */
const WORK = 'SELECT sum(i::bigint * i % 7) FROM generate_series(1, 4000000) AS i';

const url = new URL(testDatabaseUrl());
const storeDb = url.pathname.slice(1);
/** /proc shows only this machine's processes. */
const local = ['127.0.0.1', 'localhost', '::1', '[::1]', ''].includes(url.hostname);

async function backend(): Promise<{ client: pg.Client; pid: number }> {
  const client = new pg.Client({ connectionString: testDatabaseUrl() });
  await client.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return { client, pid: rows[0]!.pid };
}

describe(
  'bench:load counts PostgreSQL CPU by database',
  { skip: !local && 'PostgreSQL is not on this machine' },
  () => {
    it("counts a backend's work under its database", async () => {
      const { client, pid } = await backend();
      try {
        const before = dbCpuSnapshot(storeDb);
        assert.equal(before.byPid.get(pid)?.bucket, 'db store', 'the backend is found, under the store');
        await client.query(WORK);
        const after = dbCpuSnapshot(storeDb);
        const own = after.byPid.get(pid)!.cpu - before.byPid.get(pid)!.cpu;
        assert.ok(own >= 0.1, `the backend's own CPU ${own} s`);
        assert.ok(dbCpuSince(before, storeDb)['db store']! >= own - 0.02);
        // Under another name for the store, the same backend is someone else's.
        assert.equal(dbCpuSnapshot('not-the-store').byPid.get(pid)?.bucket, 'db other');
      } finally {
        await client.end();
      }
    });

    it('counts a backend that ended within the window', async () => {
      const { client, pid } = await backend();
      let ended = false;
      try {
        const before = dbCpuSnapshot(storeDb);
        await client.query(WORK);
        const own = dbCpuSnapshot(storeDb).byPid.get(pid)!.cpu - before.byPid.get(pid)!.cpu;
        assert.ok(own >= 0.1, `the backend's own CPU ${own} s`);
        await client.end();
        ended = true;
        const until = Date.now() + 10_000;
        while (existsSync(`/proc/${pid}`) && Date.now() < until) await sleep(20);
        assert.ok(!existsSync(`/proc/${pid}`), 'the backend did not exit within 10 s');
        const used = dbCpuSince(before, storeDb);
        assert.ok(
          used['db ended']! >= own - 0.02,
          `db ended ${used['db ended']} s, the backend used ${own} s`,
        );
      } finally {
        if (!ended) await client.end();
      }
    });
  },
);
