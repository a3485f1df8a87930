/**
 * `npm run bench:attention`: the "needs attention" lists on a store holding 10,000 conversations
 * (case map rows) of which 50 need attention (rows written straight into the store), over 20
 * organizations. Times GET /v1/orgs/:orgId/attention and GET /v1/attention (50 calls each, p50 and
 * p99), prints them and writes bench/results/attention.json. Target: under 200 ms.
 *
 * Store: PostgreSQL at TEST_DATABASE_URL (a schema of its own) when set, else PGlite in memory
 * (BENCH_STORE=pglite|postgres chooses). BENCH_CONVERSATIONS, BENCH_ATTENTION_ITEMS, BENCH_ORGS
 * change the sizes.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createLogger } from '../src/logger';
import { AttentionStore, CONVERSATION_ATTENTION_KINDS } from '../src/store/attention';
import { PROJECT_ROOT } from '../src/temporal/launcher';
import { ADMIN_TOKEN, newTestStoreConfig, openTestStore, startApi, storedSettings } from '../test/helpers';
import { percentile, type Stat } from './run';

const CONVERSATIONS = Number(process.env.BENCH_CONVERSATIONS ?? 10_000);
const ITEMS = Number(process.env.BENCH_ATTENTION_ITEMS ?? 50);
const ORGS = Number(process.env.BENCH_ORGS ?? 20);
const CALLS = 50;
const TARGET_MS = 200;

export async function attentionBench(): Promise<Stat[]> {
  const kind =
    (process.env.BENCH_STORE as 'postgres' | 'pglite' | undefined) ??
    (process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite');
  const log = createLogger('error');
  const store = await openTestStore(log, kind, await newTestStoreConfig(kind));
  const api = await startApi({ store, log });
  try {
    const orgIds = Array.from({ length: ORGS }, (_, i) => `bench-att-${String(i).padStart(3, '0')}`);
    for (const orgId of orgIds) await store.saveOrg(orgId, storedSettings());
    const t0 = performance.now();
    await store.db.query(
      `INSERT INTO case_sessions (org_id, case_id, session_id, workflow_id)
       SELECT 'bench-att-' || lpad((g % $2)::text, 3, '0'), gen_random_uuid(), 's-' || g,
              'conversation:bench-att-' || lpad((g % $2)::text, 3, '0') || ':s-' || g
       FROM generate_series(1, $1) AS g`,
      [CONVERSATIONS, ORGS],
    );
    const items = new AttentionStore(store.db);
    for (let i = 0; i < ITEMS; i++) {
      // Spread over the organizations: conversation g belongs to organization g % ORGS.
      const g = i * Math.floor(CONVERSATIONS / ITEMS) + i + 1;
      const orgId = `bench-att-${String(g % ORGS).padStart(3, '0')}`;
      await items.set(orgId, `s-${g}`, CONVERSATION_ATTENTION_KINDS[i % 4]!, `bench item ${i}`);
    }
    const fillMs = Math.round(performance.now() - t0);

    const time = async (name: string, url: string, expect: number): Promise<Stat> => {
      const samples: number[] = [];
      for (let i = 0; i < CALLS + 3; i++) {
        const t = performance.now();
        const res = await fetch(`${api.url}${url}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        const body = (await res.json()) as { items: { sessionId: string | null }[] };
        const ms = performance.now() - t;
        if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
        const listed = body.items.filter((x) => x.sessionId !== null).length;
        if (listed !== expect) throw new Error(`${url} listed ${listed} conversations, not ${expect}`);
        if (i >= 3) samples.push(ms); // the first calls warm the connections up
      }
      samples.sort((a, b) => a - b);
      const stat: Stat = {
        name,
        n: samples.length,
        p50Ms: Math.round(percentile(samples, 50) * 10) / 10,
        p99Ms: Math.round(percentile(samples, 99) * 10) / 10,
        maxMs: Math.round(samples[samples.length - 1]! * 10) / 10,
        notes: `${CONVERSATIONS} conversations, ${ITEMS} need attention, ${ORGS} organizations, ${kind} store; target < ${TARGET_MS} ms`,
      };
      console.log(`${name}: p50 ${stat.p50Ms} ms, p99 ${stat.p99Ms} ms, max ${stat.maxMs} ms`);
      return stat;
    };
    const one = orgIds[1]!;
    const ofOne = (await items.list(one)).length;
    const stats = [
      await time(`GET /v1/orgs/:orgId/attention (${ofOne} items)`, `/v1/orgs/${one}/attention`, ofOne),
      await time(`GET /v1/attention (${ITEMS} items)`, `/v1/attention?limit=${ITEMS}`, ITEMS),
    ];
    const result = {
      at: new Date().toISOString(),
      store: kind,
      conversations: CONVERSATIONS,
      attentionItems: ITEMS,
      organizations: ORGS,
      fillMs,
      targetMs: TARGET_MS,
      withinTarget: stats.every((s) => s.p99Ms < TARGET_MS),
      stats,
    };
    const out = path.join(PROJECT_ROOT, 'bench', 'results');
    await mkdir(out, { recursive: true });
    await writeFile(path.join(out, 'attention.json'), `${JSON.stringify(result, null, 2)}\n`);
    console.log(
      `within the target (${TARGET_MS} ms at p99): ${result.withinTarget}; written to bench/results/attention.json`,
    );
    return stats;
  } finally {
    await api.close();
    await store.close();
  }
}

if (require.main === module) {
  attentionBench()
    .then(() => process.exit(0))
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
