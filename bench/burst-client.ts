/**
 * The burst's sender, in its own process (as Creatio is): RATE calls per second for SECONDS,
 * open loop, over a pool of keep-alive connections. Prints one JSON line with the latencies.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const [url, casesArg, rateArg, secondsArg] = process.argv.slice(2);
const cases = casesArg!.split(',');
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const target = new URL(url!);

function call(body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function main(): Promise<void> {
  const samples: number[] = [];
  const statuses: Record<string, number> = {};
  const pending: Promise<void>[] = [];
  const total = rate * seconds;
  const started = performance.now();
  for (let i = 0; i < total; i++) {
    const wait = started + (i * 1000) / rate - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const caseId =
      i % 10 === 9 ? `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` : cases[i % cases.length]!;
    const t = performance.now();
    pending.push(
      call(JSON.stringify({ event_type: 'new_activity', caseId })).then(
        (status) => {
          samples.push(performance.now() - t);
          statuses[status] = (statuses[status] ?? 0) + 1;
        },
        () => {
          statuses.error = (statuses.error ?? 0) + 1;
        },
      ),
    );
  }
  await Promise.all(pending);
  agent.destroy();
  console.log(JSON.stringify({ samples, statuses, wallMs: performance.now() - started }));
}

void main();
