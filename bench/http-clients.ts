/**
 * `npm run bench:http-clients`: the CPU one Creatio-sized POST costs the calling process, through
 * the bridge's own transport (`outboundRequest` in src/net/outbound.ts: undici's `request` with the
 * address check, a timeout signal and the capped read), undici's `fetch`, undici's bare `request`,
 * and `node:http` with a keep-alive agent. The server runs in a child process and answers after 20 ms, as the load
 * benchmark's Creatio does; calls are paced (50 a second), so each runs as cold as in the worker.
 * The clients take turns, `--rounds` times (default 3), 400 calls each.
 *
 * Prints µs of CPU per call (the whole process: user + system) and writes
 * bench/results/http-clients-<date>.json.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { Agent, fetch as undiciFetch, request as undiciRequest } from 'undici';
import { outboundRequest, readCapped } from '../src/net/outbound';
import { writeResult } from './results';

const CALLS = 400;
const RATE = 50;
const SERVER = `
const http = require('node:http');
const s = http.createServer((rq, rs) => {
  rq.resume();
  rq.on('end', () => setTimeout(() => rs.writeHead(201, { 'content-type': 'application/json' }).end('{"Id":"x"}'), 20));
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => console.log(s.address().port));
`;

async function main(): Promise<void> {
  const rounds = Number(/--rounds=(\d+)/.exec(process.argv.join(' '))?.[1] ?? 3);
  const server = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((r) =>
    server.stdout.once('data', (d: Buffer) => r(Number(String(d)))),
  );
  const url = `http://127.0.0.1:${port}/0/odata/Activity`;
  const body = JSON.stringify({ Title: 'x'.repeat(200), DetailedResult: 'y'.repeat(500) });
  const headers = { 'content-type': 'application/json', authorization: 'Bearer token' };
  const dispatcher = new Agent({ keepAliveTimeout: 60_000 });
  const agent = new http.Agent({ keepAlive: true });
  const clients: Record<string, () => Promise<unknown>> = {
    outboundRequest: async () => {
      const res = await outboundRequest(url, {
        method: 'POST',
        body,
        headers,
        signal: AbortSignal.timeout(30_000),
      });
      return JSON.parse(await readCapped(res, 16 * 1024 * 1024, 'Activity')) as unknown;
    },
    'undici fetch': async () =>
      (await undiciFetch(url, { method: 'POST', body, headers, dispatcher })).json(),
    'undici request': async () =>
      (await undiciRequest(url, { method: 'POST', body, headers, dispatcher })).body.json(),
    'node:http': () =>
      new Promise((resolve, reject) => {
        const rq = http.request(url, { method: 'POST', agent, headers }, (rs) => {
          const chunks: Buffer[] = [];
          rs.on('data', (d: Buffer) => chunks.push(d));
          rs.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
          rs.on('error', reject);
        });
        rq.on('error', reject);
        rq.end(body);
      }),
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const perCall: Record<string, number[]> = {};
  try {
    for (let round = 0; round < rounds; round++) {
      for (const [name, call] of Object.entries(clients)) {
        for (let i = 0; i < 20; i++) await call(); // warm: connection open, code compiled
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const pending: Promise<unknown>[] = [];
        for (let i = 0; i < CALLS; i++) {
          const wait = t0 + (i * 1000) / RATE - performance.now();
          if (wait > 0) await sleep(wait);
          pending.push(call());
        }
        await Promise.all(pending);
        const c = process.cpuUsage(c0);
        (perCall[name] ??= []).push(Math.round((c.user + c.system) / CALLS));
      }
    }
  } finally {
    server.kill();
    await dispatcher.close();
    agent.destroy();
  }
  console.log(
    `µs of CPU per call, ${rounds} rounds of ${CALLS} calls at ${RATE}/s (the server answering after 20 ms):`,
  );
  for (const [name, v] of Object.entries(perCall)) {
    const sorted = [...v].sort((a, b) => a - b);
    console.log(
      `  ${name.padEnd(15)} median ${sorted[Math.floor((sorted.length - 1) / 2)]} [${sorted[0]}-${sorted[sorted.length - 1]}]`,
    );
  }
  const file = await writeResult('http-clients', {
    node: process.version,
    calls: CALLS,
    rate: RATE,
    perCallMicros: perCall,
  });
  console.log(`written to ${file}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
