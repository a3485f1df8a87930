/**
 * `npm run bench:load`: the bridge beside Temporal's own floor for its job and beside the naive
 * path, with the same paced arrivals, on the same Temporal server, in one run.
 *
 * Three paths get message i at t0 + i / rate, to conversation i mod N (a conversation's next
 * message waits for the previous one's ack, as OpenCX sends them):
 * - bridge: the shipped defaults in the production shape: the API in one process (RUN_WORKER=false)
 *   and one worker process (RUN_API=false), the store on PostgreSQL, the Creatio emulator answering
 *   every call after 20 ms. A message is done when its activity's POST reaches Creatio.
 * - floor: Temporal's floor (bench/floor/): one signalWithStart per message into a long-lived
 *   workflow that POSTs it once from a local activity, with its own API and worker processes. A
 *   message is done when its POST reaches the sink (which also answers after 20 ms).
 * - naive: no Temporal and nothing durable: its API process makes the same Creatio calls as the
 *   bridge straight from the request (the case at a conversation's first message, then one POST).
 *   Done as the bridge's: when the activity's POST reaches Creatio.
 *
 * Every latency and every ack is timed from the message's scheduled send (a slow ack cannot hide
 * queueing). Conversations are started before the measured window (steady state); new
 * conversations are measured apart, as a burst. Each window starts once every process is back
 * to its idle CPU (the wait is printed when it is longer than 2.5 s). Each rate runs `--runs` times (the spread is
 * printed), the three paths taking turns. Both persistence modes of Temporal are measured:
 * `file` (the embedded dev server as shipped: SQLite file with WAL, launched by
 * src/temporal/launcher.ts) and `postgres` (`npm run temporal:server`).
 *
 *   npm run bench:load                     # both modes, rates 25-100, 3 runs of 20 s each
 *   npm run bench:load -- --quick          # one-minute smoke: file mode, 50 msg/s, 1 run of 10 s
 *   npm run bench:load -- --modes=file --rates=50,100 --runs=3 --seconds=20 --burst=100
 *   npm run bench:load -- --summary=bench/results/load-<date>.json   # a run's tables again
 *
 * Prints a table per mode, the bridge's ratios and its targets against the floor, and writes
 * bench/results/load-<date>.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { createLogger } from '../src/logger';
import { conversationWorkflowId } from '../src/workflows/contract';
import { signedHeaders } from '../src/opencx/signature';
import { startCreatioEmulator, type CreatioEmulator } from '../src/sandbox/emulators/creatio';
import { startOpenCXEmulator, type OpenCXEmulator } from '../src/sandbox/emulators/opencx';
import { freePort, startTemporal, type TemporalServer } from '../src/temporal/launcher';
import { ev, WEBHOOK_SECRET } from '../test/bridge-harness';
import { ADMIN_TOKEN, newTestStoreConfig, testDatabaseUrl, validSettings } from '../test/helpers';
import { postJson } from './floor/http';
import { writeResult } from './results';
import { percentile } from './run';

const ROOT = path.join(__dirname, '..');
const LATENCY = Number(process.env.BENCH_CREATIO_LATENCY_MS ?? 20);
/** A path keeps up at a rate when its p99 stays under this and no backlog builds. */
export const P99_TARGET_MS = 250;

export type Target = 'floor' | 'bridge' | 'naive';
export type Mode = 'file' | 'postgres';

export interface LoadOptions {
  modes: Mode[];
  rates: number[];
  runs: number;
  seconds: number;
  /** New conversations in the burst scenario (started within 2 s), 0 for none. */
  burst: number;
  targets: Target[];
  orgs: number;
  conversations: number;
}

export const FULL: LoadOptions = {
  modes: ['file', 'postgres'],
  rates: [25, 50, 75, 100],
  runs: 3,
  seconds: 20,
  burst: 100,
  targets: ['floor', 'bridge', 'naive'],
  orgs: 10,
  conversations: 100,
};

export const QUICK: LoadOptions = {
  ...FULL,
  modes: ['file'],
  rates: [50],
  runs: 1,
  seconds: 10,
  burst: 20,
};

