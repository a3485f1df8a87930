import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createApp, createOpsApp } from '../../src/api/app';
import type { Readiness } from '../../src/api/deps';
import { FailureLimiter } from '../../src/api/failure-limiter';
import { createHttpServer } from '../../src/api/server';
import { ConfigError, loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { Metrics } from '../../src/metrics';
import { checkedAddress, classifyAddress, OutboundAddressRefusedError } from '../../src/net/outbound';
import type { Store } from '../../src/store';
import {
  ADMIN_TOKEN,
  capturingLogger,
  openTestStore,
  startApi,
  storedSettings,
  uniqueOrg,
  type RunningApi,
} from '../helpers';

const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'error');

const testConfig = {
  publicBaseUrl: 'https://bridge.example.com',
  adminApiToken: ADMIN_TOKEN,
  creatioRequestTimeoutMs: 3_000,
};

/** POST /webhooks/creatio/<token> with a well-formed body, from `headers`. */
async function callWebhook(api: RunningApi, token: string, headers: Record<string, string> = {}) {
  return api.request(
    'POST',
    `/webhooks/creatio/${token}`,
    { event_type: 'new_activity', caseId: randomUUID() },
    { authorization: '', ...headers },
  );
}

describe('edge: failure counters refuse attackers, never valid callers', () => {
  let store: Store;
  before(async () => {
    store = await openTestStore(log);
  });
  after(() => store.close());

  /** An organization whose webhook token was rotated once: its retired token and its current one. */
  async function rotatedOrg(): Promise<{ retired: string; current: string }> {
    const orgId = uniqueOrg('edge');
    const retired = (await store.saveOrg(orgId, storedSettings())).webhookToken;
    store.rotation.overlapMs = 0; // the retired token is past its rotation overlap
    const current = (await store.rotateWebhookToken(orgId))!;
    return { retired, current };
  }

  it('15 calls with a retired webhook URL, then a valid call from the same address → 2xx', async () => {
    const api = await startApi({ store, log });
    try {
      const { retired, current } = await rotatedOrg();
      for (let i = 0; i < 15; i++) {
        const r = await callWebhook(api, retired);
        assert.equal(r.status, 401, `call ${i + 1}: ${r.text}`);
        assert.equal(r.body.error.code, 'invalid_token');
      }
      const valid = await callWebhook(api, current);
      assert.equal(valid.status, 200, valid.text);
      assert.equal(valid.body.status, 'ignored');
    } finally {
      await api.close();
    }
  });

  it('the same behind a proxy: X-Forwarded-For from a TRUST_PROXY peer', async () => {
    const trustProxy = loadConfig({ TRUST_PROXY: '127.0.0.1/32, 10.0.0.0/8' }).trustProxy;
    const app = createApp({
      config: { ...testConfig, trustProxy },
      store,
      log,
      metrics: new Metrics(),
      readiness: async () => ({ ready: true, checks: {} }),
    });
    assert.equal(app.get('trust proxy'), '127.0.0.1/32, 10.0.0.0/8');
    const api = await startApi({ store, log, config: { ...testConfig, trustProxy } });
    try {
      const { retired, current } = await rotatedOrg();
      const client = { 'x-forwarded-for': '203.0.113.7' };
      for (let i = 0; i < 15; i++) assert.equal((await callWebhook(api, retired, client)).status, 401);
      const valid = await callWebhook(api, current, client);
      assert.equal(valid.status, 200, valid.text);
    } finally {
      await api.close();
    }
  });

  it('one wrong credential is refused on its route only; the operator token from the same address still works', async () => {
    const api = await startApi({ store, log });
    try {
      const wrong = { authorization: 'Bearer wrong-token-0123456789abcdefgh' };
      for (let i = 0; i < 10; i++) {
        assert.equal(
          (await api.request('GET', '/v1/orgs/acme/integrations/creatio', undefined, wrong)).status,
          401,
        );
      }
      const blocked = await api.request('GET', '/v1/orgs/acme/integrations/creatio', undefined, wrong);
      assert.equal(blocked.status, 429);
      assert.equal(blocked.body.error.code, 'too_many_failed_attempts');
      const ok = await api.request('GET', '/v1/orgs/acme/integrations/creatio');
      assert.equal(ok.status, 404, ok.text);
      // Another route counts its own failures.
      assert.equal((await callWebhook(api, 'wrong-token-0123456789abcdefgh')).status, 401);
    } finally {
      await api.close();
    }
  });

  it('many different guesses share one budget per route (429 with Retry-After); valid tokens still pass', async () => {
    const api = await startApi({ store, log, authFailures: new FailureLimiter({ unknownPerRoute: 20 }) });
    try {
      const { current } = await rotatedOrg();
      for (let i = 0; i < 20; i++) assert.equal((await callWebhook(api, `guess-${i}`)).status, 401);
      const res = await fetch(`${api.url}/webhooks/creatio/guess-21`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ event_type: 'new_activity', caseId: randomUUID() }),
      });
      assert.equal(res.status, 429);
      assert.ok(Number(res.headers.get('retry-after')) > 0);
      assert.equal((await callWebhook(api, current)).status, 200);
      assert.equal((await api.request('GET', '/v1/orgs/acme/integrations/creatio')).status, 404);
      const otherRoute = await api.request('GET', '/v1/orgs/acme/integrations/creatio', undefined, {
        authorization: 'Bearer another-guess',
      });
      assert.equal(otherRoute.status, 401);
    } finally {
      await api.close();
    }
  });

  it('memory stays bounded: at most maxKeys credentials are remembered', () => {
    const limiter = new FailureLimiter({ maxKeys: 100, unknownPerRoute: 1_000_000 });
    for (let i = 0; i < 10_000; i++) limiter.fail('v1', `guess-${i}`);
    const perKey = (limiter as unknown as { perKey: Map<string, number[]> }).perKey;
    assert.equal(perKey.size, 100);
  });
});

