/**
 * `npm run bench:tenants`: many connected organizations on one worker process, some of them with
 * a Creatio that cannot be reached (connections refused, or accepted and never answered), each of
 * those with conversations retrying. Measures a new organization's first message → its case, and
 * prints the pollers the process holds (fixed whatever the number of organizations).
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { temporal } from '@temporalio/proto';
import { SANDBOX_CLIENT } from '../src/sandbox/emulators/creatio';
import { storedSettings } from '../test/helpers';
import { ev, WEBHOOK_SECRET } from '../test/bridge-harness';
import { startBenchBridge } from './bridge';
import { percentile, type Stat } from './run';

const ORGS = Number(process.env.BENCH_TENANTS ?? 1_000);
const UNREACHABLE = Number(process.env.BENCH_TENANTS_UNREACHABLE ?? 100);
const NEW_ORGS = Number(process.env.BENCH_TENANTS_NEW ?? 50);

/** A Creatio that accepts connections and never answers (the worst kind of down). */
async function blackhole(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A loopback port nothing listens on (connections refused). */
async function refusedUrl(): Promise<string> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

export async function tenantsBench(): Promise<Stat[]> {
  const { bridge, stop } = await startBenchBridge();
  const hole = await blackhole();
  const refused = await refusedUrl();
  try {
    const opencx = { apiBaseUrl: bridge.opencx.url, apiKey: 'ocx_bench_key', webhookSecret: WEBHOOK_SECRET };
    const down = (instanceUrl: string) => storedSettings({ instanceUrl, opencx });
    const reachable = () => storedSettings({ instanceUrl: bridge.emu.url, ...SANDBOX_CLIENT, opencx });
    const t0 = performance.now();
    const orgIds: string[] = [];
    for (let i = 0; i < ORGS; i++) {
      const orgId = `tenant-${String(i).padStart(4, '0')}`;
      await bridge.store.saveOrg(
        orgId,
        i < UNREACHABLE ? down(i % 2 === 0 ? hole.url : refused) : reachable(),
      );
      orgIds.push(orgId);
    }
    console.log(
      `${ORGS} organizations connected in ${Math.round(performance.now() - t0)} ms (${UNREACHABLE} with Creatio unreachable)`,
    );

    // Each unreachable organization has two conversations retrying their first message.
    for (let i = 0; i < UNREACHABLE; i++) {
      for (const c of [0, 1]) {
        await bridge.send(
          orgIds[i]!,
          'conversation.contact_response',
          ev.message(`down-${i}-${c}`, 'm1', 'hello?'),
        );
      }
    }
    // Some traffic of the reachable ones, then give the failing ones time to fill their retries.
    await new Promise((r) => setTimeout(r, 10_000));

    const caseAt = new Map<string, number>();
    bridge.emu.on('added', (set: string, row: Record<string, unknown>) => {
      const m = set === 'Case' && /\(session (first-\d+)\)/.exec(String(row.Subject));
      if (m) caseAt.set(m[1]!, performance.now());
    });
    const sentAt = new Map<string, number>();
    for (let n = 0; n < NEW_ORGS; n++) {
      const orgId = orgIds[UNREACHABLE + Math.floor((n * (ORGS - UNREACHABLE)) / NEW_ORGS)]!;
      const s = `first-${n}`;
      sentAt.set(s, performance.now());
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'my first message'));
      await new Promise((r) => setTimeout(r, 100));
    }
    const deadline = Date.now() + 60_000;
    while (caseAt.size < NEW_ORGS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const latencies = [...sentAt].map(([s, t]) => (caseAt.get(s) ?? Infinity) - t).sort((a, b) => a - b);
    const described = bridge.workers!.describe();
    const queues = [bridge.taskQueue, `${bridge.taskQueue}:creatio`, `${bridge.taskQueue}:opencx`];
    const serverPollers: number[] = [];
    for (const [i, name] of queues.entries()) {
      const d = await bridge.client.workflowService.describeTaskQueue({
        namespace: 'default',
        taskQueue: { name },
        taskQueueType:
          i === 0
            ? temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
            : temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
      });
      serverPollers.push(d.pollers.length);
    }
    const stat: Stat = {
      name: `tenants: first message → case, ${ORGS} orgs (${UNREACHABLE} unreachable), 1 worker process`,
      n: latencies.length,
      p50Ms: Math.round(percentile(latencies, 50)),
      p99Ms: Math.round(percentile(latencies, 99)),
      maxMs: Math.round(latencies[latencies.length - 1]!),
      notes: `${caseAt.size}/${NEW_ORGS} cases; pollers: ${described.pollers} configured in the process, poller identities seen by the server per queue ${serverPollers.join('/')}`,
    };
    console.log(
      `first message → case: p50 ${stat.p50Ms} ms, p99 ${stat.p99Ms} ms, max ${stat.maxMs} ms (${stat.notes})`,
    );
    return [stat];
  } finally {
    await hole.close();
    await stop();
  }
}

if (require.main === module) {
  tenantsBench()
    .then(() => process.exit(0))
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