interface Dist {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function dist(values: number[]): Dist {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const r = (v: number) => Math.round(v * 10) / 10;
  return {
    n: s.length,
    p50: r(percentile(s, 50)),
    p90: r(percentile(s, 90)),
    p99: r(percentile(s, 99)),
    max: r(s[s.length - 1] ?? NaN),
  };
}

/** One measured window of one path. */
export interface RunResult {
  target: Target;
  rate: number;
  run: number;
  messages: number;
  failedSends: number;
  /** Sent and acknowledged but never done within the drain time. */
  missing: number;
  latencyMs: Dist;
  ackMs: Dist;
  firstThirdP50Ms: number;
  lastThirdP50Ms: number;
  sustainedPerSecond: number;
  /** CPU milliseconds per message, by process (raw, and net of the process's idle CPU). */
  cpuMsPerMessage: Record<string, number>;
  cpuMsPerMessageNetOfIdle: Record<string, number>;
  keepsUp: boolean;
  /** History events of all the path's conversations after the window (floor, bridge). */
  historyEvents?: number;
  /**
   * Creatio calls in the window beyond one per message done: the bridge's own checks of its
   * conversations' cases (reply timers), whichever path the window measures.
   */
  otherCreatioCalls: number;
}

export interface BurstResult {
  target: Target;
  run: number;
  conversations: number;
  firstMessageMs: Dist;
  ackMs: Dist;
  /** Creatio calls per new conversation (bridge and naive). */
  creatioCallsPerConversation?: number;
  /** CPU per new conversation, per process, over the burst and until its last first message. */
  cpuMsPerConversation: Record<string, number>;
}

export interface ModeResult {
  mode: Mode;
  runs: RunResult[];
  bursts: BurstResult[];
  idleCpuPercent: Record<string, number>;
}

export interface Sent {
  key: string;
  conv: number;
  scheduled: number;
  acked?: number;
  status?: number;
  error?: string;
}

/** CPU seconds a process has used so far (Linux /proc: utime + stime). */
export function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** PostgreSQL's processes at one moment: each one's CPU seconds and what it works for. */
export interface DbCpuSnapshot {
  /** `bucket` is unknown for a process that has exited and is not yet reaped (its title is gone). */
  byPid: Map<number, { bucket?: string; cpu: number }>;
  /** The postmaster's children that have exited and been reaped (its cutime + cstime). */
  reaped: number;
}

const bucketOf = (db: string | undefined, storeDb: string) =>
  db === 'temporal' || db === 'temporal_visibility'
    ? 'db temporal'
    : db === storeDb
      ? 'db store'
      : 'db other';

/**
 * The local PostgreSQL's processes (Linux /proc; any user's `stat` and `cmdline` are readable),
 * each under what its title says it works for:
 * - a backend (`postgres: [<cluster>: ]<user> <database> <client> <state>`), an autovacuum worker
 *   (`autovacuum worker <database>`) and a parallel worker (`parallel worker for PID <leader>`, its
 *   leader's) under its database: `db temporal` for the Temporal server's two, `db store` for the
 *   store's (`storeDb`: every backend on that database, so run nothing else on it meanwhile);
 * - `db other`: other databases, and the background processes (WAL writer, checkpointer,
 *   autovacuum launcher).
 * The postmaster is the one whose parent is not PostgreSQL. Empty when no PostgreSQL runs here.
 */
export function dbCpuSnapshot(storeDb: string): DbCpuSnapshot {
  const procs: { pid: number; ppid: number; zombie: boolean; cpu: number; reaped: number; title: string }[] =
    [];
  try {
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      try {
        const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
        if (!stat.includes(' (postgres) ')) continue;
        const f = stat.split(') ')[1]!.split(' ');
        procs.push({
          pid: Number(e),
          ppid: Number(f[1]),
          zombie: f[0] === 'Z',
          cpu: (Number(f[11]) + Number(f[12])) / 100,
          reaped: (Number(f[13]) + Number(f[14])) / 100,
          title: readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ').trim(),
        });
      } catch {
        // the process ended while it was read
      }
    }
  } catch {
    // no /proc
  }
  const pg = new Set(procs.map((p) => p.pid));
  const byPid = new Map<number, { bucket?: string; cpu: number }>();
  const leaders = new Map<number, number>();
  let reaped = 0;
  for (const p of procs) {
    if (!pg.has(p.ppid)) {
      reaped += p.reaped; // a postmaster: what its ended children used is in its children's time
      continue;
    }
    let bucket: string | undefined;
    if (!p.zombie) {
      const rest = p.title.replace(/^postgres: /, '').replace(/^[^\s:]+: /, '');
      const t = rest.split(/\s+/);
      const leader = /^parallel worker for PID (\d+)/.exec(rest);
      const vacuum = /^autovacuum worker (\S+)/.exec(rest);
      if (leader) leaders.set(p.pid, Number(leader[1]));
      else if (vacuum) bucket = bucketOf(vacuum[1], storeDb);
      else if (t.length >= 3 && /^(\[local\]|\S*\(\d+\))$/.test(t[2]!)) bucket = bucketOf(t[1], storeDb);
      else bucket = 'db other';
    }
    byPid.set(p.pid, { bucket, cpu: p.cpu });
  }
  for (const [pid, leader] of leaders) byPid.get(pid)!.bucket = byPid.get(leader)?.bucket ?? 'db other';
  return { byPid, reaped };
}

/**
 * CPU seconds PostgreSQL spent since `before`, by what it worked for. A process that ended and was
 * reaped in between (a backend, an autovacuum or parallel worker) is counted under `db ended`: the
 * postmaster's reaped time, less what the process had used before.
 */
export function dbCpuSince(before: DbCpuSnapshot, storeDb: string): Record<string, number> {
  const now = dbCpuSnapshot(storeDb);
  const out: Record<string, number> = { 'db temporal': 0, 'db store': 0, 'db other': 0, 'db ended': 0 };
  for (const [pid, p] of now.byPid) {
    const was = before.byPid.get(pid);
    const bucket = p.bucket ?? was?.bucket ?? 'db other';
    out[bucket] = out[bucket]! + p.cpu - (was?.cpu ?? 0);
  }
  out['db ended'] = now.reaped - before.reaped;
  for (const [pid, p] of before.byPid) if (!now.byPid.has(pid)) out['db ended'] -= p.cpu;
  return out;
}

/**
 * Waits until every process, and the local PostgreSQL as a whole, is back to its idle CPU (within
 * 5 % of a core, two seconds in a row), 20 s at most: a window then measures its own messages, not
 * what an earlier window left behind (a backlog after a rate a path could not carry, checks that
 * came due, Temporal's database still writing what it was given). Returns the wait.
 */
async function settle(
  pids: Record<string, number>,
  idlePerSecond: Record<string, number>,
  storeDb: string,
  maxMs = 20_000,
): Promise<number> {
  const start = performance.now();
  let quiet = 0;
  while (quiet < 2 && performance.now() - start < maxMs) {
    const c0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)]));
    const db0 = dbCpuSnapshot(storeDb);
    const t0 = performance.now();
    await sleep(1_000);
    const s = (performance.now() - t0) / 1000;
    const used = {
      ...Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p) - c0[k]!])),
      [DB]: dbTotal(dbCpuSince(db0, storeDb)),
    };
    const busy = Object.entries(used).some(([k, cpu]) => cpu / s > (idlePerSecond[k] ?? 0) + 0.05);
    quiet = busy ? 0 : quiet + 1;
  }
  return Math.round(performance.now() - start);
}

/** PostgreSQL as a whole, beside the benchmark's own processes, in the idle and settle checks. */
const DB = 'db';
const dbTotal = (byBucket: Record<string, number>) => Object.values(byBucket).reduce((a, b) => a + b, 0);

/** Seconds over which the warm-up starts the conversations. */
const WARM_UP_S = 10;

