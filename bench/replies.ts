/**
 * Creatio → customer: from the agent-reply process's webhook call to the reply at OpenCX, through
 * the real bridge (Temporal dev server, workers, API) with the shipped per-organization rates, on
 * small cases and on cases with 5,000 bridge activities each.
 */
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../src/config';
import { IDS } from '../src/sandbox/emulators/creatio-schema';
import { ev, waitFor } from '../test/bridge-harness';
import { startBenchBridge } from './bridge';
import { summarize, type Stat } from './run';

const N = Number(process.env.BENCH_CONVERSATIONS ?? 20);
const LATENCY = Number(process.env.BENCH_CREATIO_LATENCY_MS ?? 20);
const REPLIES_EACH = 2;
/** A busy team: 40 replies a minute in one organization (OpenCX allows 100 requests a minute per key). */
const PACE_MS = Number(process.env.BENCH_REPLY_PACE_MS ?? 1_500);

export async function replyBench(): Promise<Stat[]> {
  const shipped = loadConfig({});
  const limits = process.env.BENCH_UNCAPPED
    ? { creatioInitialPerSecond: 1000, opencxMaxPerSecond: 1000 }
    : {
        creatioInitialPerSecond: shipped.creatioInitialCallsPerSecond,
        opencxMaxPerSecond: shipped.opencxMaxCallsPerSecond,
      };
  const rates = { creatio: limits.creatioInitialPerSecond, opencx: limits.opencxMaxPerSecond };
  const { bridge, stop } = await startBenchBridge({ limits });
  const stats: Stat[] = [];
  try {
    bridge.emu.setFaults({ latencyMs: LATENCY });
    bridge.opencx.faults.latencyMs = LATENCY;
    bridge.opencx.perMinute = 10_000;
    for (const bridgeActivities of [0, 5_000]) {
      const orgId = await bridge.connectOrg();
      const url = await bridge.creatioWebhookUrl(orgId);
      bridge.emu.processes.push({ kind: 'agent_reply', url, activityTypes: ['Email'], retries: 2 });
      const cases: { s: string; caseId: string }[] = [];
      await Promise.all(
        Array.from({ length: N }, async (_, c) => {
          const s = `bench-reply-${bridgeActivities}-${c}`;
          // The customer's address: an agent's email is a reply only when addressed to it.
          await bridge.send(orgId, 'conversation.started', ev.started(s));
          await bridge.send(
            orgId,
            'conversation.contact_response',
            ev.message(s, 'm1', 'Where is my parcel?'),
          );
          const caseId = await bridge.caseOf(orgId, s, 120_000);
          cases.push({ s, caseId });
        }),
      );
      for (const { caseId } of cases) {
        for (let i = 0; i < bridgeActivities; i++) {
          bridge.emu.insert('Activity', {
            CaseId: caseId,
            Title: `[OpenCX] Customer: message ${i}`,
            TypeId: IDS.activityType.Task,
          });
        }
      }
      const sentAt = new Map<string, number>();
      const arrivedAt = new Map<string, number>();
      const seen = bridge.opencx.sent.length;
      bridge.emu.calls.clear();
      for (let r = 0; r < REPLIES_EACH; r++) {
        for (const { s, caseId } of cases) {
          const text = `${s} reply ${r}`;
          sentAt.set(text, performance.now());
          bridge.emu.agentEmail(caseId, {
            title: 'Re: your parcel',
            body: `<p>${text}</p>`,
            ownerId: IDS.contact.Supervisor,
          });
          await new Promise((res) => setTimeout(res, PACE_MS));
          for (const m of bridge.opencx.sent.slice(seen)) {
            if (!arrivedAt.has(m.text)) arrivedAt.set(m.text, m.at);
          }
        }
      }
      await waitFor(
        'every reply',
        () => {
          for (const m of bridge.opencx.sent.slice(seen))
            if (!arrivedAt.has(m.text)) arrivedAt.set(m.text, m.at);
          return arrivedAt.size >= sentAt.size;
        },
        120_000,
        20,
      );
      // m.at is wall-clock time at the emulator; sentAt is performance time: convert.
      const offset = Date.now() - performance.now();
      const latencies = [...sentAt].map(([t, at]) => arrivedAt.get(t)! - (at + offset));
      const reads = bridge.emu.count('GET Activity') / sentAt.size;
      stats.push(
        summarize(
          `bridge: Creatio webhook → reply at OpenCX${bridgeActivities ? `, cases of ${bridgeActivities.toLocaleString('en')} activities` : ''}`,
          latencies,
          undefined,
          `${N} conv, 1 reply per ${PACE_MS} ms; ${reads.toFixed(1)} GET Activity per reply; ${process.env.BENCH_UNCAPPED ? 'limits OVERRIDDEN (BENCH_UNCAPPED)' : 'shipped limits'} (Creatio adaptive from ${rates.creatio} calls/s, OpenCX ${rates.opencx} calls/s per org); emulator latency ${LATENCY} ms`,
        ),
      );
    }
  } finally {
    await stop();
  }
  return stats;
}
