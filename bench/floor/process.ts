/**
 * The processes of bench/load.ts's reference paths, each started as its own Node process (as the
 * bridge's API and worker are), so that CPU is counted per process:
 *
 * - `floor-worker`: Temporal's floor for the bridge's job. Runs bench/floor/workflow.ts; its local
 *   activity POSTs each message once to the benchmark's sink (which answers after the same latency
 *   as the Creatio emulator).
 * - `ingress`: the floor's API (POST /floor: one signalWithStart per message) and the naive path
 *   (POST /naive: no Temporal, no durability; the same Creatio work as the bridge, straight from the
 *   request: the case at a conversation's first message, then one POST per message).
 *
 * Settings come from the environment: BENCH_TEMPORAL (host:port), BENCH_TASK_QUEUE, BENCH_SINK
 * (URL), BENCH_CREATIO (URL of the Creatio emulator).
 */
import http from 'node:http';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { CreatioClient } from '../../src/creatio/client';
import { activityIdFor, caseIdFor } from '../../src/ids';
import { SANDBOX_CLIENT } from '../../src/sandbox/emulators/creatio';
import { postJson } from './http';
import type { FloorMessage } from './workflow';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

function readJson(rq: http.IncomingMessage): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    rq.on('data', (c: Buffer) => chunks.push(c));
    rq.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, string>);
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
    rq.on('error', reject);
  });
}

function stopOn(stop: () => void): void {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, stop);
}

async function floorWorker(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  const connection = await NativeConnection.connect({ address: env('BENCH_TEMPORAL') });
  const quiet = { trace() {}, debug() {}, info() {}, warn() {}, log() {}, error: console.error };
  const bundle = await bundleWorkflowCode({
    workflowsPath: path.join(__dirname, 'workflow.ts'),
    logger: quiet,
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const sink = env('BENCH_SINK');
  const worker = await Worker.create({
    connection,
    namespace: 'default',
    taskQueue: env('BENCH_TASK_QUEUE'),
    workflowBundle: bundle,
    activities: {
      async post(m: FloorMessage) {
        const status = await postJson(`${sink}/m/${encodeURIComponent(m.id)}`, m, agent);
        if (status >= 300) throw new Error(`sink answered ${status}`);
      },
    },
  });
  stopOn(() => {
    setTimeout(() => process.exit(0), 5_000).unref();
    if (worker.getState() === 'RUNNING') worker.shutdown();
  });
  const running = worker.run();
  console.log('READY');
  await running;
  await connection.close();
  process.exit(0);
}

async function ingress(): Promise<void> {
  const connection = await Connection.connect({ address: env('BENCH_TEMPORAL') });
  const client = new Client({ connection, namespace: 'default' });
  const taskQueue = env('BENCH_TASK_QUEUE');
  const creatio = new CreatioClient({
    instanceUrl: env('BENCH_CREATIO'),
    identityServiceUrl: env('BENCH_CREATIO'),
    ...SANDBOX_CLIENT,
  });
  /** Cases the naive path has made (it keeps them in memory: it has nothing durable). */
  const cases = new Set<string>();
  const server = http.createServer((rq, rs) => {
    void (async () => {
      try {
        const body = await readJson(rq);
        if (rq.url === '/floor') {
          await client.workflow.signalWithStart('floorConversation', {
            workflowId: body.wid!,
            taskQueue,
            args: [[]],
            signal: 'message',
            signalArgs: [{ id: body.id! }],
          });
          rs.writeHead(202).end();
        } else if (rq.url === '/naive') {
          const { org, session, id } = body;
          const caseId = caseIdFor(org!, session!);
          if (!cases.has(caseId)) {
            await creatio.create('Case', { Id: caseId, Subject: `OpenCX conversation ${session}` });
            cases.add(caseId);
          }
          await creatio.create('Activity', {
            Id: activityIdFor(org!, session!, id!),
            CaseId: caseId,
            Title: `[OpenCX] ${id}`,
            StartDate: new Date().toISOString(),
          });
          rs.writeHead(200).end();
        } else {
          rs.writeHead(404).end();
        }
      } catch (e) {
        rs.writeHead(500).end(String(e));
      }
    })();
  });
  server.keepAliveTimeout = 120_000;
  stopOn(() => {
    setTimeout(() => process.exit(0), 2_000).unref();
    server.close(() => void connection.close().finally(() => process.exit(0)));
    server.closeAllConnections();
  });
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    console.log(`READY ${typeof addr === 'object' && addr ? addr.port : 0}`);
  });
}

const roles: Record<string, () => Promise<void>> = { 'floor-worker': floorWorker, ingress };
const role = roles[process.argv[2] ?? ''];
if (!role) {
  console.error(`unknown role ${process.argv[2]} (floor-worker, ingress)`);
  process.exit(2);
}
role().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