/** Starts a child Node process; resolves once a stdout line matches `ready`. */
export function startChild(
  name: string,
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
  cwd = ROOT,
): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const nodeArgs = (process.env[`BENCH_${name.toUpperCase().replace(/\W/g, '_')}_NODE_ARGS`] ?? '')
    .split(' ')
    .filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d.toString()}`));
  return new Promise((resolve, reject) => {
    let out = '';
    const onExit = (code: number | null) =>
      reject(new Error(`${name} exited with ${code} during start: ${out.slice(-2000)}`));
    child.once('exit', onExit);
    let started = false;
    child.stdout.on('data', (d: Buffer) => {
      const text = d.toString();
      if (/"level":(50|60)/.test(text)) process.stderr.write(`[${name}] ${text}`);
      if (started) return;
      if (out.length < 100_000) out += text;
      const m = ready.exec(out);
      if (m) {
        started = true;
        child.off('exit', onExit);
        out = '';
        resolve({ child, match: m });
      }
    });
  });
}

/** Stops child processes (SIGTERM) and resolves once every one has exited. */
export async function stopChildren(children: ChildProcess[]): Promise<void> {
  const running = children.filter((c) => c.exitCode === null);
  for (const c of running) c.kill('SIGTERM');
  await Promise.all(running.map((c) => new Promise((r) => c.once('exit', r))));
}

/** The Temporal server of a mode: the embedded launcher's file + WAL, or the PostgreSQL server. */
export async function startServer(mode: Mode): Promise<TemporalServer & { dir?: string }> {
  const log = createLogger('error');
  if (mode === 'file') {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-load-'));
    const server = await startTemporal({
      cliPath: process.env.TEMPORAL_CLI_PATH,
      dbFile: path.join(dir, 'temporal.sqlite'),
      log,
    });
    return { ...server, dir };
  }
  const script = path.join(ROOT, 'src', 'temporal', 'server-postgres.ts');
  await new Promise<void>((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', 'tsx', script, '--detach'], {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    c.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`temporal:server exited ${code}`))));
  });
  const port = Number(process.env.TEMPORAL_SERVER_PORT ?? 7333);
  const pidFile = path.join(
    process.env.TEMPORAL_SERVER_DIR ?? path.join(ROOT, '.cache', 'temporal-server'),
    'server.pid',
  );
  const pid = Number(readFileSync(pidFile, 'utf8'));
  const server = await startTemporal({ address: `127.0.0.1:${port}`, log });
  return {
    ...server,
    pid,
    stop: () =>
      new Promise<void>((resolve) => {
        spawn(process.execPath, ['--import', 'tsx', script, '--stop'], { cwd: ROOT, stdio: 'ignore' }).once(
          'exit',
          () => resolve(),
        );
      }),
  };
}

/**
 * Sends `total` messages at `rate`: message i at t0 + i / rate to conversation i mod `convs`;
 * each conversation's next message goes after its previous ack.
 */
export async function drive(
  total: number,
  rate: number,
  convs: number,
  key: (i: number) => string,
  send: (s: Sent) => Promise<number>,
): Promise<{ sent: Sent[]; t0: number }> {
  const chains = Array.from({ length: convs }, () => Promise.resolve());
  const sent: Sent[] = [];
  const t0 = performance.now() + 200;
  for (let i = 0; i < total; i++) {
    const s: Sent = { key: key(i), conv: i % convs, scheduled: t0 + (i * 1000) / rate };
    sent.push(s);
    chains[s.conv] = chains[s.conv]!.then(async () => {
      const wait = s.scheduled - performance.now();
      if (wait > 0) await sleep(wait);
      try {
        s.status = await send(s);
      } catch (e) {
        s.status = 0;
        s.error = e instanceof Error ? e.message : String(e);
      }
      s.acked = performance.now();
    });
  }
  await Promise.all(chains);
  return { sent, t0 };
}

/**
 * The history events of a workflow from a message's scheduled send to a little after it was done,
 * each with its time after the scheduled send: where a slow message waited.
 */
async function traceOf(
  client: Client,
  workflowId: string,
  scheduled: number,
  doneAt: number,
): Promise<string> {
  const origin = performance.timeOrigin + scheduled;
  const until = performance.timeOrigin + doneAt + 50;
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const parts: string[] = [];
  for (const e of history.events ?? []) {
    const at = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
    if (at < origin - 5 || at > until) continue;
    const type = proto.api.enums.v1.EventType[e.eventType ?? 0] ?? String(e.eventType);
    parts.push(`+${Math.round(at - origin)} ${type.replace(/^EVENT_TYPE_/, '').toLowerCase()}`);
  }
  return parts.join(', ');
}

/** The environment of a bridge process on `temporal` and the store of `storeConfig`, shipped defaults. */
export function bridgeEnv(
  temporal: TemporalServer & { dir?: string },
  storeConfig: { databaseUrl?: string; key: Buffer },
  name: string,
  root = ROOT,
): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_TASK_QUEUE: `${name}-${randomUUID().slice(0, 8)}`,
    DATABASE_URL: storeConfig.databaseUrl!,
    ENCRYPTION_KEY: storeConfig.key.toString('base64'),
    ADMIN_API_TOKEN: ADMIN_TOKEN,
    LOG_LEVEL: 'info',
    SANDBOX: 'off',
    NODE_ENV: 'development',
    DATA_DIR: temporal.dir ?? path.join(root, '.data', name),
  };
}

/** Connects `n` organizations through Test & Save, each receiving the bench's OpenCX webhooks. */
export async function connectOrgs(
  bridgeUrl: string,
  emu: CreatioEmulator,
  opencx: OpenCXEmulator,
  n: number,
  prefix: string,
): Promise<string[]> {
  const orgIds: string[] = [];
  for (let o = 0; o < n; o++) {
    const orgId = `${prefix}-${randomUUID().slice(0, 8)}`;
    const res = await fetch(`${bridgeUrl}/v1/orgs/${orgId}/integrations/creatio`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(
        validSettings(emu, {
          opencx: { apiBaseUrl: opencx.url, apiKey: 'ocx_bench_key', webhookSecret: WEBHOOK_SECRET },
        }),
      ),
    });
    if (res.status !== 201) throw new Error(`connect failed: ${await res.text()}`);
    orgIds.push(orgId);
  }
  return orgIds;
}

/** POSTs one signed contact message to the bridge's OpenCX webhook; resolves with the status. */
export function postMessage(
  bridgeUrl: string,
  agent: http.Agent,
  orgId: string,
  session: string,
  key: string,
): Promise<number> {
  const body = JSON.stringify({
    event: 'conversation.contact_response',
    organization_id: orgId,
    data: ev.message(session, key, key),
  });
  return new Promise<number>((resolve, reject) => {
    const rq = http.request(
      `${bridgeUrl}/webhooks/opencx`,
      { method: 'POST', agent, headers: signedHeaders(WEBHOOK_SECRET, body) },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    rq.on('error', reject);
    rq.end(body);
  });
}

export async function untilDone(done: Map<string, number>, sent: Sent[], timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  const ok = sent.filter((s) => s.status && s.status < 300);
  while (ok.some((s) => !done.has(s.key)) && Date.now() < deadline) await sleep(20);
  return ok.filter((s) => !done.has(s.key)).length;
}

export async function loadBench(opts: LoadOptions): Promise<ModeResult[]> {
  const results: ModeResult[] = [];
  for (const mode of opts.modes) results.push(await benchMode(mode, opts));
  return results;
}

async function benchMode(mode: Mode, opts: LoadOptions): Promise<ModeResult> {
  console.log(
    `\n== ${mode === 'file' ? 'Temporal dev server, SQLite file + WAL (the embedded default)' : 'Temporal server on PostgreSQL'}; ` +
      `${os.cpus().length} cores, node ${process.version}; Creatio and sink answer after ${LATENCY} ms`,
  );
  const temporal = await startServer(mode);
  const children: ChildProcess[] = [];
  let emu: CreatioEmulator | undefined;
  let opencx: OpenCXEmulator | undefined;
  let sink: http.Server | undefined;
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address: temporal.address });
    const client = new Client({ connection });
    emu = await startCreatioEmulator();
    emu.setFaults({ latencyMs: LATENCY });
    opencx = await startOpenCXEmulator();
    opencx.apiKeys.add('ocx_bench_key');

    // ---- what is done, and when: as its POST arrives, before the remote's 20 ms, for every path:
    // the activity's at Creatio (bridge, naive), the floor's at the sink
    const done = new Map<string, number>();
    emu.on('received', (method: string, pathname: string, body: string) => {
      const m = method === 'POST' && pathname.endsWith('/Activity') && /\b(L\w+-\d+)\b/.exec(body);
      if (m && !done.has(m[1]!)) done.set(m[1]!, performance.now());
    });
    sink = http.createServer((rq, rs) => {
      const id = decodeURIComponent((rq.url ?? '').replace(/^\/m\//, ''));
      if (!done.has(id)) done.set(id, performance.now());
      rq.resume();
      rq.on('end', () => setTimeout(() => rs.writeHead(201).end('{}'), LATENCY));
    });
    sink.keepAliveTimeout = 120_000;
    await new Promise<void>((r) => sink!.listen(0, '127.0.0.1', r));
    const sinkAddr = sink.address();
    const sinkUrl = `http://127.0.0.1:${typeof sinkAddr === 'object' && sinkAddr ? sinkAddr.port : 0}`;

    // ---- the bridge: API and worker processes, the shipped defaults
    const storeConfig = await newTestStoreConfig('postgres');
    const storeDb = new URL(testDatabaseUrl()).pathname.slice(1);
    const apiPort = await freePort();
    const common = bridgeEnv(temporal, storeConfig, 'bench-load');
    const main = path.join(ROOT, 'src', 'main.ts');
    const pids: Record<string, number> = { temporal: temporal.pid ?? NaN, bench: process.pid };
    const api = await startChild(
      'api',
      [main],
      { ...common, PORT: String(apiPort), RUN_WORKER: 'false' },
      /bridge is up/,
    );
    children.push(api.child);
    pids['bridge api'] = api.child.pid!;
    const worker = await startChild(
      'worker',
      [main],
      { ...common, PORT: String(await freePort()), RUN_API: 'false' },
      /worker running/,
    );
    children.push(worker.child);
    pids['bridge worker'] = worker.child.pid!;

    // ---- the floor's worker and the ingress of the floor and the naive path
    const refEnv = {
      BENCH_TEMPORAL: temporal.address,
      BENCH_TASK_QUEUE: `floor-${randomUUID().slice(0, 8)}`,
      BENCH_SINK: sinkUrl,
      BENCH_CREATIO: emu.url,
    };
    const proc = path.join(ROOT, 'bench', 'floor', 'process.ts');
    const fw = await startChild('floor-worker', [proc, 'floor-worker'], refEnv, /READY/);
    children.push(fw.child);
    pids['floor worker'] = fw.child.pid!;
    const ing = await startChild('ingress', [proc, 'ingress'], refEnv, /READY (\d+)/);
    children.push(ing.child);
    pids['floor/naive ingress'] = ing.child.pid!;
    const ingressUrl = `http://127.0.0.1:${ing.match[1]}`;

    // ---- organizations and the three ways to send a message
    const bridgeUrl = `http://127.0.0.1:${apiPort}`;
    const orgIds = await connectOrgs(bridgeUrl, emu, opencx, opts.orgs, 'load');
    const agent = new http.Agent({ keepAlive: true, maxSockets: opts.conversations + 16 });
    const bridgeAgent = new http.Agent({ keepAlive: true, maxSockets: opts.conversations + 16 });
    const send: Record<Target, (session: string, conv: number, s: Sent) => Promise<number>> = {
      floor: (session, _conv, s) => postJson(`${ingressUrl}/floor`, { wid: session, id: s.key }, agent),
      naive: (session, conv, s) =>
        postJson(`${ingressUrl}/naive`, { org: orgIds[conv % opts.orgs]!, session, id: s.key }, agent),
      bridge: (session, conv, s) =>
        postMessage(bridgeUrl, bridgeAgent, orgIds[conv % opts.orgs]!, session, s.key),
    };
    const runTag = randomUUID().slice(0, 4);
    const session = (target: Target, conv: number, set = 'w') => `${runTag}-${target}-${set}${conv}`;

    /** One window of `rate` over the warm conversations (or new ones: `set`), measured. */
    const measure = async (
      target: Target,
      rate: number,
      total: number,
      convs: number,
      tag: string,
      set = 'w',
    ) => {
      const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)]));
      const db0 = dbCpuSnapshot(storeDb);
      const w0 = performance.now();
      const { sent, t0 } = await drive(
        total,
        rate,
        convs,
        (i) => `${tag}-${i}`,
        (s) => send[target](session(target, s.conv, set), s.conv, s),
      );
      const missing = await untilDone(done, sent, 120_000);
      const wallS = (performance.now() - w0) / 1000;
      const cpu = {
        ...Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p) - cpu0[k]!])),
        ...dbCpuSince(db0, storeDb),
      };
      return { sent, t0, missing, wallS, cpu };
    };

    /** The workflow of a path's conversation (the floor's is named by its session alone). */
    const workflowOf = (target: Target, conv: number, set = 'w') =>
      target === 'floor'
        ? session(target, conv, set)
        : conversationWorkflowId(orgIds[conv % opts.orgs]!, session(target, conv, set));
    /** With BENCH_TRACE: where the median and the slowest of `finished` waited (their workflows' events). */
    const printTraces = async (target: Target, finished: Sent[], set: string) => {
      if (!process.env.BENCH_TRACE || target === 'naive') return;
      const lat = (s: Sent) => done.get(s.key)! - s.scheduled;
      const byLat = [...finished].sort((a, b) => lat(a) - lat(b));
      for (const s of [byLat[Math.floor(byLat.length / 2)], byLat[byLat.length - 1]]) {
        if (!s) continue;
        console.log(
          `       ${Math.round(lat(s))} ms, ack ${Math.round(s.acked! - s.scheduled)} ms: ${await traceOf(client, workflowOf(target, s.conv, set), s.scheduled, done.get(s.key)!)}`,
        );
      }
    };

    // ---- warm-up, not measured: every path starts its conversations (and the bridge its cases),
    // spread over WARM_UP_S as real conversations' starts are. All started in the same second,
    // the bridge's conversations would also run their first reply check (REPLY_CHECK_EVERY after
    // the first message) in the same second, a burst no real traffic makes, inside whichever run
    // it meets. Spread, those checks still fall in the runs and count in their CPU.
    for (const target of opts.targets) {
      const r = await measure(
        target,
        opts.conversations / WARM_UP_S,
        opts.conversations,
        opts.conversations,
        `LW${target[0]}${runTag}`,
      );
      const failed = r.sent.filter((s) => !s.status || s.status >= 300);
      if (failed.length > 0 || r.missing > 0) {
        throw new Error(
          `${target} warm-up: ${failed.length} sends refused (${failed[0]?.error ?? failed[0]?.status}), ${r.missing} never done`,
        );
      }
    }
    await sleep(2_000);
    const idle0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)]));
    const idleDb0 = dbCpuSnapshot(storeDb);
    const idleT = performance.now();
    await sleep(5_000);
    const idleS = (performance.now() - idleT) / 1000;
    const idlePerSecond: Record<string, number> = {
      ...Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, (cpuSeconds(p) - idle0[k]!) / idleS])),
      [DB]: dbTotal(dbCpuSince(idleDb0, storeDb)) / idleS,
    };
    const idleCpuPercent = Object.fromEntries(
      Object.entries(idlePerSecond).map(([k, v]) => [k, Math.round(v * 100)]),
    );
    console.log(`idle CPU, % of a core: ${fmt(idleCpuPercent)}`);

    // ---- steady state: every rate, `runs` times, the paths taking turns
    const runs: RunResult[] = [];
    for (const rate of opts.rates) {
      for (let run = 1; run <= opts.runs; run++) {
        for (const target of opts.targets) {
          const tag = `L${target[0]}${rate}r${run}${runTag}`;
          const total = Math.round(rate * opts.seconds);
          const settled = await settle(pids, idlePerSecond, storeDb);
          if (settled > 2_500) console.log(`       (settled for ${settled} ms first)`);
          const calls0 = emu.odataCalls();
          const r = await measure(target, rate, total, opts.conversations, tag);
          await sleep(LATENCY * 2); // the last POST is done as it arrives, and counted as it is answered
          const calls = emu.odataCalls() - calls0;
          const ok = r.sent.filter((s) => s.status && s.status < 300);
          const fin = ok.filter((s) => done.has(s.key));
          const lat = (s: Sent) => done.get(s.key)! - s.scheduled;
          const third = Math.floor(fin.length / 3);
          const lastDone = Math.max(...fin.map((s) => done.get(s.key)!));
          const perMsg = (cpuS: number) => Math.round(((cpuS * 1000) / Math.max(1, fin.length)) * 100) / 100;
          const res: RunResult = {
            target,
            rate,
            run,
            messages: r.sent.length,
            failedSends: r.sent.length - ok.length,
            missing: r.missing,
            latencyMs: dist(fin.map(lat)),
            ackMs: dist(ok.map((s) => s.acked! - s.scheduled)),
            firstThirdP50Ms: dist(fin.slice(0, third).map(lat)).p50,
            lastThirdP50Ms: dist(fin.slice(-third).map(lat)).p50,
            sustainedPerSecond: Math.round((fin.length / ((lastDone - r.t0) / 1000)) * 10) / 10,
            cpuMsPerMessage: Object.fromEntries(Object.entries(r.cpu).map(([k, v]) => [k, perMsg(v)])),
            cpuMsPerMessageNetOfIdle: Object.fromEntries(
              Object.entries(r.cpu).map(([k, v]) => [
                k,
                perMsg(Math.max(0, v - (idlePerSecond[k] ?? 0) * r.wallS)),
              ]),
            ),
            keepsUp: false,
            otherCreatioCalls: calls - (target === 'floor' ? 0 : fin.length),
          };
          res.keepsUp =
            res.failedSends === 0 &&
            res.missing === 0 &&
            res.latencyMs.p99 <= P99_TARGET_MS &&
            res.sustainedPerSecond >= rate * 0.95 &&
            res.lastThirdP50Ms <= res.firstThirdP50Ms * 2 + 50;
          if (target !== 'naive') {
            let events = 0;
            for (let c = 0; c < opts.conversations; c++)
              events += Number(
                (
                  await client.workflowService.describeWorkflowExecution({
                    namespace: 'default',
                    execution: { workflowId: workflowOf(target, c) },
                  })
                ).workflowExecutionInfo?.historyLength ?? 0,
              );
            res.historyEvents = events;
          }
          runs.push(res);
          printRun(res);
          await printTraces(target, fin, 'w');
        }
      }
    }

    // ---- new conversations: a burst started within 2 s, each conversation's first message
    const bursts: BurstResult[] = [];
    if (opts.burst > 0) {
      for (let run = 1; run <= opts.runs; run++) {
        for (const target of opts.targets) {
          const settled = await settle(pids, idlePerSecond, storeDb);
          if (settled > 2_500) console.log(`       (settled for ${settled} ms first)`);
          const calls0 = emu.odataCalls();
          const tag = `L${target[0]}b${run}${runTag}`;
          const r = await measure(target, opts.burst / 2, opts.burst, opts.burst, tag, `b${run}-`);
          await sleep(LATENCY * 2);
          const ok = r.sent.filter((s) => s.status && s.status < 300);
          const b: BurstResult = {
            target,
            run,
            conversations: opts.burst,
            firstMessageMs: dist(
              ok.filter((s) => done.has(s.key)).map((s) => done.get(s.key)! - s.scheduled),
            ),
            ackMs: dist(ok.map((s) => s.acked! - s.scheduled)),
            ...(target !== 'floor' && {
              creatioCallsPerConversation: Math.round(((emu.odataCalls() - calls0) / opts.burst) * 10) / 10,
            }),
            cpuMsPerConversation: Object.fromEntries(
              Object.entries(r.cpu).map(([k, v]) => [k, Math.round((v * 1000 * 10) / opts.burst) / 10]),
            ),
          };
          bursts.push(b);
          await printTraces(
            target,
            ok.filter((s) => done.has(s.key)),
            `b${run}-`,
          );
          console.log(
            `${target.padEnd(6)} burst of ${opts.burst} new conversations in 2 s (run ${run}): first message p50 ${b.firstMessageMs.p50} p99 ${b.firstMessageMs.p99} max ${b.firstMessageMs.max} ms; ack p99 ${b.ackMs.p99} ms` +
              (b.creatioCallsPerConversation !== undefined
                ? `; ${b.creatioCallsPerConversation} Creatio calls each`
                : '') +
              `; CPU ms per conversation ${fmt(b.cpuMsPerConversation)}`,
          );
        }
      }
    }
    const result: ModeResult = { mode, runs, bursts, idleCpuPercent };
    printSummary(result, opts);
    printTargets(result, opts);
    agent.destroy();
    bridgeAgent.destroy();
    return result;
  } finally {
    await stopChildren(children);
    sink?.closeAllConnections();
    sink?.close();
    await connection?.close();
    await emu?.close();
    await opencx?.close();
    await temporal.stop();
    if (temporal.dir) rmSync(temporal.dir, { recursive: true, force: true });
  }
}

