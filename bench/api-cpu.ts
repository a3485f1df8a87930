/**
 * `npm run bench:api`: the CPU the bridge's API process spends per accepted webhook, beside the
 * floor's ingress (bench/floor/process.ts: one signalWithStart per message), with the same paced
 * arrivals on the same embedded Temporal server, and no worker running.
 *
 * `npm run bench:load` measures the same ratio with every process of both paths busy on two cores;
 * there, the API's CPU per message moves by a third between runs with what the worker and the
 * server do beside it. Here only the two ingress processes and the server run (signals wait in
 * their workflows' histories), so a change to the webhook's path can be measured A/B in a few
 * minutes. The figures of record stay bench:load's.
 *
 *   npm run bench:api                              # 50 msg/s, 5 runs of 20 s per path
 *   npm run bench:api -- --rate=100 --runs=3 --seconds=10
 *
 * Prints each run and the medians, and writes bench/results/api-<date>.json.
 */
import { randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startCreatioEmulator } from '../src/sandbox/emulators/creatio';
import { startOpenCXEmulator } from '../src/sandbox/emulators/opencx';
import { freePort } from '../src/temporal/launcher';
import { newTestStoreConfig } from '../test/helpers';
import { postJson } from './floor/http';
import { writeResult } from './results';
import {
  bridgeEnv,
  connectOrgs,
  cpuSeconds,
  dist,
  drive,
  postMessage,
  sleep,
  startChild,
  startServer,
  stopChildren,
  type Sent,
} from './load';

const ROOT = path.join(__dirname, '..');

interface Options {
  rate: number;
  seconds: number;
  runs: number;
  orgs: number;
  conversations: number;
}

type ApiTarget = 'floor' | 'bridge' | 'baseline';

interface ApiRun {
  target: ApiTarget;
  run: number;
  messages: number;
  failed: number;
  cpuMsPerMessage: number;
  ackP50Ms: number;
  ackP99Ms: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rate: 50, seconds: 20, runs: 5, orgs: 10, conversations: 100 };
  for (const a of argv) {
    const [k, v] = a.replace(/^--/, '').split('=');
    const n = Number(v);
    if (!(k! in o) || !Number.isFinite(n) || n <= 0) throw new Error(`unknown option ${a}`);
    o[k as keyof Options] = n;
  }
  return o;
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

