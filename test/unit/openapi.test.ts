import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { validate } from '@readme/openapi-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { createApp } from '../../src/api/app';
import { Metrics } from '../../src/metrics';
import type { Store } from '../../src/store';
import { capturingLogger, openTestStore, startApi, type RunningApi } from '../helpers';

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/** Every method and path the Express app answers, in OpenAPI's `{param}` form. */
function routesOf(stack: Layer[]): string[] {
  const out: string[] = [];
  for (const layer of stack) {
    if (layer.route) {
      const path = layer.route.path.replace(/:(\w+)/g, '{$1}');
      for (const m of Object.keys(layer.route.methods)) out.push(`${m} ${path}`);
    } else if (layer.handle?.stack) {
      out.push(...routesOf(layer.handle.stack));
    }
  }
  return out;
}

describe('OpenAPI document (/openapi.json)', () => {
  let store: Store;
  let api: RunningApi;
  let doc: Record<string, any>;
  const { log } = capturingLogger();

  before(async () => {
    store = await openTestStore(log);
    api = await startApi({ store, log, codec: { encode: async (p) => p, decode: async (p) => p } });
    const res = await api.request('GET', '/openapi.json', undefined, { authorization: '' });
    assert.equal(res.status, 200, res.text);
    doc = res.body;
  });
  after(async () => {
    await api.close();
    await store.close();
  });

  it('is a valid OpenAPI 3.1 document for a maintained parser', async () => {
    assert.equal(doc.openapi, '3.1.0');
    const result = await validate(structuredClone(doc) as never);
    assert.equal(result.valid, true, JSON.stringify(result, null, 2));
  });

  it('covers every route the app answers, and nothing it does not', () => {
    const app = createApp({
      store,
      log,
      metrics: new Metrics(),
      readiness: async () => ({ ready: true, checks: {} }),
      codec: { encode: async (p) => p, decode: async (p) => p },
      config: { publicBaseUrl: 'https://bridge.example.com', adminApiToken: 'x', creatioRequestTimeoutMs: 1 },
    });
    const routes = routesOf((app as unknown as { router: { stack: Layer[] } }).router.stack).filter(
      (r) => !r.startsWith('_all'),
    );
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
      ([path, item]) =>
        Object.keys(item)
          .filter((k) => ['get', 'put', 'post', 'patch', 'delete'].includes(k))
          .map((m) => `${m} ${path}`),
    );
    assert.ok(routes.length >= 16, `found only ${routes.length} routes: ${routes.join(', ')}`);
    assert.deepEqual([...new Set(routes)].sort(), [...documented].sort());
    // §7 and §8 by name.
    for (const r of [
      'put /v1/orgs/{orgId}/integrations/creatio',
      'post /v1/orgs/{orgId}/integrations/creatio/test',
      'post /v1/orgs/{orgId}/integrations/creatio/webhook-token',
      'get /v1/orgs/{orgId}/sessions/{sessionId}',
      'post /v1/orgs/{orgId}/sessions/{sessionId}/resume',
      'post /v1/orgs/{orgId}/sessions/{sessionId}/skip',
      'get /v1/orgs/{orgId}/diagnose',
      'get /v1/orgs/{orgId}/opencx-events',
      'post /v1/orgs/{orgId}/opencx-events/replay',
      'post /v1/orgs/{orgId}/opencx-events/{eventId}/replay',
      'get /v1/opencx-events/unmapped',
      'post /webhooks/opencx',
      'post /webhooks/creatio/{token}',
      'get /openapi.json',
      'get /admin/',
    ]) {
      assert.ok(documented.includes(r), `${r} is not documented`);
    }
  });

  it('request schemas accept what the routes accept and refuse what they refuse', async () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const body = (path: string, method: string) =>
      doc.paths[path][method].requestBody.content['application/json'].schema;
    const settings = ajv.compile(body('/v1/orgs/{orgId}/integrations/creatio', 'put'));
    const good = {
      instanceUrl: 'https://acme.creatio.com',
      clientId: 'id',
      clientSecret: 'secret',
      resolvedStatusId: 'AE7F411E-F46B-1410-009B-0050BA5D6C38',
      aiFields: [{ column: 'UsrTopic', title: 'Topic', type: 'dropdown', description: 'Billing or tech' }],
    };
    assert.ok(settings(good), JSON.stringify(settings.errors));
    assert.ok(!settings({ ...good, clientSecrt: 'typo' }), 'an unknown field is refused, as by the route');
    assert.ok(!settings({ ...good, resolvedStatusId: 'Resolved' }), 'a status name is not a GUID');
    // The route agrees on both.
    for (const [b, code] of [
      [{ ...good, clientSecrt: 'typo' }, 'unknown_field'],
      [{ ...good, resolvedStatusId: 'Resolved' }, 'invalid_field'],
    ] as const) {
      const res = await api.request('POST', '/v1/orgs/acme/integrations/creatio/test', b);
      assert.equal(res.status, 400, res.text);
      assert.equal(res.body.error.code, code);
    }

    const creatio = ajv.compile(body('/webhooks/creatio/{token}', 'post'));
    const caseId = '7f3b2a10-0000-4000-8000-000000000001';
    assert.ok(
      creatio({ event_type: 'new_activity', caseId, extra: 'allowed' }),
      JSON.stringify(creatio.errors),
    );
    assert.ok(!creatio({ event_type: 'new_activty', caseId }));
    assert.ok(!creatio({ event_type: 'case_closed', caseId: 'SR00012' }));

    const opencx = ajv.compile(body('/webhooks/opencx', 'post'));
    const message = {
      event: 'conversation.contact_response',
      organization_id: 'acme',
      data: { conversation_id: 's-1', message: { id: 'm1', text: 'hi' }, timestamp: '2026-01-01T00:00:00Z' },
    };
    assert.ok(opencx(message), JSON.stringify(opencx.errors));
    assert.ok(!opencx({ ...message, data: { ...message.data, conversation_id: 'has space' } }));
  });

  it('needs no admin token, and names the server it was asked on', async () => {
    assert.deepEqual(doc.servers, [{ url: 'https://bridge.example.com' }]);
    assert.deepEqual(doc.paths['/v1/orgs/{orgId}/diagnose'].get.security, [{ adminToken: [] }]);
  });
});