const fmt = (o: Record<string, number>) =>
  Object.entries(o)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');

function printRun(r: RunResult): void {
  console.log(
    `${r.target.padEnd(6)} ${String(r.rate).padStart(3)} msg/s run ${r.run}: p50 ${r.latencyMs.p50} p99 ${r.latencyMs.p99} max ${r.latencyMs.max} ms; ack p99 ${r.ackMs.p99} ms; ` +
      `${r.sustainedPerSecond} msg/s sustained; thirds p50 ${r.firstThirdP50Ms}/${r.lastThirdP50Ms} ms; ` +
      `failed ${r.failedSends}, missing ${r.missing}; ${r.keepsUp ? 'keeps up' : 'FALLS BEHIND'}; ` +
      `other Creatio calls ${r.otherCreatioCalls}; CPU ms/msg ${fmt(r.cpuMsPerMessage)}`,
  );
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
};
/** "median [min-max]" over the runs. */
const spread = (v: number[]) =>
  v.length <= 1 ? String(v[0] ?? 'n/a') : `${median(v)} [${Math.min(...v)}-${Math.max(...v)}]`;
/** A difference in ms, with its sign. */
const signed = (d: number) => `${d < 0 ? '−' : '+'}${Math.abs(Math.round(d))}`;
const ratio = (a: number, b: number) => (b > 0 ? `×${(a / b).toFixed(2)}` : 'n/a');

