/**
 * `npm run bench`: measured figures for what the bridge does, against the emulators on this
 * machine. Prints a table and writes bench/results/<date>.json (and latest.json).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CreatioClient, clearTokenCache } from '../src/creatio/client';
import { createLogger } from '../src/logger';
import { SANDBOX_CLIENT, startCreatioEmulator, type CreatioEmulator } from '../src/sandbox/emulators/creatio';
import { ADMIN_TOKEN, openTestStore, startApi, uniqueOrg, validSettings } from '../test/helpers';

export interface Stat {
  name: string;
  n: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  perSecond?: number;
  notes?: string;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}

export function summarize(name: string, samples: number[], wallMs?: number, notes?: string): Stat {
  const s = [...samples].sort((a, b) => a - b);
  const round = (v: number) => Math.round(v * 100) / 100;
  return {
    name,
    n: s.length,
    p50Ms: round(percentile(s, 50)),
    p99Ms: round(percentile(s, 99)),
    maxMs: round(s[s.length - 1] ?? NaN),
    ...(wallMs && { perSecond: round((s.length / wallMs) * 1000) }),
    ...(notes && { notes }),
  };
}

async function timed<T>(fn: () => Promise<T>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** Runs `total` calls of fn with at most `concurrency` in flight; returns per-call latencies and wall time. */
export async function load(total: number, concurrency: number, fn: (i: number) => Promise<unknown>) {
  const samples: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        samples.push(await timed(() => fn(i)));
      }
    }),
  );
  return { samples, wallMs: performance.now() - started };
}

async function creatioClientBench(emu: CreatioEmulator): Promise<Stat[]> {
  clearTokenCache();
  emu.reset();
  const client = new CreatioClient({
    instanceUrl: emu.url,
    identityServiceUrl: emu.url,
    clientId: SANDBOX_CLIENT.clientId,
    clientSecret: SANDBOX_CLIENT.clientSecret,
  });
  await client.listCaseStatuses();
  const reads = await load(2000, 20, () => client.listCaseStatuses());
  const writes = await load(1000, 20, (i) => client.create('Activity', { Title: `bench ${i}` }));
  return [
    summarize(
      'creatio client: GET CaseStatus (20 in flight)',
      reads.samples,
      reads.wallMs,
      `${emu.count('token')} token(s) minted`,
    ),
    summarize('creatio client: POST Activity (20 in flight)', writes.samples, writes.wallMs),
  ];
}

async function testAndSaveBench(emu: CreatioEmulator): Promise<Stat[]> {
  emu.reset();
  const log = createLogger('silent');
  const store = await openTestStore(log, process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite');
  const api = await startApi({ store, log });
  try {
    const run = await load(50, 1, () =>
      api.request('PUT', `/v1/orgs/${uniqueOrg('bench')}/integrations/creatio`, validSettings(emu), {
        authorization: `Bearer ${ADMIN_TOKEN}`,
      }),
    );
    return [
      summarize(
        'Test & Save (all live checks + write probe + store)',
        run.samples,
        run.wallMs,
        `${Math.round(emu.odataCalls() / 50)} OData calls each`,
      ),
    ];
  } finally {
    await api.close();
    await store.close();
  }
}

async function main(): Promise<void> {
  const emu = await startCreatioEmulator();
  const stats: Stat[] = [];
  try {
    stats.push(...(await creatioClientBench(emu)));
    stats.push(...(await testAndSaveBench(emu)));
  } finally {
    await emu.close();
  }
  const { conversationBench } = await import('./conversations');
  stats.push(...(await conversationBench()));
  const { replyBench } = await import('./replies');
  stats.push(...(await replyBench()));
  const { webhookBurstBench } = await import('./webhook-burst');
  stats.push(...(await webhookBurstBench()));
  const { tenantsBench } = await import('./tenants');
  stats.push(...(await tenantsBench()));
  // Paced load beside Temporal's floor and the naive path is its own benchmark: npm run bench:load.
  const result = {
    date: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
    },
    stats,
    settings: {
      conversations: Number(process.env.BENCH_CONVERSATIONS ?? 20),
      messagesEach: Number(process.env.BENCH_MESSAGES ?? 10),
      creatioLatencyMs: Number(process.env.BENCH_CREATIO_LATENCY_MS ?? 20),
      llmLatencyMs: Number(process.env.BENCH_LLM_LATENCY_MS ?? 1200),
    },
  };
  console.log(
    '\nbenchmark                                              n     p50 ms   p99 ms   max ms     per s',
  );
  for (const s of stats) {
    console.log(
      `${s.name.padEnd(56)} ${String(s.n).padStart(5)} ${String(s.p50Ms).padStart(9)} ${String(s.p99Ms).padStart(8)} ${String(s.maxMs).padStart(8)} ${String(s.perSecond ?? '').padStart(9)}  ${s.notes ?? ''}`,
    );
  }
  const dir = path.join(__dirname, 'results');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${result.date.replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify(result, null, 2));
  await writeFile(path.join(dir, 'latest.json'), JSON.stringify(result, null, 2));
  console.log(`\nwritten to ${path.relative(process.cwd(), file)}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
