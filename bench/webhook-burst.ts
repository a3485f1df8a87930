/**
 * Creatio calling the webhook in a burst: BENCH_BURST_RATE calls per second for
 * BENCH_BURST_SECONDS (default 500/s for 10 s), open loop (each call is sent on schedule whatever
 * the answers), 90 % for cases of running conversations and 10 % for unknown cases.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ev, waitFor } from '../test/bridge-harness';
import { startBenchBridge } from './bridge';
import { summarize, type Stat } from './run';

const RATE = Number(process.env.BENCH_BURST_RATE ?? 500);
const SECONDS = Number(process.env.BENCH_BURST_SECONDS ?? 10);

export async function webhookBurstBench(): Promise<Stat[]> {
  return [...(await burst(false)), ...(await burst(true))];
}

/** `apiOnly`: the worker is stopped during the burst, as when api and worker run as separate processes. */
async function burst(apiOnly: boolean): Promise<Stat[]> {
  const { bridge, stop } = await startBenchBridge();
  try {
    const orgId = await bridge.connectOrg();
    const url = await bridge.creatioWebhookUrl(orgId);
    const cases: string[] = [];
    for (let c = 0; c < 20; c++) {
      const s = `burst-${c}`;
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', `hello ${c}`));
      cases.push(
        await waitFor(
          'case',
          async () => (await bridge.session(orgId, s)).body?.caseId as string | undefined,
        ),
      );
    }
    if (apiOnly) await bridge.stopWorkers();
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(__dirname, 'burst-client.ts'),
        url,
        cases.join(','),
        String(RATE),
        String(SECONDS),
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    await new Promise((r) => child.on('close', r));
    const {
      samples,
      statuses,
      wallMs: wall,
    } = JSON.parse(out.trim().split('\n').pop()!) as {
      samples: number[];
      statuses: Record<string, number>;
      wallMs: number;
    };
    const codes = Object.entries(statuses)
      .map(([k, v]) => `${v}×${k}`)
      .join(', ');
    const shape = apiOnly ? 'API process alone' : 'API + worker in one process';
    return [summarize(`Creatio webhook ${RATE}/s × ${SECONDS} s, ack (${shape})`, samples, wall, codes)];
  } finally {
    await stop();
  }
}