/**
 * The database's CPU per message, bridge / floor: Temporal's databases and the store's. With the
 * embedded server, Temporal's data is in its own process, and only the store's cost is printed.
 */
function dbRatio(b: RunResult[], f: RunResult[]): string {
  const db = (r: RunResult) => (r.cpuMsPerMessage['db temporal'] ?? 0) + (r.cpuMsPerMessage['db store'] ?? 0);
  const store = median(b.map((r) => r.cpuMsPerMessage['db store'] ?? 0));
  return median(f.map(db)) >= 0.5
    ? `database ${ratio(median(b.map(db)), median(f.map(db)))} (the store's part ${store} ms)`
    : `the store's database ${store} ms`;
}

/** A path's runs at a rate. */
const runsOf = (m: ModeResult, t: Target, rate: number) =>
  m.runs.filter((r) => r.target === t && r.rate === rate);

/** The processes whose CPU is a path's own (the Temporal server and its database included). */
const PROCESSES_OF: Record<Target, string[]> = {
  floor: ['temporal', 'floor worker', 'floor/naive ingress', 'db temporal'],
  bridge: ['temporal', 'bridge worker', 'bridge api', 'db temporal', 'db store'],
  naive: ['floor/naive ingress'],
};

/**
 * The burst target: the bridge's first-message p99 against twice the floor's plus the case's own
 * Creatio calls (those before the activity's POST, which is done as it arrives).
 */
