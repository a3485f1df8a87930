/**
 * `npm run bench:load`: open-loop paced arrivals, the same for the bridge and for the naive path.
 *
 * The bridge runs as in production, with the shipped defaults: the API in one process
 * (RUN_WORKER=false) and BENCH_WORKERS worker processes (RUN_API=false), on PostgreSQL, against a
 * Temporal dev server (or TEMPORAL_ADDRESS, e.g. `npm run temporal:server`). Messages arrive at a
 * fixed rate whatever the bridge does (a conversation's next message waits only for the previous
 * one's ack, as OpenCX sends them), spread over conversations and organizations. Prints, per rate:
 * webhook→activity and ack p50/p99, sustained throughput, the ratio to the naive path, history
 * events per message, Temporal server commits per message (PostgreSQL server) and CPU per process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { CreatioClient } from '../src/creatio/client';
import { createLogger } from '../src/logger';
import { signedHeaders } from '../src/opencx/signature';
import { EncryptionCodec, parsePayloadKeys } from '../src/temporal/codec';
import { freePort, startTemporal, type TemporalServer } from '../src/temporal/launcher';
import { SANDBOX_CLIENT, startCreatioEmulator, type CreatioEmulator } from '../src/sandbox/emulators/creatio';
import { startOpenCXEmulator } from '../src/sandbox/emulators/opencx';
import { conversationWorkflowId } from '../src/workflows/contract';
import { ev, WEBHOOK_SECRET } from '../test/bridge-harness';
import { ADMIN_TOKEN, newTestStoreConfig, testDatabaseUrl, validSettings } from '../test/helpers';
import { startNaiveBridge } from './naive-direct';
import { percentile, type Stat } from './run';

const LATENCY = Number(process.env.BENCH_CREATIO_LATENCY_MS ?? 20);
const SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 15);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);

export interface LoadScenario {
  name: string;
  perSecond: number;
  orgs: number;
  conversationsPerOrg: number;
  seconds?: number;
}

/** The rates the issue asks about: one busy organization, then ten organizations at rising load. */
export const SCENARIOS: LoadScenario[] = [
  { name: '1 org, 10 conv', perSecond: 20, orgs: 1, conversationsPerOrg: 10 },
  ...[10, 50, 100, 200].map((perSecond) => ({
    name: '10 orgs, 100 conv',
    perSecond,
    orgs: 10,
    conversationsPerOrg: 10,
  })),
  // One conversation of 1,000 messages: is message 1,000 as quick as message 10?
  { name: '1 conv of 1,000 msgs', perSecond: 10, orgs: 1, conversationsPerOrg: 1, seconds: 100 },
];

interface Sent {
  key: string;
  /** The conversation's first message: its case is created first. */
  first: boolean;
  scheduled: number;
  ackMs?: number;
  status?: number;
}

export interface LoadResult {
  scenario: LoadScenario;
  target: 'bridge' | 'naive';
  messages: number;
  e2e: { p50Ms: number; p99Ms: number; maxMs: number };
  /** The first message of each conversation (the case is created before it is logged). */
  firstMessage: { p50Ms: number; p99Ms: number };
  /** Every later message. */
  laterMessages: { p50Ms: number; p99Ms: number };
  /** One long conversation: messages 2-11 against its last ten. */
  byPosition?: { messages2to11P50Ms: number; last10P50Ms: number };
  ack: { p50Ms: number; p99Ms: number };
  sustainedPerSecond: number;
  failedSends: number;
  historyEventsPerMessage?: number;
  serverCommitsPerMessage?: number;
  cpuPercent: Record<string, number>;
  creatioCallsPerConversation?: number;
  /** The slowest first message: its end to end, its ack, and its workflow's opening events. */
  slowestFirst?: { ms: number; ackMs: number; timeline: string };
}

/**
 * The first events of a workflow's history, each with its time after `sentAt` (the message's
 * scheduled send, on this process's performance clock): where a slow first message waited.
 */
