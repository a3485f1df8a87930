/**
 * Request ids and request logging (src/api/request-log.ts): every answer carries its request id;
 * a completed request writes one line at the level chosen for it; `req.log` carries the request
 * (URL without the Creatio webhook's token) and is made only when something logs.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type http from 'node:http';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { useRequestLog } from '../../src/api/request-log';
import { capturingLogger } from '../helpers';

interface Line {
  msg?: string;
  level?: number;
  req?: { id?: string; method?: string; url?: string };
  res?: { statusCode?: number };
  responseTime?: number;
}

describe('request logging', () => {
  const { log, lines } = capturingLogger('info');
  let server: http.Server;
  let url = '';
  let childMade = 0;
  let slowArrived: () => void = () => {};
  const parsed = () => lines.map((l) => JSON.parse(l) as Line);
  const ofRequest = (id: string) => parsed().filter((l) => l.req?.id === id);

  before(async () => {
    const app = express();
    const child = log.child.bind(log);
    log.child = ((...args: Parameters<typeof log.child>) => {
      childMade++;
      return child(...args);
    }) as typeof log.child;
    useRequestLog(app, log, {
      ignore: (req) => req.originalUrl === '/healthz',
      level: (req, res) => (res.statusCode < 300 && req.originalUrl.startsWith('/quiet') ? 'silent' : 'info'),
    });
    app.get('/healthz', (_req, res) => void res.json({ ok: true }));
    app.get('/quiet', (_req, res) => void res.json({ ok: true }));
    app.get('/ok', (_req, res) => void res.json({ ok: true }));
    app.get('/fails', (_req, res) => void res.status(502).json({ error: 'upstream' }));
    app.post('/webhooks/creatio/:token', (req, res) => {
      req.log.info({ orgId: 'o1' }, 'handler line');
      req.log.info('second handler line');
      res.status(200).json({ ok: true });
    });
    app.get('/slow', () => {
      // never answers: the client leaves first
      slowArrived();
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  const get = async (path: string, requestId: string, method = 'GET') => {
    const res = await fetch(`${url}${path}`, { method, headers: { 'x-request-id': requestId } });
    await res.arrayBuffer();
    return res;
  };

  it('answers with the request id it was sent, or a new one when that one is unusable', async () => {
    const res = await get('/ok', 'rid-ok-1');
    assert.equal(res.headers.get('x-request-id'), 'rid-ok-1');
    const bad = await fetch(`${url}/ok`, { headers: { 'x-request-id': 'has spaces and ; semicolons' } });
    await bad.arrayBuffer();
    assert.match(bad.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  });

  it('writes "request completed" and "request errored" with the status and time', async () => {
    await get('/ok', 'rid-ok-2');
    await get('/fails', 'rid-fails-1');
    const ok = ofRequest('rid-ok-2');
    assert.equal(ok.length, 1, JSON.stringify(ok));
    assert.equal(ok[0]!.msg, 'request completed');
    assert.equal(ok[0]!.res?.statusCode, 200);
    assert.equal(ok[0]!.req?.url, '/ok');
    assert.equal(typeof ok[0]!.responseTime, 'number');
    const failed = ofRequest('rid-fails-1');
    assert.equal(failed.length, 1, JSON.stringify(failed));
    assert.equal(failed[0]!.msg, 'request errored');
    assert.equal(failed[0]!.res?.statusCode, 502);
  });

  it('makes no logger for a request that logs nothing; one, reused, for a request that does', async () => {
    // Positive control first: a request that logs makes exactly one child for its lines.
    const before1 = childMade;
    await get('/webhooks/creatio/SECRET-TOKEN-123', 'rid-token-1', 'POST');
    assert.equal(childMade - before1, 1);
    const lines1 = ofRequest('rid-token-1');
    assert.deepEqual(
      lines1.map((l) => l.msg),
      ['handler line', 'second handler line', 'request completed'],
    );
    for (const l of lines1) assert.equal(l.req?.url, '/webhooks/creatio/[REDACTED]');
    assert.ok(!lines.some((l) => l.includes('SECRET-TOKEN-123')), 'the token is never logged');

    const before2 = childMade;
    await get('/quiet', 'rid-quiet-1');
    await get('/healthz', 'rid-health-1');
    assert.equal(childMade - before2, 0);
    assert.deepEqual(ofRequest('rid-quiet-1'), []);
    assert.deepEqual(ofRequest('rid-health-1'), []);
  });

  it('writes "request aborted" when the client leaves before the answer', async () => {
    const ac = new AbortController();
    const arrived = new Promise<void>((r) => (slowArrived = r));
    const pending = fetch(`${url}/slow`, { headers: { 'x-request-id': 'rid-slow-1' }, signal: ac.signal });
    await arrived;
    ac.abort();
    await assert.rejects(pending);
    const deadline = Date.now() + 5_000;
    while (ofRequest('rid-slow-1').length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const aborted = ofRequest('rid-slow-1');
    assert.equal(aborted.length, 1, JSON.stringify(aborted));
    assert.equal(aborted[0]!.msg, 'request aborted');
  });
});