function burstBudget(m: ModeResult): { p99: number; budget: number; calls: number } | undefined {
  const bridge = m.bursts.filter((x) => x.target === 'bridge');
  const floor = m.bursts.filter((x) => x.target === 'floor');
  if (bridge.length === 0 || floor.length === 0) return undefined;
  const calls = median(bridge.map((r) => r.creatioCallsPerConversation ?? 0)) - 1;
  return {
    p99: median(bridge.map((r) => r.firstMessageMs.p99)),
    budget: Math.round(2 * median(floor.map((r) => r.firstMessageMs.p99)) + calls * LATENCY),
    calls,
  };
}

/** Per rate: the three paths side by side (median over runs, [min-max]), then the bridge's ratios. */
export function printSummary(m: ModeResult, opts: LoadOptions): void {
  console.log(
    `\n-- ${m.mode}: median of ${opts.runs} run(s) [min-max]; latency and ack from the scheduled send`,
  );
  const of = (t: Target, rate: number) => runsOf(m, t, rate);
  const capacity = capacities(m, opts);
  for (const rate of opts.rates) {
    for (const t of opts.targets) {
      const rs = of(t, rate);
      if (rs.length === 0) continue;
      const cpu = PROCESSES_OF[t]
        .map((p) => `${p} ${median(rs.map((r) => r.cpuMsPerMessage[p] ?? NaN))}`)
        .join(', ');
      // All of the path's processes together, per run, then the median.
      const all = median(rs.map((r) => PROCESSES_OF[t].reduce((n, p) => n + (r.cpuMsPerMessage[p] ?? 0), 0)));
      console.log(
        `${String(rate).padStart(3)} msg/s ${t.padEnd(6)} p50 ${spread(rs.map((r) => r.latencyMs.p50))} | p99 ${spread(rs.map((r) => r.latencyMs.p99))} | ack p99 ${spread(rs.map((r) => r.ackMs.p99))} | ${rs.filter((r) => r.keepsUp).length}/${rs.length} keep up | CPU ms/msg ${cpu}, all ${Math.round(all * 100) / 100}`,
      );
    }
    const b = of('bridge', rate);
    const f = of('floor', rate);
    const n = of('naive', rate);
    if (b.length > 0 && f.length > 0) {
      const bm = (sel: (r: RunResult) => number, rs: RunResult[]) => median(rs.map(sel));
      const cpuRatio = (bp: string, fp: string) =>
        ratio(
          bm((r) => r.cpuMsPerMessage[bp]!, b),
          bm((r) => r.cpuMsPerMessage[fp]!, f),
        );
      console.log(
        `          bridge / floor: p50 ${ratio(
          bm((r) => r.latencyMs.p50, b),
          bm((r) => r.latencyMs.p50, f),
        )}, p99 ${ratio(
          bm((r) => r.latencyMs.p99, b),
          bm((r) => r.latencyMs.p99, f),
        )}, ` +
          `ack p99 ${signed(bm((r) => r.ackMs.p99, b) - bm((r) => r.ackMs.p99, f))} ms; CPU per message: worker ${cpuRatio('bridge worker', 'floor worker')}, API ${cpuRatio('bridge api', 'floor/naive ingress')}, server ${cpuRatio('temporal', 'temporal')}, ${dbRatio(b, f)}` +
          // The naive path's latency is its own code's (about a millisecond, done as its POST
          // arrives): a ratio to it says nothing, the difference is what durability adds.
          (n.length > 0
            ? `; bridge − naive: p50 ${signed(bm((r) => r.latencyMs.p50, b) - bm((r) => r.latencyMs.p50, n))} ms, p99 ${signed(bm((r) => r.latencyMs.p99, b) - bm((r) => r.latencyMs.p99, n))} ms`
            : ''),
      );
    }
  }
  const cap = (t: Target) => (capacity[t] === undefined ? `< ${opts.rates[0]}` : `≥ ${capacity[t]}`);
  if (opts.rates.length > 0)
    console.log(
      `capacity (highest rate measured with p99 ≤ ${P99_TARGET_MS} ms and no backlog): ${opts.targets.map((t) => `${t} ${cap(t)} msg/s`).join(', ')}` +
        (capacity.bridge !== undefined && capacity.floor !== undefined
          ? `; bridge / floor ${ratio(capacity.bridge, capacity.floor)} (${capacity.floor === opts.rates[opts.rates.length - 1] ? 'the floor kept up at every rate measured: a lower bound of its capacity' : 'measured'})`
          : ''),
    );
  if (m.bursts.length > 0) {
    const bb = (t: Target) => m.bursts.filter((b) => b.target === t);
    for (const t of opts.targets) {
      const rs = bb(t);
      if (rs.length === 0) continue;
      console.log(
        `burst of ${rs[0]!.conversations} new conversations in 2 s, ${t.padEnd(6)}: first message p50 ${spread(rs.map((r) => r.firstMessageMs.p50))} | p99 ${spread(rs.map((r) => r.firstMessageMs.p99))} | ack p99 ${spread(rs.map((r) => r.ackMs.p99))}` +
          (rs[0]!.creatioCallsPerConversation !== undefined
            ? ` | ${median(rs.map((r) => r.creatioCallsPerConversation!))} Creatio calls each`
            : ''),
      );
    }
    const burst = burstBudget(m);
    if (burst)
      console.log(
        `          bridge first message p99 ${burst.p99} ms against 2 × the floor's start p99 + ${burst.calls} Creatio calls before the activity × ${LATENCY} ms = ${burst.budget} ms`,
      );
  }
}

