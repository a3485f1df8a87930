import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runtimeMetricsAddress } from '../../src/worker';
import { Bridge, ev, waitFor } from '../bridge-harness';

const sid = () => `mx-${randomUUID().slice(0, 12)}`;
const POISON = (set: string, v: Record<string, unknown>) =>
  set === 'Activity' && String(v.Title).includes('POISON') ? 'Column "Title" holds a bad value' : null;

/** One sample's value from a Prometheus text exposition, or undefined if absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return undefined;
}

const names = (text: string) =>
  new Set(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => /^([a-zA-Z_:][\w:]*)/.exec(l)![1]!),
  );

describe('metrics: /metrics (prom-client) and the Temporal SDK exporter', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  const scrapeBridge = async () => (await fetch(`${bridge.api.url}/metrics`)).text();
  const scrapeTemporal = async () => (await fetch(`http://${runtimeMetricsAddress()}/metrics`)).text();

  it('counts messages received and logged, Creatio calls by answer, webhook outcomes, parked steps; process metrics are there', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    for (let i = 1; i <= 5; i++) {
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, `m${i}`, `hello ${i}`));
    }
    await waitFor(
      '5 messages logged',
      async () => (await bridge.session(orgId, s)).body?.messages.logged === 5,
    );

    const text = await scrapeBridge();
    assert.equal(sample(text, 'bridge_messages_received_total', { author: 'customer' }), 5);
    assert.equal(sample(text, 'bridge_messages_logged_total'), 5);
    assert.equal(sample(text, 'bridge_message_logging_lag_seconds_count'), 5);
    assert.equal(sample(text, 'bridge_webhook_events_total', { source: 'opencx', outcome: 'accepted' }), 6);
    // The case and five activities were created with POST, each answered 201.
    assert.ok(
      (sample(text, 'bridge_creatio_calls_total', { method: 'POST', status: '201' }) ?? 0) >= 6,
      text,
    );
    assert.ok(
      (sample(text, 'bridge_http_requests_total', {
        method: 'POST',
        route: '/webhooks/opencx',
        status: '202',
      }) ?? 0) >= 6,
    );
    for (const n of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      assert.ok(names(text).has(n), `${n} is missing`);
    }

    // A step that parks counts in the workflow's own metric, exported by the SDK.
    bridge.emu.setFaults({ rejectWrite: POISON });
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm6', 'POISON'));
    await waitFor('the step parked', async () => (await bridge.session(orgId, s)).body?.lastError?.parked);
    bridge.emu.setFaults({ rejectWrite: null });
    const temporal = await waitFor('the parked step in the SDK metrics', async () => {
      const t = await scrapeTemporal();
      return (sample(t, 'bridge_steps_parked_total', { error_type: 'CreatioValidationError' }) ?? 0) >= 1
        ? t
        : undefined;
    });
    for (const n of [
      'temporal_worker_task_slots_available',
      'temporal_workflow_task_schedule_to_start_latency_bucket',
    ]) {
      assert.ok(names(temporal).has(n), `${n} is missing from the SDK metrics`);
    }
  });

  it('every metric the Grafana dashboard uses is one the bridge or the SDK exports', async () => {
    const file = path.join(__dirname, '..', '..', 'deploy', 'grafana', 'bridge-dashboard.json');
    const dashboard = JSON.parse(readFileSync(file, 'utf8')) as {
      panels: { targets?: { expr: string }[] }[];
    };
    const exported = new Set([...names(await scrapeBridge()), ...names(await scrapeTemporal())]);
    const used = new Set<string>();
    for (const p of dashboard.panels) {
      for (const t of p.targets ?? []) {
        for (const m of t.expr.matchAll(/\b((?:bridge|temporal|process|nodejs)_[a-z_]+)\b/g)) used.add(m[1]!);
      }
    }
    assert.ok(used.size >= 10, `the dashboard uses only ${[...used].join(', ')}`);
    const missing = [...used].filter((n) => !exported.has(n));
    assert.deepEqual(missing, [], `the dashboard queries metrics nobody exports: ${missing.join(', ')}`);
  });
});