describe('edge: opencx.apiBaseUrl is https in production', () => {
  let store: Store;
  before(async () => {
    store = await openTestStore(log);
  });
  after(() => store.close());

  it('an http apiBaseUrl → 400 naming opencx.apiBaseUrl (PUT and /test); development keeps http', async () => {
    const api = await startApi({ store, log, config: { ...testConfig, env: 'production' } });
    const body = {
      instanceUrl: 'https://acme.creatio.com',
      clientId: 'client',
      clientSecret: 'secret',
      opencx: { apiBaseUrl: 'http://api.open.cx', apiKey: 'key' },
    };
    try {
      for (const path of ['/v1/orgs/acme/integrations/creatio', '/v1/orgs/acme/integrations/creatio/test']) {
        const r = await api.request(path.endsWith('/test') ? 'POST' : 'PUT', path, body);
        assert.equal(r.status, 400, r.text);
        assert.equal(r.body.error.field, 'opencx.apiBaseUrl');
        assert.match(r.body.error.message, /opencx\.apiBaseUrl must use https/);
      }
    } finally {
      await api.close();
    }
    const dev = await startApi({ store, log, config: { ...testConfig, env: 'development' } });
    try {
      const r = await dev.request('POST', '/v1/orgs/acme/integrations/creatio/test', {
        ...body,
        instanceUrl: 'http://127.0.0.1:9',
      });
      assert.notEqual(r.body?.error?.field, 'opencx.apiBaseUrl', r.text);
    } finally {
      await dev.close();
    }
  });
});