async function openingTimeline(client: Client, workflowId: string, sentAt: number): Promise<string> {
  const origin = performance.timeOrigin + sentAt;
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  if (started?.continuedExecutionRunId) return '(a later run of the conversation: not its opening)';
  const parts: string[] = [];
  for (const e of history.events ?? []) {
    const at = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
    const type = proto.api.enums.v1.EventType[e.eventType ?? 0] ?? String(e.eventType);
    const name = type.replace(/^EVENT_TYPE_/, '').toLowerCase();
    parts.push(`+${Math.round(at - origin)} ${name}`);
    if (parts.length >= 12) break;
  }
  return parts.join(', ');
}

/** CPU seconds a process has used so far (Linux /proc). */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** A bridge process started from src/main.ts with the shipped defaults and these settings. */
function startProcess(name: string, env: Record<string, string>): Promise<ChildProcess> {
  const nodeArgs = env.BENCH_NODE_ARGS?.split(' ') ?? [];
  const child = spawn(
    process.execPath,
    [...nodeArgs, '--import', 'tsx', path.join(__dirname, '..', 'src', 'main.ts')],
    {
      env: { ...process.env, LOG_LEVEL: 'info', SANDBOX: 'off', NODE_ENV: 'development', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stderr.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d.toString()}`));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/"level":(50|60)/.test(d.toString())) process.stderr.write(`[${name}] ${d.toString()}`);
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}: ${out.slice(-2000)}`)));
    const ready = setInterval(() => {
      if (env.RUN_API === 'false' ? /worker running/.test(out) : /bridge is up/.test(out)) {
        clearInterval(ready);
        resolve(child);
      }
    }, 50);
  });
}

async function serverCommits(): Promise<number | undefined> {
  const db = process.env.BENCH_TEMPORAL_PG_DB;
  if (!db) return undefined;
  const { Client: Pg } = await import('pg');
  const c = new Pg({ connectionString: testDatabaseUrl() });
  await c.connect();
  try {
    const r = await c.query<{ n: string }>(
      'SELECT xact_commit AS n FROM pg_stat_database WHERE datname = $1',
      [db],
    );
    return Number(r.rows[0]?.n);
  } finally {
    await c.end();
  }
}

/**
 * Sends the scenario's messages at its rate: message i at start + i / rate, to conversation
 * i mod N; a conversation's next message goes after the previous one's ack (OpenCX's order).
 */
async function drive(
  scenario: LoadScenario,
  send: (org: number, conv: number, key: string) => Promise<number>,
  tag: string,
): Promise<Sent[]> {
  const seconds = scenario.seconds ?? SECONDS;
  const total = Math.round(scenario.perSecond * seconds);
  const convs = scenario.orgs * scenario.conversationsPerOrg;
  const chains = Array.from({ length: convs }, () => Promise.resolve());
  const sent: Sent[] = [];
  const start = performance.now() + 100;
  for (let i = 0; i < total; i++) {
    const scheduled = start + (i * 1000) / scenario.perSecond;
    const conv = i % convs;
    const s: Sent = { key: `${tag}-${i}`, scheduled, first: i < convs };
    sent.push(s);
    chains[conv] = chains[conv]!.then(async () => {
      const wait = scheduled - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const t = performance.now();
      s.status = await send(conv % scenario.orgs, conv, s.key).catch(() => 0);
      s.ackMs = performance.now() - t;
    });
  }
  await Promise.all(chains);
  return sent;
}