async function apiBench(opts: Options): Promise<ApiRun[]> {
  const temporal = await startServer('file');
  const children: ChildProcess[] = [];
  const emu = await startCreatioEmulator();
  const opencx = await startOpenCXEmulator();
  opencx.apiKeys.add('ocx_bench_key');
  try {
    const storeConfig = await newTestStoreConfig('postgres');
    const apiPort = await freePort();
    const envOf = (dir: string) => ({
      ...bridgeEnv(temporal, storeConfig, 'bench-api', dir),
      RUN_WORKER: 'false',
    });
    const api = await startChild(
      'api',
      [path.join(ROOT, 'src', 'main.ts')],
      { ...envOf(ROOT), PORT: String(apiPort) },
      /bridge is up/,
    );
    children.push(api.child);
    const ing = await startChild(
      'ingress',
      [path.join(ROOT, 'bench', 'floor', 'process.ts'), 'ingress'],
      {
        BENCH_TEMPORAL: temporal.address,
        BENCH_TASK_QUEUE: `floor-${randomUUID().slice(0, 8)}`,
        BENCH_SINK: 'http://127.0.0.1:9',
        BENCH_CREATIO: emu.url,
      },
      /READY (\d+)/,
    );
    children.push(ing.child);
    const pids: Partial<Record<ApiTarget, number>> = { bridge: api.child.pid!, floor: ing.child.pid! };
    const urls: Partial<Record<ApiTarget, string>> = { bridge: `http://127.0.0.1:${apiPort}` };
    // BENCH_API_BASELINE: another checkout's API beside this one (same store and server), for A/B.
    const baselineDir = process.env.BENCH_API_BASELINE;
    if (baselineDir) {
      const port = await freePort();
      const base = await startChild(
        'baseline',
        [path.join(baselineDir, 'src', 'main.ts')],
        { ...envOf(baselineDir), PORT: String(port) },
        /bridge is up/,
        baselineDir,
      );
      children.push(base.child);
      pids.baseline = base.child.pid!;
      urls.baseline = `http://127.0.0.1:${port}`;
    }
    const targets = Object.keys(pids) as ApiTarget[];

    const bridgeUrl = urls.bridge!;
    const ingressUrl = `http://127.0.0.1:${ing.match[1]}`;
    const orgIds = await connectOrgs(bridgeUrl, emu, opencx, opts.orgs, 'api');
    const agent = new http.Agent({ keepAlive: true, maxSockets: opts.conversations + 16 });
    const tag = randomUUID().slice(0, 4);
    const signed = (url: string) => (s: Sent) =>
      postMessage(url, agent, orgIds[s.conv % opts.orgs]!, `${tag}-${url.slice(-5)}-${s.conv}`, s.key);
    const send: Record<ApiTarget, (s: Sent) => Promise<number>> = {
      floor: (s: Sent) => postJson(`${ingressUrl}/floor`, { wid: `${tag}-f${s.conv}`, id: s.key }, agent),
      bridge: signed(bridgeUrl),
      baseline: signed(urls.baseline ?? bridgeUrl),
    };
    const total = Math.round(opts.rate * opts.seconds);
    const window = async (target: ApiTarget, label: string) => {
      const cpu0 = cpuSeconds(pids[target]!);
      const { sent } = await drive(
        total,
        opts.rate,
        opts.conversations,
        (i) => `${label}-${i}`,
        send[target],
      );
      const cpu = cpuSeconds(pids[target]!) - cpu0;
      const ok = sent.filter((s) => s.status && s.status < 300);
      const ack = dist(ok.map((s) => s.acked! - s.scheduled));
      return { sent, ok, cpu, ack };
    };

    // Not measured: each path starts its conversations, then runs one window for the JIT.
    for (const target of targets) {
      for (const label of ['start', 'warm']) {
        const w = await window(target, `${label}${target[0]}${tag}`);
        if (w.ok.length !== w.sent.length) throw new Error(`${target} ${label}: sends refused`);
      }
    }
    await sleep(2_000);
    // What each process spends doing nothing (timers, metrics, pools): part of its CPU per message.
    const idle0 = targets.map((t) => cpuSeconds(pids[t]!));
    await sleep(10_000);
    const idleMsPerS = Object.fromEntries(
      targets.map((t, i) => [t, Math.round(((cpuSeconds(pids[t]!) - idle0[i]!) * 1000) / 10)]),
    );
    console.log(`idle CPU, ms per second: ${targets.map((t) => `${t} ${idleMsPerS[t]}`).join(', ')}`);

    const runs: ApiRun[] = [];
    for (let run = 1; run <= opts.runs; run++) {
      for (const target of targets) {
        const w = await window(target, `r${run}${target[0]}${tag}`);
        const r: ApiRun = {
          target,
          run,
          messages: w.sent.length,
          failed: w.sent.length - w.ok.length,
          cpuMsPerMessage: Math.round(((w.cpu * 1000) / Math.max(1, w.ok.length)) * 100) / 100,
          ackP50Ms: w.ack.p50,
          ackP99Ms: w.ack.p99,
        };
        runs.push(r);
        console.log(
          `${target.padEnd(6)} ${opts.rate} msg/s run ${run}: CPU ${r.cpuMsPerMessage} ms/msg; ack p50 ${r.ackP50Ms} p99 ${r.ackP99Ms} ms; failed ${r.failed}`,
        );
        await sleep(1_000);
      }
    }
    const of = (t: ApiTarget, f: (r: ApiRun) => number) => runs.filter((r) => r.target === t).map(f);
    const span = (v: number[]) => `[${Math.min(...v)}-${Math.max(...v)}]`;
    const cpu = (t: ApiTarget) => of(t, (r) => r.cpuMsPerMessage);
    console.log(`\nmedian of ${opts.runs}, CPU ms per message and ack p99:`);
    for (const t of targets) {
      console.log(
        `  ${t.padEnd(8)} ${median(cpu(t))} ${span(cpu(t))} ms; ack p99 ${median(of(t, (r) => r.ackP99Ms))} ms` +
          (t === 'floor' ? '' : `; / floor ×${(median(cpu(t)) / median(cpu('floor'))).toFixed(2)}`),
      );
    }
    if (pids.baseline) {
      // Each run's pair measured back to back: the ratio's spread is smaller than the runs'.
      const pairs = cpu('bridge').map((b, i) => b / cpu('baseline')[i]!);
      console.log(
        `  bridge / baseline, per run: median ×${median(pairs).toFixed(2)} [${Math.min(...pairs).toFixed(2)}-${Math.max(...pairs).toFixed(2)}]`,
      );
    }
    agent.destroy();
    return runs;
  } finally {
    await stopChildren(children);
    await emu.close();
    await opencx.close();
    await temporal.stop();
    if (temporal.dir) rmSync(temporal.dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const opts = parseArgs(process.argv.slice(2));
  console.log(
    `== API CPU per accepted webhook, no worker: ${os.cpus().length} cores, node ${process.version}, ` +
      `${opts.rate} msg/s over ${opts.conversations} conversations, ${opts.runs} runs of ${opts.seconds} s`,
  );
  apiBench(opts)
    .then(async (runs) => {
      console.log(`written to ${await writeResult('api', { node: process.version, options: opts, runs })}`);
      process.exit(0);
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
