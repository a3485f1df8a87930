/**
 * `npm run bench:check`: the end-to-end check anyone can run. The bridge as `npm start` runs it
 * with the shipped defaults (one process: API, worker, the embedded Temporal dev server on a
 * SQLite file with WAL, the embedded store), one organization, ten conversations, 20 messages a
 * second for 30 s, the Creatio emulator answering every call after 20 ms. Passes when the p99 from
 * a message's scheduled send to its activity in Creatio is at most 250 ms (exit code 1 otherwise).
 *
 *   npm run bench:check                       # RATE=20 SECONDS=30 CONVERSATIONS=10
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Connection } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { conversationWorkflowId } from '../src/workflows/contract';
import { startCreatioEmulator } from '../src/sandbox/emulators/creatio';
import { startOpenCXEmulator } from '../src/sandbox/emulators/opencx';
import { freePort } from '../src/temporal/launcher';
import { ADMIN_TOKEN } from '../test/helpers';
import { connectOrgs, dist, drive, postMessage, untilDone } from './load';

const RATE = Number(process.env.RATE ?? 20);
const SECONDS = Number(process.env.SECONDS ?? 30);
const CONVERSATIONS = Number(process.env.CONVERSATIONS ?? 10);
const LATENCY = Number(process.env.BENCH_CREATIO_LATENCY_MS ?? 20);
const TARGET_P99_MS = 250;

async function main(): Promise<number> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bench-check-'));
  const emu = await startCreatioEmulator();
  emu.setFaults({ latencyMs: LATENCY });
  const opencx = await startOpenCXEmulator();
  opencx.apiKeys.add('ocx_bench_key');
  const port = await freePort();
  const temporalPort = await freePort();
  let bridge: ChildProcess | undefined;
  try {
    const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
    bridge = spawn(
      process.execPath,
      [...nodeArgs, '--import', 'tsx', path.join(__dirname, '..', 'src', 'main.ts')],
      {
        cwd: path.join(__dirname, '..'),
        env: {
          ...process.env,
          NODE_ENV: 'development',
          SANDBOX: 'off',
          LOG_LEVEL: 'info',
          LOG_FORMAT: 'json',
          DATA_DIR: dataDir,
          PORT: String(port),
          TEMPORAL_PORT: String(temporalPort),
          TEMPORAL_UI_PORT: String(await freePort()),
          ADMIN_API_TOKEN: ADMIN_TOKEN,
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    /** Log lines the bridge wrote since it was up, and the first few of them. */
    const logs = { lines: 0, sample: [] as string[] };
    await new Promise<void>((resolve, reject) => {
      let out = '';
      let up = false;
      bridge!.once('exit', (code) =>
        reject(new Error(`the bridge exited with ${code}: ${out.slice(-2000)}`)),
      );
      bridge!.stdout!.on('data', (d: Buffer) => {
        const text = d.toString();
        if (up) {
          for (const line of text.split('\n').filter(Boolean)) {
            logs.lines++;
            if (logs.sample.length < 5) logs.sample.push(line.slice(0, 300));
          }
          return;
        }
        if (out.length < 200_000) out += text;
        if (/bridge is up/.test(out)) {
          up = true;
          resolve();
        }
      });
    });
    const url = `http://127.0.0.1:${port}`;
    const [orgId] = await connectOrgs(url, emu, opencx, 1, 'check');

    const logged = new Map<string, number>();
    emu.on('added', (set: string, row: Record<string, unknown>) => {
      const m = set === 'Activity' && /\b(C\w+-\d+)\b/.exec(String(row.Title));
      if (m && !logged.has(m[1]!)) logged.set(m[1]!, performance.now());
    });
    const agent = new http.Agent({ keepAlive: true });
    const tag = randomUUID().slice(0, 4);
    const send = (conv: number, key: string) => postMessage(url, agent, orgId!, `check-${tag}-${conv}`, key);
    /** Paced: message i at t0 + i / rate to conversation i mod N, each after its conversation's last ack. */
    const run = async (name: string, total: number, rate: number) => {
      const { sent } = await drive(
        total,
        rate,
        CONVERSATIONS,
        (i) => `C${name}${tag}-${i}`,
        (s) => send(s.conv, s.key),
      );
      const missing = await untilDone(logged, sent, 120_000);
      const ok = sent.filter((s) => s.status && s.status < 300);
      const lat = dist(ok.filter((s) => logged.has(s.key)).map((s) => logged.get(s.key)! - s.scheduled));
      return {
        n: sent.length,
        failed: sent.length - ok.length,
        missing,
        p50: Math.round(lat.p50),
        p99: Math.round(lat.p99),
        max: Math.round(lat.max),
        ackP99: Math.round(dist(ok.map((s) => s.acked! - s.scheduled)).p99),
      };
    };
    // The conversations' first messages (their cases are created), then the steady state.
    const first = await run('first', CONVERSATIONS, RATE);
    console.log(
      `first messages of ${CONVERSATIONS} conversations: p50 ${first.p50} p99 ${first.p99} ms (case created first)`,
    );
    if (process.env.BENCH_TRACE) {
      // Where a first message waited: its workflow's opening events, after the message's send.
      const connection = await Connection.connect({ address: `127.0.0.1:${temporalPort}` });
      const h = await connection.workflowService.getWorkflowExecutionHistory({
        namespace: 'default',
        execution: { workflowId: conversationWorkflowId(orgId!, `check-${tag}-0`) },
      });
      const events = h.history?.events ?? [];
      const t0 =
        Number(events[0]?.eventTime?.seconds ?? 0) * 1000 +
        Math.round((events[0]?.eventTime?.nanos ?? 0) / 1e6);
      console.log(
        events
          .slice(0, 16)
          .map((e) => {
            const at = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
            const type = proto.api.enums.v1.EventType[e.eventType ?? 0] ?? String(e.eventType);
            return `+${at - t0} ${type.replace(/^EVENT_TYPE_/, '').toLowerCase()}`;
          })
          .join(', '),
      );
      await connection.close();
    }
    const s = await run('steady', Math.round(RATE * SECONDS), RATE);
    console.log(
      `${RATE} msg/s over ${CONVERSATIONS} conversations for ${SECONDS} s, shipped defaults, one process: ` +
        `webhook → activity in Creatio p50 ${s.p50} p99 ${s.p99} max ${s.max} ms; ack p99 ${s.ackP99} ms (from the scheduled send); ` +
        `${s.n} messages, ${s.failed} refused, ${s.missing} missing`,
    );
    const lines0 = logs.lines;
    console.log(
      `log lines written by the bridge: ${lines0} for ${s.n + first.n} messages and one organization connected` +
        (logs.sample.length > 0 ? `; the first: ${logs.sample.join(' | ')}` : ''),
    );
    const pass = s.p99 <= TARGET_P99_MS && s.failed === 0 && s.missing === 0;
    console.log(
      pass
        ? `PASS: p99 ≤ ${TARGET_P99_MS} ms`
        : `FAIL: p99 ${s.p99} ms > ${TARGET_P99_MS} ms (or messages lost)`,
    );
    agent.destroy();
    return pass ? 0 : 1;
  } finally {
    if (bridge && bridge.exitCode === null) {
      bridge.kill('SIGTERM');
      await new Promise((r) => bridge!.once('exit', r));
    }
    await emu.close();
    await opencx.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