/** Per path, the highest rate at which most runs kept up, and every lower rate did too. */
function capacities(m: ModeResult, opts: LoadOptions): Partial<Record<Target, number>> {
  const capacity: Partial<Record<Target, number>> = {};
  for (const rate of opts.rates) {
    for (const t of opts.targets) {
      const rs = runsOf(m, t, rate);
      const majority = rs.length > 0 && rs.filter((r) => r.keepsUp).length * 2 > rs.length;
      if (
        majority &&
        (capacity[t] === undefined ? rate === opts.rates[0] : capacity[t] === prev(opts.rates, rate))
      )
        capacity[t] = rate;
    }
  }
  return capacity;
}

/** The rate the latency and ack targets are set at. */
export const TARGET_RATE = 50;

/**
 * The issue's targets, bridge against floor within this run. Where the floor itself falls behind
 * at 50 msg/s, the latency and ack targets compare two backlogs: they are also read at the floor's
 * capacity (docs/decisions/0028-load-and-the-floor.md).
 */
export function targetLines(m: ModeResult, opts: LoadOptions): string[] {
  const of = (t: Target, rate: number) => runsOf(m, t, rate);
  const mark = (ok: boolean) => (ok ? '✓' : '✗');
  const lines: string[] = [];
  const capacity = capacities(m, opts);
  if (opts.targets.includes('bridge') && opts.targets.includes('floor')) {
    const b = capacity.bridge ?? 0;
    const f = capacity.floor;
    if (f !== undefined)
      lines.push(
        `capacity at least ×0.7 the floor's: ${ratio(b, f)} (bridge ${capacity.bridge ?? `< ${opts.rates[0]}`}, floor ${f} msg/s) ${mark(b >= 0.7 * f)}`,
      );
    else
      lines.push(
        `capacity: the floor kept up at no rate measured (bridge ${capacity.bridge ?? `< ${opts.rates[0]}`} msg/s)`,
      );
    const rates = [TARGET_RATE, ...(f !== undefined && f < TARGET_RATE ? [f] : [])].filter(
      (r) => of('bridge', r).length > 0 && of('floor', r).length > 0,
    );
    for (const rate of rates) {
      const bs = of('bridge', rate);
      const fs = of('floor', rate);
      const at = rate === TARGET_RATE ? `at ${rate} msg/s` : `at the floor's capacity, ${rate} msg/s`;
      const kept = `kept up: floor ${fs.filter((r) => r.keepsUp).length}/${fs.length}, bridge ${bs.filter((r) => r.keepsUp).length}/${bs.length}`;
      const p99 = [median(bs.map((r) => r.latencyMs.p99)), median(fs.map((r) => r.latencyMs.p99))] as const;
      const ack = [median(bs.map((r) => r.ackMs.p99)), median(fs.map((r) => r.ackMs.p99))] as const;
      const cpu = (bp: string, fp: string) =>
        [
          median(bs.map((r) => r.cpuMsPerMessage[bp] ?? NaN)),
          median(fs.map((r) => r.cpuMsPerMessage[fp] ?? NaN)),
        ] as const;
      const w = cpu('bridge worker', 'floor worker');
      const a = cpu('bridge api', 'floor/naive ingress');
      lines.push(
        `${at} (${kept}):`,
        `  p99 at most ×2 the floor's: ${ratio(p99[0], p99[1])} (${p99[0]} against ${p99[1]} ms) ${mark(p99[0] <= 2 * p99[1])}`,
        `  ack p99 at most the floor's + 20 ms: ${signed(ack[0] - ack[1])} ms (${ack[0]} against ${ack[1]} ms) ${mark(ack[0] <= ack[1] + 20)}`,
        `  worker CPU per message at most ×1.3 the floor's: ${ratio(w[0], w[1])} ${mark(w[0] <= 1.3 * w[1])}`,
        `  API CPU per message at most ×1.3 the floor's ingress: ${ratio(a[0], a[1])} ${mark(a[0] <= 1.3 * a[1])}`,
      );
    }
    const burst = burstBudget(m);
    if (burst)
      lines.push(
        `burst: first message p99 at most 2 × the floor's + the case's Creatio calls: ${burst.p99} against ${burst.budget} ms ${mark(burst.p99 <= burst.budget)}`,
      );
  }
  return lines;
}

