/**
 * `npm run chaos`: 1,000 messages over 50 conversations in 5 organizations, through the faults a
 * production bridge meets, with the API and the worker as separate processes of the real entry
 * point (src/main.ts, shipped defaults). Every figure is counted from the emulators' records, not
 * from the bridge's own state. Loopback only; bounded in time (about 10 minutes).
 *
 * Faults: Creatio answering 5xx to 30 % of OData calls (half of the failed writes committed first),
 * 3-second 429 windows with Retry-After every 45 s, tokens expiring every 20 s, a 5-minute Creatio outage; OpenCX
 * accepting a send and then failing; two kill -9 of the worker process; one Temporal restart; a
 * 30-second database outage. Prints a summary and writes bench/results/chaos-latest.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import { createLogger } from '../src/logger';
import { signedHeaders } from '../src/opencx/signature';
import { IDS } from '../src/sandbox/emulators/creatio-schema';
import { SANDBOX_CLIENT, startCreatioEmulator, type CreatioEmulator } from '../src/sandbox/emulators/creatio';
import { startOpenCXEmulator, type OpenCXEmulator } from '../src/sandbox/emulators/opencx';
import { freePort, PROJECT_ROOT, startTemporal, type TemporalServer } from '../src/temporal/launcher';
import { TcpProxy } from '../test/fixtures/tcp-proxy';

const ORGS = Number(process.env.CHAOS_ORGS ?? 5);
const CONVERSATIONS = Number(process.env.CHAOS_CONVERSATIONS ?? 50);
const MESSAGES_PER_CONVERSATION = Number(process.env.CHAOS_MESSAGES ?? 20);
/** Seconds over which the messages are sent (paced, as conversations really arrive). */
/** Every time and duration of the run is multiplied by this (a smoke run: 0.2; the benchmark: 1). */
const SCALE = Number(process.env.CHAOS_TIME_SCALE ?? 1);
const LOAD_SECONDS = 400 * SCALE;
const CREATIO_OUTAGE_SECONDS = 300 * SCALE;
const STORE_OUTAGE_SECONDS = 30 * SCALE;
/** How long each throttling window lasts (every call answered 429 meanwhile). */
const THROTTLE_SECONDS = 3;
/** Longest wait for the backlog after the last fault before counting what is missing as lost. */
const DRAIN_DEADLINE_MS = 240_000;
const WEBHOOK_SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const ADMIN_TOKEN = randomBytes(24).toString('hex');

const log = createLogger(process.env.LOG_LEVEL ?? 'warn');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const at = () => ((Date.now() - t0) / 1000).toFixed(1);
const say = (msg: string) => console.log(`[${at()}s] ${msg}`);

interface Sent {
  token: string;
  conv: number;
  seq: number;
  ackedAt: number;
}

/**
 * Ack → in Creatio, by when the message was accepted (windows of a tenth of the run): whether the
 * lag is steady under the background faults or follows the named faults.
 */
function lagProfile(
  sent: Sent[],
  seenAt: Map<string, number>,
  startedAt: number,
  faults: Fault[],
): { fromS: number; messages: number; p50S: number | null; maxS: number | null; faults: string }[] {
  if (sent.length === 0) return [];
  const end = Math.max(...sent.map((s) => s.ackedAt));
  const width = Math.max(1, (end - startedAt) / 10);
  const rows = [];
  for (let w = 0; w < 10; w++) {
    const from = startedAt + w * width;
    const to = w === 9 ? end + 1 : from + width;
    const lags = sent
      .filter((s) => s.ackedAt >= from && s.ackedAt < to && seenAt.has(s.token))
      .map((s) => (seenAt.get(s.token)! - s.ackedAt) / 1000)
      .sort((a, b) => a - b);
    rows.push({
      fromS: Math.round((from - startedAt) / 1000),
      messages: lags.length,
      p50S: lags.length ? Math.round(lags[Math.floor(lags.length / 2)]! * 10) / 10 : null,
      maxS: lags.length ? Math.round(lags[lags.length - 1]! * 10) / 10 : null,
      faults: faults
        .filter((f) => f.start < to && f.end >= from)
        .map((f) => f.name)
        .join(', '),
    });
  }
  return rows;
}

interface Fault {
  name: string;
  start: number;
  end: number;
}