describe('edge: IPv6 ranges the outbound policy refuses', () => {
  const policy = (address: string) => ({
    allowLoopback: false,
    resolve: async () => [{ address, family: 6 }],
  });
  const cases: [range: string, address: string, cls: string][] = [
    ['::/96 (IPv4-compatible)', '::7f00:1', 'reserved'],
    ['::/96 (IPv4-compatible, dotted)', '::10.0.0.1', 'reserved'],
    ['::ffff:0:0/96 → loopback', '::ffff:7f00:1', 'loopback'],
    ['::ffff:0:0/96 → private', '0:0:0:0:0:ffff:a00:1', 'private'],
    ['::ffff:0:0/96 → metadata', '::ffff:169.254.169.254', 'metadata'],
    ['64:ff9b:1::/48 (local-use NAT64)', '64:ff9b:1::a00:1', 'reserved'],
    ['2002::/16 (6to4)', '2002:a00:1::1', 'reserved'],
    ['fec0::/10 (site-local)', 'fec0::1', 'private'],
  ];
  for (const [range, address, cls] of cases) {
    it(`${range}: ${address} is ${cls} and refused`, async () => {
      assert.equal(classifyAddress(address), cls);
      await assert.rejects(
        checkedAddress('target.example.com', policy(address)),
        (e: unknown) => e instanceof OutboundAddressRefusedError && e.addressClass === cls,
      );
    });
  }

  it('public addresses, mapped ones included, are still allowed', async () => {
    for (const address of ['::ffff:8.8.8.8', '::ffff:808:808', '2606:4700::1111']) {
      assert.equal(classifyAddress(address), 'public', address);
      assert.equal((await checkedAddress('target.example.com', policy(address))).address, address);
    }
  });
});

describe('edge: /readyz tells details to the operator only', () => {
  const stubStore = { onSettingsChanged: () => undefined } as unknown as Store;
  const failing = async (): Promise<Readiness> => ({
    ready: false,
    checks: {
      store: { ok: false, detail: 'connect ECONNREFUSED 10.1.2.3:5432' },
      workers: { ok: true, detail: { limiters: { 'org-secret-acme': 12 } } },
    },
  });

  for (const kind of ['api', 'worker-only'] as const) {
    it(`${kind}: without a token ok/not-ok only; details with the operator token; 401 with another`, async () => {
      const metrics = new Metrics();
      const config = { ...testConfig };
      const app =
        kind === 'api'
          ? createApp({ config, store: stubStore, log, metrics, readiness: failing })
          : createOpsApp({ log, metrics, readiness: failing, config });
      const server = http.createServer(app);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/readyz`;
      try {
        const anon = await fetch(url);
        assert.equal(anon.status, 503);
        const text = await anon.text();
        assert.deepEqual(JSON.parse(text), { ready: false });
        for (const secret of ['ECONNREFUSED', '10.1.2.3', 'org-secret-acme', 'store', 'workers']) {
          assert.ok(!text.includes(secret), `${secret} in ${text}`);
        }
        const operator = await fetch(url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        assert.equal(operator.status, 503);
        const details = (await operator.json()) as Readiness;
        assert.match(JSON.stringify(details.checks.store), /ECONNREFUSED/);
        const other = await fetch(url, { headers: { authorization: 'Bearer not-the-operator' } });
        assert.equal(other.status, 401);
      } finally {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      }
    });
  }
});

describe('edge: readiness probes in the log', () => {
  for (const kind of ['api', 'worker-only'] as const) {
    it(`${kind}: a probe answered 200 writes no line at info; one answered 503 writes one`, async () => {
      const { log: captured, lines } = capturingLogger('info');
      let ready = true;
      const readiness = async (): Promise<Readiness> => ({ ready, checks: {} });
      const config = { ...testConfig };
      const store = { onSettingsChanged: () => undefined } as unknown as Store;
      const app =
        kind === 'api'
          ? createApp({ config, store, log: captured, metrics: new Metrics(), readiness })
          : createOpsApp({ log: captured, metrics: new Metrics(), readiness, config });
      const server = http.createServer(app);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/readyz`;
      try {
        assert.equal((await fetch(url, { headers: { 'x-request-id': 'probe-up' } })).status, 200);
        ready = false;
        assert.equal((await fetch(url, { headers: { 'x-request-id': 'probe-down' } })).status, 503);
        const parsed = lines.map(
          (l) => JSON.parse(l) as { msg?: string; req?: { id?: string }; res?: { statusCode?: number } },
        );
        // The later probe's line first: the log is written, so the earlier probe's absence counts.
        const down = parsed.filter((l) => l.req?.id === 'probe-down');
        assert.deepEqual(
          down.map((l) => [l.msg, l.res?.statusCode]),
          [['request errored', 503]],
        );
        assert.deepEqual(
          parsed.filter((l) => l.req?.id === 'probe-up'),
          [],
        );
      } finally {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      }
    });
  }
});

