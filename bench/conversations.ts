/**
 * Conversations through the bridge (real Temporal dev server, real workers and API, Creatio
 * emulator with added latency), and the same workload through the naive direct path.
 */
import { performance } from 'node:perf_hooks';
import { CreatioClient } from '../src/creatio/client';
import { createLogger } from '../src/logger';
import { startTemporal } from '../src/temporal/launcher';
import { SANDBOX_CLIENT } from '../src/sandbox/emulators/creatio';
import { startLlmEmulator } from '../src/sandbox/emulators/llm';
import { Bridge, ev } from '../test/bridge-harness';
import { startNaiveBridge } from './naive-direct';
import { load, summarize, type Stat } from './run';

const N = Number(process.env.BENCH_CONVERSATIONS ?? 20);
const M = Number(process.env.BENCH_MESSAGES ?? 10);
const LATENCY = Number(process.env.BENCH_CREATIO_LATENCY_MS ?? 20);
const LLM_LATENCY = Number(process.env.BENCH_LLM_LATENCY_MS ?? 1200);

async function untilIdle(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('benchmark did not finish in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function conversationBench(): Promise<Stat[]> {
  const log = createLogger('error');
  const temporal = await startTemporal({
    address: process.env.TEMPORAL_ADDRESS,
    cliPath: process.env.TEMPORAL_CLI_PATH,
    log,
  });
  const llm = await startLlmEmulator();
  llm.faults.latencyMs = LLM_LATENCY;
  llm.rule = () => ({ UsrProductName: 'Router X200', PriorityId: 'High' });
  const bridge = await new Bridge({
    temporalAddress: temporal.address,
    log,
    store: process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite',
    llmBaseUrl: llm.url,
    conversation: { aiFieldsDeadline: '20s' },
  }).start();
  const stats: Stat[] = [];
  try {
    const emu = bridge.emu;
    emu.setFaults({ latencyMs: LATENCY });

    // --- messages through the bridge
    const orgId = await bridge.connectOrg();
    const sentAt = new Map<string, number>();
    const loggedAt = new Map<string, number>();
    emu.on('added', (set: string, row: Record<string, unknown>) => {
      const m = set === 'Activity' && /: (c\d+-m\d+)$/.exec(String(row.Title));
      if (m) loggedAt.set(m[1]!, performance.now());
    });
    const acks: number[] = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: N }, async (_, c) => {
        for (let j = 0; j < M; j++) {
          const text = `c${c}-m${j}`;
          sentAt.set(text, performance.now());
          const t = performance.now();
          const res = await bridge.send(
            orgId,
            'conversation.contact_response',
            ev.message(`bench-${c}`, `m${j}`, text),
          );
          acks.push(performance.now() - t);
          if (res.status !== 202) throw new Error(`ingress answered ${res.status}`);
        }
      }),
    );
    await untilIdle(() => loggedAt.size === N * M, 300_000);
    const wall = Math.max(...loggedAt.values()) - started;
    const latencies = [...sentAt].map(([k, t]) => loggedAt.get(k)! - t);
    const bridgeCalls = emu.odataCalls() / N;
    stats.push(
      summarize(`bridge: OpenCX webhook ack (202), ${N} conv in parallel`, acks),
      summarize(
        `bridge: message → activity, burst of ${N} conv × ${M}`,
        latencies,
        wall,
        `${(((N * M) / wall) * 1000).toFixed(1)} msg/s sustained; ${bridgeCalls.toFixed(1)} OData calls + ${emu.count('token')} token(s) per ${N} conv`,
      ),
    );

    // --- handoff → case created (handoff-only mode)
    const handoffOrg = await bridge.connectOrg({ createCaseOnlyOnHandoff: true });
    const handoffSent = new Map<string, number>();
    const caseAt = new Map<string, number>();
    emu.on('added', (set: string, row: Record<string, unknown>) => {
      const m = set === 'Case' && /\(session (ho-\d+)\)/.exec(String(row.Subject));
      if (m) caseAt.set(m[1]!, performance.now());
    });
    await Promise.all(
      Array.from({ length: N }, async (_, c) => {
        const s = `ho-${c}`;
        for (let j = 0; j < 3; j++)
          await bridge.send(
            handoffOrg,
            'conversation.contact_response',
            ev.message(s, `m${j}`, `h${c}-${j}`),
          );
        handoffSent.set(s, performance.now());
        await bridge.send(handoffOrg, 'conversation.handoff_to_human', ev.handoff(s));
      }),
    );
    await untilIdle(() => caseAt.size === N, 120_000);
    stats.push(
      summarize(
        'bridge: handoff → case created (handoff-only mode)',
        [...handoffSent].map(([s, t]) => caseAt.get(s)! - t),
      ),
    );

    // --- handoff → AI fields written (existing case, LLM answering after LLM_LATENCY ms)
    const aiOrg = await bridge.connectOrg({
      aiFields: [
        { column: 'UsrProductName', title: 'Product', type: 'text', description: 'The product' },
        {
          column: 'PriorityId',
          title: 'Priority',
          type: 'dropdown',
          description: '"High", "Medium" or "Low"',
        },
      ],
    });
    const aiSent = new Map<string, number>();
    const fieldsAt = new Map<string, number>();
    emu.on('modified', (set: string, row: Record<string, unknown>, changed: string[]) => {
      const m =
        set === 'Case' &&
        changed.includes('UsrProductName') &&
        /\(session (ai-\d+)\)/.exec(String(row.Subject));
      if (m) fieldsAt.set(m[1]!, performance.now());
    });
    await Promise.all(
      Array.from({ length: N }, async (_, c) => {
        const s = `ai-${c}`;
        await bridge.send(aiOrg, 'conversation.contact_response', ev.message(s, 'm0', `router down ${c}`));
        await untilIdle(
          () => emu.rows('Case').some((r) => String(r.Subject).includes(`(session ${s})`)),
          60_000,
        );
        aiSent.set(s, performance.now());
        await bridge.send(aiOrg, 'conversation.handoff_to_human', ev.handoff(s));
      }),
    );
    await untilIdle(() => fieldsAt.size === N, 120_000);
    stats.push(
      summarize(
        `bridge: handoff → AI fields written (LLM ${LLM_LATENCY} ms)`,
        [...aiSent].map(([s, t]) => fieldsAt.get(s)! - t),
      ),
    );

    // --- the naive direct path, same emulator, same latency
    emu.calls.clear();
    const creatio = new CreatioClient({
      instanceUrl: emu.url,
      identityServiceUrl: emu.url,
      ...SANDBOX_CLIENT,
    });
    const naive = await startNaiveBridge(creatio);
    try {
      const run = await load(N * M, N, async (i) => {
        const c = i % N;
        const res = await fetch(`${naive.url}/webhooks/opencx`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            organization_id: 'naive',
            data: ev.message(`naive-${c}`, `m${i}`, `n${i}`),
          }),
        });
        await res.text();
      });
      stats.push(
        summarize(
          'naive direct path: message → activity (= its ack)',
          run.samples,
          run.wallMs,
          `${(emu.odataCalls() / N).toFixed(1)} OData calls per conv; no retries, lost on any fault`,
        ),
      );
    } finally {
      await naive.close();
    }
  } finally {
    await bridge.close();
    await llm.close();
    await temporal.stop();
  }
  return stats;
}