export function printTargets(m: ModeResult, opts: LoadOptions): void {
  const lines = targetLines(m, opts);
  if (lines.length > 0) console.log(`targets, ${m.mode}:\n${lines.map((l) => `  ${l}`).join('\n')}`);
}

function prev(rates: number[], rate: number): number | undefined {
  const i = rates.indexOf(rate);
  return i > 0 ? rates[i - 1] : undefined;
}

/** `--quick`, `--modes=file,postgres`, `--rates=50,100`, `--runs=3`, `--seconds=20`, `--burst=100`, `--targets=…`. */
export function parseArgs(argv: string[]): LoadOptions {
  const o: LoadOptions = argv.includes('--quick') ? { ...QUICK } : { ...FULL };
  for (const a of argv) {
    const [k, v] = a.replace(/^--/, '').split('=');
    if (v === undefined) continue;
    const list = v.split(',').filter(Boolean);
    if (k === 'modes') o.modes = list as Mode[];
    else if (k === 'rates') o.rates = list.map(Number);
    else if (k === 'targets') o.targets = list as Target[];
    else if (k === 'runs' || k === 'seconds' || k === 'burst' || k === 'orgs' || k === 'conversations')
      o[k] = Number(v);
    else throw new Error(`unknown option --${k}`);
  }
  return o;
}

/** `--summary=<bench/results/load-….json>`: the summary and the targets of a run written before. */
function printSaved(file: string): void {
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { options: LoadOptions; modes: ModeResult[] };
  console.log(`${file}:`);
  for (const m of saved.modes) {
    printSummary(m, saved.options);
    printTargets(m, saved.options);
  }
}

const summaryOf = process.argv.find((a) => a.startsWith('--summary='))?.slice('--summary='.length);
if (require.main === module && summaryOf) {
  try {
    printSaved(summaryOf);
  } catch (err) {
    console.error(`--summary=${summaryOf}: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
} else if (require.main === module) {
  const opts = parseArgs(process.argv.slice(2));
  loadBench(opts)
    .then(async (modes) => {
      const machine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version };
      const file = await writeResult('load', {
        machine,
        options: opts,
        creatioLatencyMs: LATENCY,
        modes,
      });
      console.log(`\nwritten to ${file}`);
      process.exit(0);
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