/**
 * A bridge process (api or worker) of the real entry point, kept running as a supervisor
 * (systemd, Kubernetes) would: whenever it exits, it is started again 2 s later.
 */
class BridgeProcess {
  child: ChildProcess | undefined;
  starts = 0;
  private stopped = false;
  private up: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly env: Record<string, string>,
  ) {}

  /** Starts it, and resolves once it says it is ready (after any restarts that takes). */
  start(): Promise<void> {
    this.up = this.spawnUntilReady();
    return this.up;
  }

  /** Resolves once the process is ready again. */
  ready(): Promise<void> {
    return this.up;
  }

  private async spawnUntilReady(): Promise<void> {
    for (;;) {
      try {
        await this.spawnOnce();
        return;
      } catch (err) {
        say(`${this.name}: ${err instanceof Error ? err.message : String(err)}; restarting in 2 s`);
        await sleep(2_000);
      }
    }
  }

  private spawnOnce(): Promise<void> {
    this.starts++;
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'src', 'main.ts')], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const ready = this.env.RUN_API === 'false' ? /worker running/ : /bridge is up/;
    return new Promise<void>((resolve, reject) => {
      let isReady = false;
      const timer = setTimeout(() => reject(new Error('did not start in 60 s')), 60_000);
      // CHAOS_LOG_DIR: each process's log, appended to <dir>/<name>.log (kept across restarts).
      const logTo = process.env.CHAOS_LOG_DIR
        ? createWriteStream(path.join(process.env.CHAOS_LOG_DIR, `${this.name}.log`), { flags: 'a' })
        : undefined;
      child.once('exit', () => logTo?.end());
      child.stdout.on('data', (d: Buffer) => {
        logTo?.write(d);
        if (!isReady && ready.test(d.toString())) {
          isReady = true;
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr.on('data', (d: Buffer) => {
        if (process.env.CHAOS_VERBOSE) process.stderr.write(`[${this.name}] ${d.toString()}`);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (!isReady) return reject(new Error(`exited with ${code ?? signal} while starting`));
        if (this.stopped) return;
        say(`${this.name}: exited (${code ?? signal}); the supervisor starts it again in 2 s`);
        this.up = sleep(2_000).then(() => this.spawnUntilReady());
      });
    });
  }

  /** kill -9 (no graceful shutdown: in-flight activities are cut mid-way); the supervisor restarts it. */
  async kill(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.kill();
  }
}

async function retryUntilAccepted(fn: () => Promise<Response>): Promise<void> {
  // Standard Webhooks senders retry with backoff until a 2xx; compressed here (1 s to 16 s).
  let delay = 1_000;
  for (;;) {
    try {
      const res = await fn();
      if (res.ok) return;
      await res.text();
    } catch {
      // connection refused while the API restarts: retried like any failed delivery
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 16_000);
  }
}

/**
 * What a failed run still has to stop (its Temporal dev server, processes, emulators), newest first:
 * a run that fails early leaves nothing running behind it.
 */
const onFailure: (() => Promise<unknown>)[] = [];
async function stopAfterFailure(): Promise<void> {
  for (const stop of onFailure.reverse()) await stop().catch(() => undefined);
}

async function main(): Promise<void> {
  if (process.env.CHAOS_LOG_DIR) await mkdir(process.env.CHAOS_LOG_DIR, { recursive: true });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bridge-chaos-'));
  onFailure.push(() => rm(dir, { recursive: true, force: true }));
  const temporalPort = await freePort();
  const dbFile = path.join(dir, 'temporal.sqlite');
  let temporal: TemporalServer = await startTemporal({
    cliPath: process.env.TEMPORAL_CLI_PATH,
    dbFile,
    port: temporalPort,
    log,
  });
  onFailure.push(() => temporal.stop());
  say(`Temporal dev server at ${temporal.address}`);

  // The store: a fresh schema on the local PostgreSQL, reached through a proxy the driver can cut.
  const baseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const schema = `chaos_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const admin = new PgClient({ connectionString: baseUrl });
  await admin.connect();
  onFailure.push(() => admin.end());
  await admin.query(`CREATE SCHEMA ${schema}`);
  onFailure.push(() => admin.query(`DROP SCHEMA ${schema} CASCADE`));
  const dbUrl = new URL(baseUrl);
  const storeProxy = await TcpProxy.start(dbUrl.host);
  onFailure.push(() => storeProxy.close());
  dbUrl.host = storeProxy.address;
  dbUrl.searchParams.set('options', `-c search_path=${schema}`);

  const creatio: CreatioEmulator[] = [];
  onFailure.push(() => Promise.all(creatio.map((e) => e.close())));
  for (let i = 0; i < ORGS; i++) creatio.push(await startCreatioEmulator());
  const opencx: OpenCXEmulator = await startOpenCXEmulator();
  onFailure.push(() => opencx.close());
  opencx.apiKeys.add('ocx_chaos');

  const apiPort = await freePort();
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const common = {
    NODE_ENV: 'development',
    // info: the driver reads "bridge is up" and "worker running" from the processes' output.
    LOG_LEVEL: 'info',
    TEMPORAL_ADDRESS: temporal.address,
    DATABASE_URL: dbUrl.toString(),
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    ADMIN_API_TOKEN: ADMIN_TOKEN,
    DATA_DIR: path.join(dir, 'data'),
    SANDBOX: 'off',
    PUBLIC_BASE_URL: apiUrl,
  };
  const api = new BridgeProcess('api', { ...common, RUN_WORKER: 'false', PORT: String(apiPort) });
  const worker = new BridgeProcess('worker', { ...common, RUN_API: 'false', PORT: String(await freePort()) });
  onFailure.push(
    () => api.stop(),
    () => worker.stop(),
  );
  await api.start();
  await worker.start();
  say('api and worker processes running (shipped defaults)');

  // Organizations, connected through Test & Save; each Creatio has both business processes.
  const orgs: string[] = [];
  for (let i = 0; i < ORGS; i++) {
    const orgId = `chaos-${i}`;
    const res = await fetch(`${apiUrl}/v1/orgs/${orgId}/integrations/creatio`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        instanceUrl: creatio[i]!.url,
        ...SANDBOX_CLIENT,
        resolvedStatusId: IDS.caseStatus.Resolved,
        opencx: { apiBaseUrl: opencx.url, apiKey: 'ocx_chaos', webhookSecret: WEBHOOK_SECRET },
      }),
    });
    const body = (await res.json()) as { webhookUrl?: string };
    if (res.status !== 201) throw new Error(`connect ${orgId}: ${res.status} ${JSON.stringify(body)}`);
    const hook = `${apiUrl}/webhooks/creatio/${String(body.webhookUrl).split('/').pop()}`;
    creatio[i]!.processes.push(
      { kind: 'agent_reply', url: hook, activityTypes: ['Email'], retries: 2 },
      { kind: 'case_closure', url: hook, statusNames: ['Resolved', 'Closed'], retries: 2 },
    );
    orgs.push(orgId);
  }
  // The worker picks new organizations up on its next refresh (10 s).
  await sleep(11_000);

  // Faults that run the whole time.
  for (const emu of creatio) {
    emu.setFaults({
      errorRate: 0.15,
      errorStatus: 503,
      writeThenFailRate: 0.15,
      tokenLifetimeSec: 20,
      retryAfterSec: 2,
    });
  }
  const faults: Fault[] = [];
  /** Faults under way (name and start), for recovery timing. */
  const active: { name: string; start: number }[] = [];
  const startedAt = Date.now();
  const tSec = (s: number) => startedAt + s * SCALE * 1000;

  const send = (orgId: string, event: string, data: Record<string, unknown>) => {
    const id = `msg_${randomUUID()}`;
    const body = JSON.stringify({ event, organization_id: orgId, data });
    return retryUntilAccepted(() => {
      return fetch(`${apiUrl}/webhooks/opencx`, {
        method: 'POST',
        // The same delivery id on every try, freshly signed (as OpenCX retries).
        headers: signedHeaders(WEBHOOK_SECRET, body, id),
        body,
        signal: AbortSignal.timeout(15_000),
      });
    });
  };

  const sent: Sent[] = [];
  // Recovery, watched from the start: for each fault that has ended, the first moment every message
  // accepted before its end is in Creatio. A fault that ends while another is still on (a worker
  // kill during the Creatio outage) can only recover once that one ends: it is timed from there.
  const recovery: Record<string, number | null> = {};
  const loggedTokens = () => {
    const found = new Map<string, number>();
    for (const emu of creatio) {
      for (const a of emu.rows('Activity')) {
        const m = /chaos:\d+:\d+/.exec(String(a.Title));
        if (m) found.set(m[0], (found.get(m[0]) ?? 0) + 1);
      }
    }
    return found;
  };
  /** When each message was first seen in Creatio (to the monitor's 500 ms). */
  const seenAt = new Map<string, number>();
  let monitoring = true;
  const monitor = (async () => {
    while (monitoring) {
      const found = loggedTokens();
      const now = Date.now();
      for (const token of found.keys()) if (!seenAt.has(token)) seenAt.set(token, now);
      for (const f of faults) {
        if (recovery[f.name] !== undefined) continue;
        if (active.some((a) => a.start <= f.end)) continue;
        const from = Math.max(
          f.end,
          ...faults.filter((o) => o.start <= f.end && o.end >= f.end).map((o) => o.end),
        );
        if (sent.filter((s) => s.ackedAt <= f.end).every((s) => found.has(s.token))) {
          recovery[f.name] = Math.max(0, Date.now() - from);
        }
      }
      await sleep(500);
    }
  })();
  const sessions = Array.from({ length: CONVERSATIONS }, (_, c) => ({
    orgIndex: c % ORGS,
    sessionId: `chaos-${c}-${randomUUID().slice(0, 8)}`,
    handoff: c % 2 === 0,
  }));
  const replies: { conv: number; text: string }[] = [];

  // One sender per conversation: its events in order, each retried until accepted.
  const interval = (LOAD_SECONDS * 1000) / MESSAGES_PER_CONVERSATION;
  const senders = sessions.map(async (s, c) => {
    const orgId = orgs[s.orgIndex]!;
    await sleep((c / CONVERSATIONS) * interval);
    await send(orgId, 'conversation.started', {
      conversation_id: s.sessionId,
      contact: { name: `Customer ${c}`, email: `customer${c}@example.com` },
      channel: 'web',
      timestamp: new Date().toISOString(),
    });
    for (let n = 1; n <= MESSAGES_PER_CONVERSATION; n++) {
      const token = `chaos:${c}:${n}`;
      const author = n % 2 === 1 ? 'conversation.contact_response' : 'conversation.ai_response';
      await send(orgId, author, {
        conversation_id: s.sessionId,
        message: { id: `m${n}`, text: `${token} message ${n} of conversation ${c}` },
        timestamp: new Date().toISOString(),
      });
      sent.push({ token, conv: c, seq: n, ackedAt: Date.now() });
      if (s.handoff && n === MESSAGES_PER_CONVERSATION / 2) {
        await send(orgId, 'conversation.handoff_to_human', {
          conversation_id: s.sessionId,
          reason: 'user_requested_human',
          summary: `Conversation ${c} needs a human`,
          language: 'en',
          sentiment: 'neutral',
          timestamp: new Date().toISOString(),
        });
      }
      const due = startedAt + (n + c / CONVERSATIONS) * interval;
      await sleep(Math.max(0, due - Date.now()));
    }
  });

  // Agent replies: written in Creatio by "agents" on handed-off cases, twice per conversation.
  const caseOf = (c: number) => {
    const s = sessions[c]!;
    return creatio[s.orgIndex]!.rows('Case').find((r) => String(r.Notes).includes(s.sessionId));
  };
  const writeReplies = async (round: number) => {
    for (const [c, s] of sessions.entries()) {
      if (!s.handoff) continue;
      const kase = caseOf(c);
      if (!kase) continue;
      const text = `chaos-reply:${c}:${round}`;
      creatio[s.orgIndex]!.agentEmail(kase.Id, {
        title: `Re: ${text}`,
        body: `<p>${text}</p>`,
        ownerId: IDS.contact.Supervisor,
      });
      replies.push({ conv: c, text });
      await sleep(200);
    }
  };

  const window = async (
    name: string,
    startS: number,
    seconds: number,
    down: () => Promise<void> | void,
    up: () => Promise<void> | void,
  ) => {
    await sleep(Math.max(0, tSec(startS) - Date.now()));
    const start = Date.now();
    const on = { name, start };
    active.push(on);
    say(`${name}: begins`);
    await down();
    if (seconds > 0) await sleep(seconds * 1000);
    await up();
    active.splice(active.indexOf(on), 1);
    faults.push({ name, start, end: Date.now() });
    say(`${name}: ends`);
  };

  const schedule = [
    window(
      'worker kill -9 #1',
      40,
      0,
      () => worker.kill(),
      async () => {
        await sleep(100);
        await worker.ready();
      },
    ),
    window(
      `store outage (${STORE_OUTAGE_SECONDS} s)`,
      70,
      STORE_OUTAGE_SECONDS,
      () => storeProxy.set('blackhole'),
      () => storeProxy.set('up'),
    ),
    window(
      'Temporal restart',
      115,
      0,
      () => temporal.stop(),
      async () => {
        temporal = await startTemporal({
          cliPath: process.env.TEMPORAL_CLI_PATH,
          dbFile,
          port: temporalPort,
          log,
        });
      },
    ),
    (async () => {
      await sleep(Math.max(0, tSec(140) - Date.now()));
      say('agent replies, round 1');
      await writeReplies(1);
    })(),
    window(
      `Creatio outage (${CREATIO_OUTAGE_SECONDS} s)`,
      160,
      CREATIO_OUTAGE_SECONDS,
      () => creatio.forEach((e) => e.setFaults({ outage: 'http503' })),
      () => creatio.forEach((e) => e.setFaults({ outage: false })),
    ),
    window(
      'worker kill -9 #2',
      300,
      0,
      () => worker.kill(),
      async () => {
        await sleep(100);
        await worker.ready();
      },
    ),
    // Creatio throttled for 3 s (every call answered 429, Retry-After the rest of the window, as a
    // gateway or WAF throttles), and OpenCX accepting a send and then failing.
    (async () => {
      for (let s = 20; s < 460; s += 45) {
        await sleep(Math.max(0, tSec(s) - Date.now()));
        const until = Date.now() + Math.max(1_000, THROTTLE_SECONDS * SCALE * 1000);
        for (const e of creatio) e.setFaults({ rateLimitUntil: until });
        opencx.faults = { ...opencx.faults, acceptThenFail: opencx.faults.acceptThenFail + 1 };
      }
    })(),
  ];

  await Promise.all(senders);
  say(`all ${sent.length} messages accepted by the bridge`);
  await Promise.all(schedule);
  const lastFaultEnd = Math.max(...faults.map((f) => f.end));
  say('agent replies, round 2');
  await writeReplies(2);

  // The backlog drains; recovery is recorded by the monitor.
  const logged = loggedTokens;
  const deadline = lastFaultEnd + DRAIN_DEADLINE_MS;
  let lastReport = 0;
  for (;;) {
    const found = logged();
    const now = Date.now();
    const pendingFaults = faults.filter((f) => recovery[f.name] === undefined);
    const allLogged = sent.every((s) => found.has(s.token));
    const repliesIn = replies.every((r) =>
      opencx.messagesFor(sessions[r.conv]!.sessionId).some((m) => m.text.includes(r.text)),
    );
    if ((allLogged && repliesIn && pendingFaults.length === 0) || now > deadline) break;
    if (process.env.CHAOS_VERBOSE && now - lastReport > 10_000) {
      lastReport = now;
      const missing = sent.filter((x) => !found.has(x.token));
      say(`draining: ${missing.length} messages not in Creatio yet`);
      const first = missing[0] && sessions[missing[0].conv]!;
      if (first) {
        const res = await fetch(`${apiUrl}/v1/orgs/${orgs[first.orgIndex]}/sessions/${first.sessionId}`, {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        }).catch(() => undefined);
        if (res) say(`  ${first.sessionId}: ${(await res.text()).slice(0, 1500)}`);
      }
    }
    await sleep(500);
  }
  monitoring = false;
  await monitor;
  for (const f of faults) recovery[f.name] ??= null;

  // Closure: every conversation is closed as resolved; its case must get the Resolved status.
  await Promise.all(
    sessions.map((s) =>
      send(orgs[s.orgIndex]!, 'conversation.closed', {
        conversation_id: s.sessionId,
        resolution_status: 'resolved',
        summary: 'done',
        language: 'en',
        user_sentiment: 'neutral',
        timestamp: new Date().toISOString(),
      }),
    ),
  );
  const closeDeadline = Date.now() + 120_000;
  const resolvedCount = () =>
    sessions.filter((_, c) => caseOf(c)?.StatusId === IDS.caseStatus.Resolved).length;
  while (resolvedCount() < sessions.length && Date.now() < closeDeadline) await sleep(500);

  // Counted from the emulators' records.
  const found = logged();
  let outOfOrder = 0;
  for (const [c, s] of sessions.entries()) {
    const order = creatio[s.orgIndex]!.rows('Activity')
      .map((a) => new RegExp(`chaos:${c}:(\\d+)`).exec(String(a.Title)))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]));
    for (let i = 1; i < order.length; i++) if (order[i]! < order[i - 1]!) outOfOrder++;
  }
  const casesPerSession = sessions.map(
    (s) => creatio[s.orgIndex]!.rows('Case').filter((r) => String(r.Notes).includes(s.sessionId)).length,
  );
  const replyCounts = replies.map(
    (r) => opencx.messagesFor(sessions[r.conv]!.sessionId).filter((m) => m.text.includes(r.text)).length,
  );
  const recoveries = Object.values(recovery);
  const result = {
    at: new Date().toISOString(),
    machine: { cpus: os.cpus().length, node: process.version },
    shape: {
      organizations: ORGS,
      conversations: CONVERSATIONS,
      messagesPerConversation: MESSAGES_PER_CONVERSATION,
      loadSeconds: LOAD_SECONDS,
      timeScale: SCALE,
    },
    defaultsOverridden: 'none (the bridge runs src/main.ts with its shipped defaults)',
    faults: faults.map((f) => ({ name: f.name, seconds: Math.round((f.end - f.start) / 100) / 10 })),
    messages: sent.length,
    lost: sent.filter((s) => !found.has(s.token)).length,
    duplicated: [...found.values()].filter((n) => n > 1).length,
    outOfOrder,
    repliesSent: replies.length,
    repliesLost: replyCounts.filter((n) => n === 0).length,
    repliesDuplicated: replyCounts.filter((n) => n > 1).length,
    casesDuplicated: casesPerSession.filter((n) => n > 1).length,
    casesMissing: casesPerSession.filter((n) => n === 0).length,
    casesResolvedAfterClose: resolvedCount(),
    maxRecoveryMs: recoveries.includes(null) ? null : Math.max(...(recoveries as number[])),
    recoveryMs: recovery,
    lagBySendTime: lagProfile(sent, seenAt, startedAt, faults),
  };
  // Where something is missing, what the bridge says about that conversation (for the operator).
  const missingConvs = [
    ...new Set([
      ...sent.filter((x) => !found.has(x.token)).map((x) => x.conv),
      ...replies.filter((_, i) => replyCounts[i] === 0).map((r) => r.conv),
    ]),
  ].slice(0, 5);
  const stuck = await Promise.all(
    missingConvs.map(async (c) => {
      const sess = sessions[c]!;
      const res = await fetch(`${apiUrl}/v1/orgs/${orgs[sess.orgIndex]}/sessions/${sess.sessionId}`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      }).catch(() => undefined);
      const st = res ? ((await res.json()) as Record<string, unknown>) : {};
      return {
        sessionId: sess.sessionId,
        status: st.status,
        messages: st.messages,
        lastError: st.lastError,
        retrying: st.retrying,
        agentRepliesDelivered: st.agentRepliesDelivered,
        notes: (st.notes as unknown[] | undefined)?.slice(-3),
        error: st.error,
      };
    }),
  );
  console.log(JSON.stringify({ ...result, stuck }, null, 2));
  const out = path.join(PROJECT_ROOT, 'bench', 'results');
  await mkdir(out, { recursive: true });
  await writeFile(path.join(out, 'chaos-latest.json'), JSON.stringify(result, null, 2));
  await writeFile(
    path.join(out, `chaos-${result.at.replace(/[:.]/g, '-')}.json`),
    JSON.stringify(result, null, 2),
  );

  await worker.stop();
  await api.stop();
  await temporal.stop();
  for (const e of creatio) await e.close();
  await opencx.close();
  await storeProxy.close();
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.end();
  await rm(dir, { recursive: true, force: true });
  const clean =
    result.lost +
      result.duplicated +
      result.outOfOrder +
      result.repliesLost +
      result.repliesDuplicated +
      result.casesDuplicated ===
    0;
  process.exit(clean && result.maxRecoveryMs !== null ? 0 : 1);
}

main().catch(async (err: unknown) => {
  console.error(err);
  await stopAfterFailure();
  process.exit(1);
});