async function untilLogged(logged: Map<string, number>, sent: Sent[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (sent.some((s) => s.status && s.status < 300 && !logged.has(s.key))) {
    if (Date.now() > deadline) {
      const missing = sent.filter((s) => !logged.has(s.key)).length;
      throw new Error(`${missing} messages not in Creatio ${timeoutMs} ms after the last was sent`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

function summarizeRun(
  scenario: LoadScenario,
  target: 'bridge' | 'naive',
  sent: Sent[],
  logged: Map<string, number>,
): Omit<LoadResult, 'cpuPercent'> {
  const r = (v: number) => Math.round(v * 10) / 10;
  const ok = sent.filter((s) => s.status && s.status < 300);
  const e2e = ok.map((s) => logged.get(s.key)! - s.scheduled).sort((a, b) => a - b);
  const acks = ok.map((s) => s.ackMs!).sort((a, b) => a - b);
  const of = (f: (s: Sent) => boolean) => {
    const v = ok
      .filter(f)
      .map((s) => logged.get(s.key)! - s.scheduled)
      .sort((a, b) => a - b);
    return { p50Ms: r(percentile(v, 50)), p99Ms: r(percentile(v, 99)) };
  };
  const first = Math.min(...ok.map((s) => s.scheduled));
  const last = Math.max(...ok.map((s) => logged.get(s.key)!));
  return {
    scenario,
    target,
    messages: ok.length,
    failedSends: sent.length - ok.length,
    e2e: { p50Ms: r(percentile(e2e, 50)), p99Ms: r(percentile(e2e, 99)), maxMs: r(e2e[e2e.length - 1]!) },
    ack: { p50Ms: r(percentile(acks, 50)), p99Ms: r(percentile(acks, 99)) },
    firstMessage: of((s) => s.first),
    laterMessages: of((s) => !s.first),
    ...(ok.length >= 100 &&
      scenario.orgs * scenario.conversationsPerOrg === 1 && {
        byPosition: {
          messages2to11P50Ms: of((s) => ok.indexOf(s) >= 1 && ok.indexOf(s) <= 10).p50Ms,
          last10P50Ms: of((s) => ok.indexOf(s) >= ok.length - 10).p50Ms,
        },
      }),
    sustainedPerSecond: r((ok.length / (last - first)) * 1000),
  };
}

export async function loadBench(scenarios = SCENARIOS): Promise<{ results: LoadResult[]; stats: Stat[] }> {
  const log = createLogger('error');
  const temporal: TemporalServer = await startTemporal({
    address: process.env.TEMPORAL_ADDRESS,
    cliPath: process.env.TEMPORAL_CLI_PATH,
    log,
  });
  const emu: CreatioEmulator = await startCreatioEmulator();
  emu.setFaults({ latencyMs: LATENCY });
  const opencx = await startOpenCXEmulator();
  opencx.apiKeys.add('ocx_bench_key');
  const storeConfig = await newTestStoreConfig('postgres');
  const apiPort = await freePort();
  const taskQueue = `bench-load-${randomUUID().slice(0, 8)}`;
  const common = {
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_TASK_QUEUE: taskQueue,
    DATABASE_URL: storeConfig.databaseUrl!,
    ENCRYPTION_KEY: storeConfig.key.toString('base64'),
    ADMIN_API_TOKEN: ADMIN_TOKEN,
    PORT: String(apiPort),
    DATA_DIR: path.join(__dirname, '..', '.data', 'bench-load'),
  };
  const procs: Record<string, ChildProcess> = {};
  const results: LoadResult[] = [];
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({
    connection,
    dataConverter: { payloadCodecs: [new EncryptionCodec(parsePayloadKeys(undefined, storeConfig.key))] },
  });
  try {
    procs.api = await startProcess('api', {
      ...common,
      RUN_WORKER: 'false',
      ...(process.env.BENCH_API_NODE_ARGS && { BENCH_NODE_ARGS: process.env.BENCH_API_NODE_ARGS }),
    });
    for (let w = 0; w < WORKERS; w++) {
      procs[`worker${w + 1}`] = await startProcess(`worker${w + 1}`, {
        ...common,
        RUN_API: 'false',
        PORT: String(await freePort()),
        ...(process.env.BENCH_WORKER_NODE_ARGS && { BENCH_NODE_ARGS: process.env.BENCH_WORKER_NODE_ARGS }),
      });
    }
    const api = `http://127.0.0.1:${apiPort}`;
    const maxOrgs = Math.max(...scenarios.map((s) => s.orgs));
    const orgIds: string[] = [];
    for (let o = 0; o < maxOrgs; o++) {
      const orgId = `load-${randomUUID().slice(0, 8)}`;
      const res = await fetch(`${api}/v1/orgs/${orgId}/integrations/creatio`, {
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
    const logged = new Map<string, number>();
    emu.on('added', (set: string, row: Record<string, unknown>) => {
      const m = set === 'Activity' && /\b(L\w+-\d+)\b/.exec(String(row.Title));
      if (m) logged.set(m[1]!, performance.now());
    });
    const creatio = new CreatioClient({
      instanceUrl: emu.url,
      identityServiceUrl: emu.url,
      ...SANDBOX_CLIENT,
    });
    const naive = await startNaiveBridge(creatio);
    const pids = (): Record<string, number> => ({
      ...Object.fromEntries(Object.entries(procs).map(([n, p]) => [n, p.pid!])),
      ...(temporal.pid && { temporal: temporal.pid }),
      'bench (emulators, driver, naive path)': process.pid,
    });

    /** One message to the bridge (signed webhook) or to the naive path; answers the HTTP status. */
    const sendTo = async (
      target: 'bridge' | 'naive',
      org: number,
      conv: number,
      key: string,
      tag: string,
    ) => {
      const orgId = orgIds[org]!;
      const data = ev.message(`${tag}-c${conv}`, key, key);
      if (target === 'naive') {
        const res = await fetch(`${naive.url}/webhooks/opencx`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ organization_id: orgId, data }),
        });
        await res.text();
        if (res.ok) logged.set(key, logged.get(key) ?? performance.now());
        return res.status;
      }
      const body = JSON.stringify({
        event: 'conversation.contact_response',
        organization_id: orgId,
        data,
      });
      const res = await fetch(`${api}/webhooks/opencx`, {
        method: 'POST',
        headers: signedHeaders(WEBHOOK_SECRET, body),
        body,
      });
      await res.text();
      return res.status;
    };

    // Warm-up (not measured), both paths: a running service has its workflow code loaded, its
    // tokens minted and its lookups cached.
    for (const target of ['bridge', 'naive'] as const) {
      const warm = await drive(
        { name: 'warm-up', perSecond: 20, orgs: orgIds.length, conversationsPerOrg: 1, seconds: 2 },
        (org, conv, key) => sendTo(target, org, conv, key, `LW${target[0]}`),
        `LW${target[0]}`,
      );
      await untilLogged(logged, warm, 60_000);
    }

    for (const [n, scenario] of scenarios.entries()) {
      for (const target of ['bridge', 'naive'] as const) {
        const tag = `L${n}${target[0]}${randomUUID().slice(0, 4)}`;
        const calls0 = emu.odataCalls();
        const cpu0 = Object.fromEntries(Object.entries(pids()).map(([k, pid]) => [k, cpuSeconds(pid)]));
        const commits0 = target === 'bridge' ? await serverCommits() : undefined;
        const t0 = performance.now();
        const sent = await drive(scenario, (org, conv, key) => sendTo(target, org, conv, key, tag), tag);
        await untilLogged(logged, sent, 120_000);
        const wallS = (performance.now() - t0) / 1000;
        const cpuPercent = Object.fromEntries(
          Object.entries(pids()).map(([k, pid]) => [
            k,
            Math.round(((cpuSeconds(pid) - cpu0[k]!) / wallS) * 100),
          ]),
        );
        const summary = summarizeRun(scenario, target, sent, logged);
        const convs = scenario.orgs * scenario.conversationsPerOrg;
        const result: LoadResult = {
          ...summary,
          cpuPercent,
          creatioCallsPerConversation: Math.round(((emu.odataCalls() - calls0) / convs) * 10) / 10,
        };
        if (target === 'bridge') {
          let events = 0;
          for (let c = 0; c < convs; c++) {
            const id = conversationWorkflowId(orgIds[c % scenario.orgs]!, `${tag}-c${c}`);
            const d = await client.workflow.getHandle(id).describe();
            events += d.historyLength;
          }
          result.historyEventsPerMessage = Math.round((events / summary.messages) * 10) / 10;
          // Where the slowest first message spent its time: its workflow's opening events.
          const slowest = sent
            .filter((s) => s.first && logged.has(s.key))
            .sort((a, b) => logged.get(b.key)! - b.scheduled - (logged.get(a.key)! - a.scheduled))[0];
          if (slowest) {
            const conv = sent.indexOf(slowest) % convs;
            const id = conversationWorkflowId(orgIds[conv % scenario.orgs]!, `${tag}-c${conv}`);
            result.slowestFirst = {
              ms: Math.round(logged.get(slowest.key)! - slowest.scheduled),
              ackMs: Math.round(slowest.ackMs ?? 0),
              timeline: await openingTimeline(client, id, slowest.scheduled),
            };
          }
          const commits1 = await serverCommits();
          if (commits0 !== undefined && commits1 !== undefined) {
            result.serverCommitsPerMessage = Math.round(((commits1 - commits0) / summary.messages) * 10) / 10;
          }
        }
        results.push(result);
        printResult(result);
      }
    }
    await naive.close();
  } finally {
    for (const p of Object.values(procs)) p.kill('SIGTERM');
    await Promise.all(
      Object.values(procs)
        .filter((p) => p.exitCode === null)
        .map((p) => new Promise((r) => p.once('exit', r))),
    );
    await connection.close();
    await emu.close();
    await opencx.close();
    await temporal.stop();
  }
  const stats: Stat[] = [];
  for (const r of results) {
    const s = r.scenario;
    stats.push({
      name: `${r.target}: webhook → activity, ${s.perSecond} msg/s, ${s.name}`,
      n: r.messages,
      p50Ms: r.e2e.p50Ms,
      p99Ms: r.e2e.p99Ms,
      maxMs: r.e2e.maxMs,
      perSecond: r.sustainedPerSecond,
      notes: `ack p50 ${r.ack.p50Ms} / p99 ${r.ack.p99Ms} ms`,
    });
  }
  for (let i = 0; i + 1 < results.length; i += 2) {
    const [b, n] = [results[i]!, results[i + 1]!];
    console.log(
      `${b.scenario.perSecond} msg/s, ${b.scenario.name}: bridge / naive p50 ×${(b.e2e.p50Ms / n.e2e.p50Ms).toFixed(1)}, p99 ×${(b.e2e.p99Ms / n.e2e.p99Ms).toFixed(1)}`,
    );
  }
  return { results, stats };
}

function printResult(r: LoadResult): void {
  const s = r.scenario;
  console.log(
    [
      `${r.target.padEnd(6)} ${String(s.perSecond).padStart(4)} msg/s ${s.name.padEnd(18)}`,
      `webhook→activity p50 ${r.e2e.p50Ms} p99 ${r.e2e.p99Ms} max ${r.e2e.maxMs} ms`,
      `first msg p50 ${r.firstMessage.p50Ms} p99 ${r.firstMessage.p99Ms}, later p50 ${r.laterMessages.p50Ms} p99 ${r.laterMessages.p99Ms} ms`,
      `ack p50 ${r.ack.p50Ms} p99 ${r.ack.p99Ms} ms`,
      r.byPosition
        ? `messages 2-11 p50 ${r.byPosition.messages2to11P50Ms} ms, last 10 p50 ${r.byPosition.last10P50Ms} ms`
        : '',
      `${r.sustainedPerSecond} msg/s sustained (${r.messages} msgs, ${r.failedSends} failed sends)`,
      r.historyEventsPerMessage !== undefined ? `${r.historyEventsPerMessage} history events/msg` : '',
      r.serverCommitsPerMessage !== undefined ? `${r.serverCommitsPerMessage} server commits/msg` : '',
      `${r.creatioCallsPerConversation} Creatio calls/conv`,
      r.slowestFirst
        ? `slowest first message ${r.slowestFirst.ms} ms (ack ${r.slowestFirst.ackMs} ms): ${r.slowestFirst.timeline}`
        : '',
      `CPU ${Object.entries(r.cpuPercent)
        .map(([k, v]) => `${k} ${v}%`)
        .join(', ')}`,
    ]
      .filter(Boolean)
      .join(' | '),
  );
}

if (require.main === module) {
  const only = process.env.BENCH_LOAD_RATES?.split(',').map(Number);
  loadBench(only ? SCENARIOS.filter((s) => only.includes(s.perSecond)) : SCENARIOS)
    .then(() => process.exit(0))
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
