import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { HANDLED_EVENTS } from '../../src/opencx/events';
import { sign } from '../../src/opencx/signature';
import { prng } from '../../src/sandbox/emulators/creatio';
import { Bridge, WEBHOOK_SECRET, ev, waitFor } from '../bridge-harness';

/** Every event the bridge handles, and one it does not. */
const EVENTS = [...HANDLED_EVENTS, 'conversation.unknown'];

function deep(depth: number): unknown {
  let v: unknown = 'x';
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { v };
  return v;
}

/** Values of the wrong type, size or shape, the kind a buggy or hostile sender produces. */
function oddValue(r: () => number): unknown {
  const pick = [
    () => null,
    () => true,
    () => 0,
    () => -1,
    () => 1e20,
    () => 1e308,
    () => -1e308,
    () => 5e-324,
    () => Number.MAX_SAFE_INTEGER + 2,
    () => '',
    () => ' ',
    () => 'x'.repeat(200_000),
    () => '\u0000\uffff\ud800',
    () => '2026-13-45T99:99:99Z',
    () => '../../etc/passwd',
    () => '<img src=x onerror=alert(1)>',
    () => [],
    () => [1, 'two', null],
    () => ({}),
    () => ({ __proto__: { polluted: true } }),
    () => ({ constructor: { prototype: { polluted: true } } }),
    () => deep(2_000),
    () => Array.from({ length: 5_000 }, (_, i) => i),
  ];
  return pick[Math.floor(r() * pick.length)]!();
}

function mutate(value: unknown, r: () => number, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > 4) return r() < 0.3 ? oddValue(r) : value;
  const obj = { ...(value as Record<string, unknown>) };
  const keys = Object.keys(obj);
  const k = keys[Math.floor(r() * keys.length)];
  const action = r();
  if (k === undefined) return oddValue(r);
  if (action < 0.25) delete obj[k];
  else if (action < 0.6) obj[k] = oddValue(r);
  else obj[k] = mutate(obj[k], r, depth + 1);
  if (r() < 0.1) obj[`extra_${Math.floor(r() * 100)}`] = oddValue(r);
  return obj;
}

describe('fuzz: malformed but signed input only ever gets 2xx or 4xx', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  it('3,000 OpenCX events and 1,500 Creatio calls, then a valid message is still logged', async () => {
    const r = prng(20261202);
    const orgId = await bridge.connectOrg();
    const creatioUrl = await bridge.creatioWebhookUrl(orgId);
    const s = `fuzz-${randomUUID().slice(0, 8)}`;
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm0', 'hello'));
    const caseId = await bridge.caseOf(orgId, s);
    const statuses = new Map<number, number>();
    const count = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const bad: string[] = [];

    const opencxBody = (): string => {
      const samples = [
        ev.started(s),
        ev.message(s, `f${Math.floor(r() * 1e6)}`, 'fuzz'),
        ev.handoff(s),
        { ...ev.closed(s), conversation_id: `${s}-other` },
      ];
      const data = mutate(samples[Math.floor(r() * samples.length)], r);
      const envelope = mutate(
        { event: EVENTS[Math.floor(r() * EVENTS.length)], organization_id: orgId, data },
        r,
      );
      if (r() < 0.05) return JSON.stringify(envelope).slice(0, Math.floor(r() * 50));
      if (r() < 0.03) return '\u0000\u0001binary';
      return JSON.stringify(envelope);
    };

    const send = async (
      url: string,
      init: { method: string; headers: Record<string, string>; body: string },
      what: string,
    ) => {
      const res = await fetch(url, init);
      await res.arrayBuffer();
      count(res.status);
      if (res.status >= 500) bad.push(`${what}: ${res.status} ${init.body.slice(0, 200)}`);
    };

    const BATCH = 25;
    for (let i = 0; i < 3_000; i += BATCH) {
      await Promise.all(
        Array.from({ length: BATCH }, async () => {
          const body = opencxBody();
          const id = `fuzz_${randomUUID()}`;
          const ts = Math.floor(Date.now() / 1000);
          const contentType = ['application/json', 'text/plain', 'application/x-www-form-urlencoded', ''][
            Math.floor(r() * 4)
          ]!;
          await send(
            `${bridge.api.url}/webhooks/opencx`,
            {
              method: 'POST',
              headers: {
                ...(contentType && { 'content-type': contentType }),
                'webhook-id': id,
                'webhook-timestamp': String(ts),
                'webhook-signature': sign(WEBHOOK_SECRET, id, ts, body),
              },
              body,
            },
            'opencx',
          );
        }),
      );
    }
    for (let i = 0; i < 1_500; i += BATCH) {
      await Promise.all(
        Array.from({ length: BATCH }, async () => {
          const parsed = mutate({ event_type: 'new_activity', caseId, activityId: randomUUID() }, r);
          const body = r() < 0.05 ? '{"event_type":' : JSON.stringify(parsed);
          const contentType = ['application/json', 'text/plain', 'application/xml', ''][Math.floor(r() * 4)]!;
          await send(
            creatioUrl,
            { method: 'POST', headers: contentType ? { 'content-type': contentType } : {}, body },
            'creatio',
          );
        }),
      );
    }
    const summary = [...statuses].sort(([a], [b]) => a - b);
    console.log(`# fuzz answers by status: ${summary.map(([k, v]) => `${k}×${v}`).join(', ')}`);
    assert.deepEqual(bad, [], `5xx answers:\n${bad.slice(0, 10).join('\n')}`);
    assert.equal(
      summary.reduce((n, [, v]) => n + v, 0),
      4_500,
    );
    assert.ok((statuses.get(400) ?? 0) > 100, 'most malformed input is refused with a 400');

    // The bridge is still up and still right: a valid message after all that is logged.
    const fresh = `${s}-after`;
    const ok = await bridge.send(
      orgId,
      'conversation.contact_response',
      ev.message(fresh, 'm1', 'still here'),
    );
    assert.equal(ok.status, 202);
    const freshCase = await bridge.caseOf(orgId, fresh);
    await waitFor('the message after the fuzz', () =>
      bridge.activitiesOf(freshCase).some((a) => String(a.Title).includes('still here')),
    );
  });
});