describe('edge: a worker-only process meets an unexpected error', () => {
  it('answers the JSON 500 every route answers, with its request id, and logs the error', async () => {
    const { log: captured, lines } = capturingLogger('info');
    const app = createOpsApp({
      log: captured,
      metrics: new Metrics(),
      readiness: () => Promise.reject(new Error('readiness exploded')),
      config: { adminApiToken: ADMIN_TOKEN, trustProxy: 'loopback' },
    });
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/readyz`, {
        headers: { 'x-request-id': 'ops-rid-1' },
      });
      assert.equal(res.status, 500);
      assert.equal(res.headers.get('x-request-id'), 'ops-rid-1');
      const body = (await res.json()) as { error: { code: string } };
      assert.equal(body.error.code, 'internal_error');
      const ofRequest = lines
        .map((l) => JSON.parse(l) as { msg?: string; req?: { id?: string }; err?: { message?: string } })
        .filter((l) => l.req?.id === 'ops-rid-1');
      assert.ok(
        ofRequest.some((l) => l.msg === 'unhandled error' && l.err?.message === 'readiness exploded'),
        JSON.stringify(ofRequest),
      );
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('edge: HTTP server limits and TRUST_PROXY from the configuration', () => {
  it('defaults, validation, and the values the server gets', () => {
    const c = loadConfig({});
    assert.equal(c.trustProxy, 'loopback');
    assert.deepEqual(c.http, {
      headersTimeoutMs: 20_000,
      requestTimeoutMs: 60_000,
      keepAliveTimeoutMs: 5_000,
      maxConnections: 1_000,
    });
    assert.equal(loadConfig({ TRUST_PROXY: '1' }).trustProxy, 1);
    assert.equal(loadConfig({ TRUST_PROXY: 'loopback,fd00::/8' }).trustProxy, 'loopback,fd00::/8');
    for (const bad of ['true', '10.0.0.0/33', 'proxy.example.com']) {
      assert.throws(
        () => loadConfig({ TRUST_PROXY: bad }),
        (e: unknown) => e instanceof ConfigError && /TRUST_PROXY/.test(e.message),
        bad,
      );
    }
    assert.throws(
      () => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '90000', HTTP_REQUEST_TIMEOUT_MS: '60000' }),
      /HTTP_HEADERS_TIMEOUT_MS/,
    );
    const server = createHttpServer(() => undefined, { ...c.http, maxConnections: 7 });
    assert.equal(server.headersTimeout, 20_000);
    assert.equal(server.requestTimeout, 60_000);
    assert.equal(server.keepAliveTimeout, 5_000);
    assert.equal(server.maxConnections, 7);
  });

  it('a connection past maxConnections is closed; a request that never finishes its headers is cut off', async () => {
    const server = createHttpServer((_q, r) => r.end('ok'), {
      headersTimeoutMs: 1_000,
      requestTimeoutMs: 1_000,
      keepAliveTimeoutMs: 1_000,
      maxConnections: 1,
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const first = net.connect(port, '127.0.0.1');
      await new Promise((r) => first.once('connect', r));
      first.write('GET / HTTP/1.1\r\nHost: x\r\n');
      const second = net.connect(port, '127.0.0.1');
      await new Promise<void>((resolve) => second.once('close', () => resolve()));
      const started = Date.now();
      const answer = await new Promise<string>((resolve) => {
        let data = '';
        first.on('data', (d: Buffer) => (data += d.toString()));
        first.once('close', () => resolve(data));
      });
      assert.ok(Date.now() - started < 5_000);
      assert.match(answer, /^HTTP\/1\.1 408/);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
