/**
 * POST /webhooks/opencx with the bodies of OpenCX's reference (https://docs.open.cx/api-reference/webhooks/types):
 * both renderings of conversation.closed reach the workflow; a signed event that does not validate
 * is answered 4xx naming the field, logged as a warning (organization, event, webhook-id, field;
 * never the content), counted, and kept for a replay. Temporal is replaced by a recorder of signals.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { Metrics } from '../../src/metrics';
import { signedHeaders } from '../../src/opencx/signature';
import { webhookBodies, type WebhookEnvelope } from '../../src/sandbox/emulators/opencx';
import type { Store } from '../../src/store';
import type { ConversationEvent, ConversationOptions } from '../../src/workflows/contract';
import {
  capturingLogger,
  openTestStore,
  startApi,
  storedSettings,
  uniqueOrg,
  type RunningApi,
} from '../helpers';

const SECRET = `whsec_${Buffer.from('opencx-webhook-test-key-0123456789').toString('base64')}`;

describe('POST /webhooks/opencx with the reference bodies', () => {
  const { log, lines } = capturingLogger('info');
  const metrics = new Metrics({ defaultMetrics: false });
  const signals: { workflowId: string; event: ConversationEvent }[] = [];
  let store: Store;
  let api: RunningApi;
  const orgId = uniqueOrg('ocx');

  before(async () => {
    store = await openTestStore(log, 'pglite');
    await store.saveOrg(
      orgId,
      storedSettings({ opencx: { apiBaseUrl: 'https://api.open.cx', apiKey: 'k', webhookSecret: SECRET } }),
    );
    // Only what the ingress uses: a deadline wrapper, a signal to a running workflow (one this
    // recorder started), and signalWithStart.
    const started = new Set<string>();
    const client = {
      withDeadline: <T>(_deadline: number, fn: () => Promise<T>) => fn(),
      workflow: {
        getHandle: (workflowId: string) => ({
          signal: async (_def: unknown, event: ConversationEvent) => {
            if (!started.has(workflowId)) throw new WorkflowNotFoundError('not found', workflowId, undefined);
            signals.push({ workflowId, event });
          },
        }),
        signalWithStart: async (
          _type: string,
          o: { workflowId: string; signalArgs: [ConversationEvent] },
        ) => {
          started.add(o.workflowId);
          signals.push({ workflowId: o.workflowId, event: o.signalArgs[0] });
          return {};
        },
      },
    } as unknown as Client;
    api = await startApi({
      store,
      log,
      metrics,
      conversations: { client, taskQueue: 'test', options: {} as ConversationOptions },
    });
  });
  after(async () => {
    await api.close();
    await store.close();
  });

  const post = async (envelope: WebhookEnvelope | Record<string, unknown>, secret = SECRET) => {
    const body = JSON.stringify(envelope);
    const headers = signedHeaders(secret, body);
    const res = await fetch(`${api.url}/webhooks/opencx`, { method: 'POST', headers, body });
    return { status: res.status, body: (await res.json()) as any, webhookId: headers['webhook-id']! };
  };
  const refused = async () =>
    (await metrics.webhookEvents.get()).values.find(
      (v) => v.labels.source === 'opencx' && v.labels.outcome === 'invalid_event',
    )?.value ?? 0;

  it('both renderings of conversation.closed are accepted and reach the conversation', async () => {
    const newer = await post(
      webhookBodies.closed({
        organizationId: orgId,
        sessionId: 'w-1',
        rendering: 'newer',
        resolution: 'resolved',
      }),
    );
    assert.equal(newer.status, 202, JSON.stringify(newer.body));
    const older = await post(
      webhookBodies.closed({
        organizationId: orgId,
        sessionId: 'w-2',
        rendering: 'older',
        resolution: 'not_resolved',
      }),
    );
    assert.equal(older.status, 202, JSON.stringify(older.body));
    const resolutionOf = (s: string) => {
      const e = signals.find((x) => x.workflowId.endsWith(`:${s}`))?.event;
      return e?.kind === 'closed' ? e.resolution : undefined;
    };
    assert.equal(resolutionOf('w-1'), 'resolved');
    assert.equal(resolutionOf('w-2'), 'not_resolved');
  });

  it("a message reaches its conversation with the organization's mode; a close, which makes no case, without", async () => {
    const handoffOrg = uniqueOrg('ocx-h');
    await store.saveOrg(
      handoffOrg,
      storedSettings({
        createCaseOnlyOnHandoff: true,
        opencx: { apiBaseUrl: 'https://api.open.cx', apiKey: 'k', webhookSecret: SECRET },
      }),
    );
    const sent = [
      [orgId, 'm-1'],
      [handoffOrg, 'm-2'],
    ] as const;
    for (const [org, s] of sent) {
      const r = await post(
        webhookBodies.message('conversation.contact_response', {
          organizationId: org,
          sessionId: s,
          messageId: `${s}-1`,
          text: 'hello',
        }),
      );
      assert.equal(r.status, 202, JSON.stringify(r.body));
    }
    const closed = await post(
      webhookBodies.closed({
        organizationId: handoffOrg,
        sessionId: 'm-2',
        rendering: 'newer',
        resolution: 'resolved',
      }),
    );
    assert.equal(closed.status, 202);
    const of = (s: string, kind: ConversationEvent['kind']) =>
      signals.find((x) => x.workflowId.endsWith(`:${s}`) && x.event.kind === kind)?.event;
    assert.equal((of('m-1', 'message') as { caseOnlyOnHandoff?: boolean }).caseOnlyOnHandoff, false);
    assert.equal((of('m-2', 'message') as { caseOnlyOnHandoff?: boolean }).caseOnlyOnHandoff, true);
    assert.ok(!('caseOnlyOnHandoff' in of('m-2', 'closed')!));
  });

  it('a signed event that does not validate: 400 naming the field, a warning without the content, a count, kept', async () => {
    const before = await refused();
    const secretText = 'my card number is 4111 1111 1111 1111';
    const bad = webhookBodies.closed({
      organizationId: orgId,
      sessionId: 'w-3',
      rendering: 'newer',
      summary: secretText,
    });
    (bad.data as Record<string, unknown>).human_resolution_status = 'maybe';
    const r = await post(bad);
    assert.equal(r.status, 400);
    assert.equal(r.body.error.field, 'data.human_resolution_status');
    assert.equal(await refused(), before + 1);
    const warning = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.webhookId === r.webhookId && l.level === 'warn');
    assert.ok(warning, 'a warning for this delivery');
    assert.equal(warning.orgId, orgId);
    assert.equal(warning.event, 'conversation.closed');
    assert.equal(warning.field, 'data.human_resolution_status');
    assert.ok(!lines.some((l) => l.includes('4111')), 'the content is never logged');
    const kept = (await store.rejectedEvents(orgId)).find((k) => k.webhookId === r.webhookId);
    assert.equal(kept?.field, 'data.human_resolution_status');
    assert.ok(kept.body.includes(secretText), 'the body as it came, for the replay');
  });

  it('data that is not an object, or an empty array: 400 naming data, warned and counted', async () => {
    const before = await refused();
    for (const data of [[], 'text', [1, 2]]) {
      const r = await post({ event: 'conversation.closed', organization_id: orgId, data });
      assert.equal(r.status, 400, JSON.stringify(data));
      assert.equal(r.body.error.field, 'data');
    }
    const noSession = await post({
      event: 'conversation.contact_response',
      organization_id: orgId,
      data: { message: { id: 'm1', text: 'hello there' } },
    });
    assert.equal(noSession.status, 400);
    assert.equal(noSession.body.error.field, 'data.conversation_id');
    assert.equal(await refused(), before + 4);
  });

  it('an unsigned (wrongly signed) event is refused 401 before validation: not counted as a refused event', async () => {
    const before = await refused();
    const bad = webhookBodies.closed({ organizationId: orgId, sessionId: 'w-4', rendering: 'newer' });
    (bad.data as Record<string, unknown>).human_resolution_status = 'maybe';
    const r = await post(bad, `whsec_${Buffer.from('another-key-entirely-0123456789').toString('base64')}`);
    assert.equal(r.status, 401);
    assert.equal(await refused(), before);
    assert.ok(!(await store.rejectedEvents(orgId)).some((k) => k.webhookId === r.webhookId), 'not kept');
  });

  it('request logging: an accepted event writes no line at info, a refused one its line with the request id', async () => {
    const send = async (secret: string, requestId: string, sessionId: string) => {
      const body = JSON.stringify(
        webhookBodies.message('conversation.contact_response', {
          organizationId: orgId,
          sessionId,
          messageId: `${sessionId}-1`,
          text: 'hello',
        }),
      );
      const res = await fetch(`${api.url}/webhooks/opencx`, {
        method: 'POST',
        headers: { ...signedHeaders(secret, body), 'x-request-id': requestId },
        body,
      });
      await res.arrayBuffer();
      return res;
    };
    const ofRequest = (id: string) =>
      lines
        .map(
          (l) =>
            JSON.parse(l) as {
              req?: { id?: string; url?: string };
              res?: { statusCode?: number };
              msg?: string;
            },
        )
        .filter((l) => l.req?.id === id);
    const accepted = await send(SECRET, 'req-accepted-1', 'log-1');
    assert.equal(accepted.status, 202);
    assert.equal(accepted.headers.get('x-request-id'), 'req-accepted-1');
    const wrong = `whsec_${Buffer.from('another-key-entirely-0123456789').toString('base64')}`;
    const refusedRes = await send(wrong, 'req-refused-1', 'log-2');
    assert.equal(refusedRes.status, 401);
    assert.equal(refusedRes.headers.get('x-request-id'), 'req-refused-1');
    // The refusal's lines (positive control) are written by the time its answer is read.
    const refusal = ofRequest('req-refused-1');
    assert.ok(
      refusal.some((l) => l.msg === 'OpenCX webhook refused'),
      JSON.stringify(refusal),
    );
    const completed = refusal.find((l) => l.msg === 'request completed');
    assert.equal(completed?.res?.statusCode, 401);
    assert.equal(completed?.req?.url, '/webhooks/opencx');
    assert.deepEqual(ofRequest('req-accepted-1'), [], 'nothing logged for an accepted event at info');
  });
});
