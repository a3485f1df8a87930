/**
 * bench:load's reading of the targets (bench/load.ts `targetLines`): bridge against floor within
 * one run, and, where the floor itself falls behind at 50 msg/s, at the floor's capacity too.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FULL, targetLines, type ModeResult, type RunResult } from '../../bench/load';

const d = (p99: number) => ({ n: 100, p50: p99 / 2, p90: p99, p99, max: p99 });

function run(
  target: 'floor' | 'bridge',
  rate: number,
  p99: number,
  ack: number,
  keepsUp: boolean,
): RunResult {
  const [worker, api] =
    target === 'floor' ? ['floor worker', 'floor/naive ingress'] : ['bridge worker', 'bridge api'];
  return {
    target,
    rate,
    run: 1,
    messages: rate * 20,
    failedSends: 0,
    missing: 0,
    latencyMs: d(p99),
    ackMs: d(ack),
    firstThirdP50Ms: 30,
    lastThirdP50Ms: 30,
    sustainedPerSecond: rate,
    cpuMsPerMessage: { [worker]: 10, [api]: target === 'floor' ? 2 : 2.8 },
    cpuMsPerMessageNetOfIdle: {},
    keepsUp,
    otherCreatioCalls: 0,
  };
}

const mode = (name: ModeResult['mode'], runs: RunResult[]): ModeResult => ({
  mode: name,
  runs,
  bursts: [],
  idleCpuPercent: {},
});

const opts = { ...FULL, rates: [25, 50], runs: 1, targets: ['floor' as const, 'bridge' as const] };

describe('bench:load targets', () => {
  it('both keep up at 50 msg/s: read there only', () => {
    const m = mode('file', [
      run('floor', 25, 70, 20, true),
      run('bridge', 25, 80, 30, true),
      run('floor', 50, 100, 30, true),
      run('bridge', 50, 190, 55, true),
    ]);
    const lines = targetLines(m, opts);
    assert.match(lines[0]!, /capacity at least ×0\.7 the floor's: ×1\.00 \(bridge 50, floor 50 msg\/s\) ✓/);
    assert.ok(lines.includes('at 50 msg/s (kept up: floor 1/1, bridge 1/1):'), lines.join('\n'));
    assert.ok(lines.some((l) => /p99 at most ×2 the floor's: ×1\.90 \(190 against 100 ms\) ✓/.test(l)));
    assert.ok(
      lines.some((l) => /ack p99 at most the floor's \+ 20 ms: \+25 ms \(55 against 30 ms\) ✗/.test(l)),
    );
    assert.ok(lines.some((l) => /API CPU per message at most ×1\.3 the floor's ingress: ×1\.40 ✗/.test(l)));
    assert.ok(!lines.some((l) => /at the floor's capacity/.test(l)), 'the floor kept up at 50 msg/s');
  });

  it('the floor falls behind at 50 msg/s: read at 50 and at its capacity, 25', () => {
    const m = mode('postgres', [
      run('floor', 25, 70, 30, true),
      run('bridge', 25, 85, 40, true),
      run('floor', 50, 500, 200, false),
      run('bridge', 50, 1600, 380, false),
    ]);
    const lines = targetLines(m, opts);
    assert.match(lines[0]!, /×1\.00 \(bridge 25, floor 25 msg\/s\) ✓/);
    assert.ok(lines.includes('at 50 msg/s (kept up: floor 0/1, bridge 0/1):'), lines.join('\n'));
    assert.ok(lines.some((l) => /×3\.20 \(1600 against 500 ms\) ✗/.test(l)));
    assert.ok(
      lines.includes("at the floor's capacity, 25 msg/s (kept up: floor 1/1, bridge 1/1):"),
      lines.join('\n'),
    );
    assert.ok(lines.some((l) => /×1\.21 \(85 against 70 ms\) ✓/.test(l)));
    assert.ok(lines.some((l) => /\+10 ms \(40 against 30 ms\) ✓/.test(l)));
  });

  it('a bridge below the lowest rate fails the capacity target', () => {
    const m = mode('postgres', [run('floor', 25, 70, 30, true), run('bridge', 25, 400, 40, false)]);
    assert.match(targetLines(m, opts)[0]!, /×0\.00 \(bridge < 25, floor 25 msg\/s\) ✗/);
  });
});
