import assert from 'node:assert/strict';
import http from 'node:http';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  checkedAddress,
  classifyAddress,
  OutboundAddressRefusedError,
  OutboundNetworkError,
  outboundRequest,
  readCapped,
  type Resolver,
} from '../../src/net/outbound';
import { OpenCXClient, OpenCXError } from '../../src/opencx/client';
import { Bridge } from '../bridge-harness';

/**
 * The outbound address policy. No test here sends traffic anywhere but 127.0.0.1: other addresses
 * come from an injected resolver, and the assertions are that nothing connected.
 */
describe('outbound address policy (SSRF)', () => {
  let server: http.Server;
  let port = 0;
  let connections = 0;
  let respond: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_q, r) => r.end('ok');
  before(async () => {
    server = http.createServer((q, r) => respond(q, r));
    server.on('connection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('classifies private, link-local, loopback, metadata and mapped addresses', () => {
    const cases: [string, string][] = [
      ['10.1.2.3', 'private'],
      ['172.20.0.1', 'private'],
      ['192.168.1.1', 'private'],
      ['100.64.0.1', 'private'],
      ['169.254.169.254', 'metadata'],
      ['169.254.10.10', 'link_local'],
      ['127.0.0.1', 'loopback'],
      ['127.8.9.10', 'loopback'],
      ['0.0.0.0', 'unspecified'],
      ['224.0.0.1', 'multicast'],
      ['::1', 'loopback'],
      ['fe80::1', 'link_local'],
      ['fd12:3456::1', 'private'],
      ['fd00:ec2::254', 'metadata'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:169.254.169.254', 'metadata'],
      ['8.8.8.8', 'public'],
      ['2606:4700::1111', 'public'],
    ];
    for (const [ip, cls] of cases) assert.equal(classifyAddress(ip), cls, ip);
  });

  it('a host that resolves to a refused address gets no connection; loopback works where allowed', async () => {
    const resolver: Resolver = () => Promise.resolve([{ address: '127.0.0.1', family: 4 }]);
    const before = connections;
    await assert.rejects(
      outboundRequest(`http://internal.example:${port}/`, {}, { allowLoopback: false, resolve: resolver }),
      (e: unknown) => e instanceof OutboundAddressRefusedError && e.addressClass === 'loopback',
    );
    assert.equal(connections, before, 'no connection was made');
    // Positive control: the same request where loopback is allowed reaches the server.
    const res = await outboundRequest(
      `http://internal.example:${port}/`,
      {},
      { allowLoopback: true, resolve: resolver },
    );
    assert.equal(await readCapped(res, 100, 'the server'), 'ok');
    assert.equal(connections, before + 1);
  });

  it('metadata, private and mixed answers are refused before anything is sent', async () => {
    for (const addresses of [
      ['169.254.169.254'],
      ['10.0.0.5'],
      ['fe80::1'],
      ['8.8.8.8', '192.168.0.10'],
      ['::ffff:10.0.0.1'],
    ]) {
      const resolver: Resolver = () =>
        Promise.resolve(addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
      await assert.rejects(checkedAddress('api.example.com', { allowLoopback: true, resolve: resolver }), {
        name: 'OutboundAddressRefusedError',
      });
    }
    await assert.rejects(checkedAddress('169.254.169.254', { allowLoopback: true }), /metadata address/);
  });

  it('DNS rebinding: the address is checked again at connect time, and the refused one is never used', async () => {
    let lookups = 0;
    // First answer public (the pre-check), then private (when the connection is made).
    const resolver: Resolver = () =>
      Promise.resolve([{ address: lookups++ === 0 ? '8.8.4.4' : '10.0.0.7', family: 4 }]);
    const before = connections;
    await assert.rejects(
      outboundRequest(`http://rebind.example:${port}/`, {}, { allowLoopback: false, resolve: resolver }),
      (e: unknown) =>
        (e as { cause?: unknown }).cause instanceof OutboundAddressRefusedError ||
        e instanceof OutboundAddressRefusedError,
    );
    assert.equal(lookups, 2, 'looked up at the check and again at connect');
    assert.equal(connections, before);
  });

  it('the OpenCX client follows no redirect and reads no answer past its cap', async () => {
    respond = (_q, r) => {
      r.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
      r.end();
    };
    const client = new OpenCXClient(`http://127.0.0.1:${port}`, 'key', 2_000);
    await assert.rejects(
      client.resolveSession('s1'),
      (e: unknown) => e instanceof OpenCXError && e.status === 302,
    );
    respond = (_q, r) => {
      r.writeHead(200, { 'content-type': 'application/json' });
      r.end(`{"pad":"${'x'.repeat(2 * 1024 * 1024)}"}`);
    };
    await assert.rejects(client.resolveSession('s1'), /more than 1048576 bytes/);
    respond = (_q, r) => r.end('ok');
  });
});

describe('the outbound transport', () => {
  let server: http.Server;
  let base = '';
  let connections = 0;
  let seen: http.IncomingHttpHeaders = {};
  let respond: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_q, r) => r.end('ok');
  before(async () => {
    server = http.createServer((q, r) => {
      seen = q.headers;
      respond(q, r);
    });
    server.on('connection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('sends the method, headers and body, and names itself', async () => {
    let received = '';
    respond = (q, r) => {
      q.setEncoding('utf8');
      q.on('data', (c: string) => (received += c));
      q.on('end', () =>
        r.writeHead(201, { 'content-type': 'application/json', 'x-two': ['a', 'b'] }).end('{}'),
      );
    };
    const res = await outboundRequest(`${base}/x`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer t' },
      body: '{"Ö":1}',
    });
    assert.equal(res.status, 201);
    assert.equal(res.ok, true);
    assert.equal(res.headers.get('Content-Type'), 'application/json');
    assert.equal(res.headers.get('x-two'), 'a, b');
    assert.equal(res.headers.get('retry-after'), null);
    assert.equal(await readCapped(res, 100, 'the server'), '{}');
    assert.equal(received, '{"Ö":1}');
    assert.equal(seen['content-length'], String(Buffer.byteLength('{"Ö":1}')));
    assert.equal(seen.authorization, 'Bearer t');
    assert.equal(seen['user-agent'], 'opencx-creatio-bridge');
    respond = (_q, r) => r.end('ok');
  });

  it('a discarded or fully read answer leaves its connection for the next request', async () => {
    // A server of its own, so that no connection from another test is counted.
    let opened = 0;
    const own = http.createServer((q, r) =>
      q.url === '/a' ? r.writeHead(401).end('{"error":"expired"}') : r.end('ok'),
    );
    own.on('connection', () => opened++);
    await new Promise<void>((r) => own.listen(0, '127.0.0.1', r));
    const at = `http://127.0.0.1:${(own.address() as AddressInfo).port}`;
    try {
      for (let i = 0; i < 3; i++) (await outboundRequest(`${at}/a`)).discard();
      for (let i = 0; i < 3; i++)
        assert.equal(await readCapped(await outboundRequest(`${at}/b`), 10, 'b'), 'ok');
      // Without reuse each request opens its own; a connection freed a moment late may add one.
      assert.ok(opened >= 1 && opened <= 2, `${opened} connections for six requests`);
    } finally {
      own.closeAllConnections();
      await new Promise<void>((r) => own.close(() => r()));
    }
  });

  it('decodes a compressed answer, and caps it by its decoded size', async () => {
    const json = JSON.stringify({ value: [{ Id: 'x', Name: 'é'.repeat(1000) }] });
    respond = (_q, r) => r.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(json));
    assert.equal(await readCapped(await outboundRequest(`${base}/z`), 10_000, 'z'), json);
    assert.equal(seen['accept-encoding'], 'gzip, br');
    // Two codings, the last applied first; brotli alone.
    respond = (_q, r) =>
      r.writeHead(200, { 'content-encoding': 'gzip, br' }).end(brotliCompressSync(gzipSync(json)));
    assert.equal(await readCapped(await outboundRequest(`${base}/zz`), 10_000, 'zz'), json);
    respond = (_q, r) => r.writeHead(200, { 'content-encoding': 'br' }).end(brotliCompressSync(json));
    assert.equal(await readCapped(await outboundRequest(`${base}/br`), 10_000, 'br'), json);
    // A small compressed body that decodes to 8 MiB: refused once 1 MiB has been decoded.
    const bomb = gzipSync(Buffer.alloc(8 * 1024 * 1024, 'a'));
    assert.ok(bomb.length < 64 * 1024);
    respond = (_q, r) => r.writeHead(200, { 'content-encoding': 'gzip' }).end(bomb);
    await assert.rejects(readCapped(await outboundRequest(`${base}/bomb`), 1024 * 1024, 'bomb'), {
      name: 'ResponseTooLargeError',
    });
    // Empty answers that name a coding (a 204 to a PATCH, a 401 with no body) read as empty.
    respond = (_q, r) => r.writeHead(204, { 'content-encoding': 'gzip' }).end();
    const noContent = await outboundRequest(`${base}/patch`, { method: 'PATCH', body: '{}' });
    assert.equal(noContent.status, 204);
    assert.equal(await readCapped(noContent, 100, 'patch'), '');
    respond = (_q, r) => r.writeHead(401, { 'content-encoding': 'gzip', 'content-length': '0' }).end();
    assert.equal(await readCapped(await outboundRequest(`${base}/expired`), 100, 'expired'), '');
    // A broken compressed body is a network-class failure, not a silent empty answer.
    respond = (_q, r) => r.writeHead(200, { 'content-encoding': 'gzip' }).end('not gzip at all');
    await assert.rejects(readCapped(await outboundRequest(`${base}/bad`), 1000, 'bad'), OutboundNetworkError);
    respond = (_q, r) => r.end('ok');
  });

  it('a declared length past the cap is refused before the body is read', { timeout: 10_000 }, async () => {
    // The body never ends and no signal is given: reading it, or draining it, would never return.
    respond = (_q, r) => {
      r.writeHead(200, { 'content-length': '5000' });
      r.write('x');
    };
    const res = await outboundRequest(`${base}/big`);
    await assert.rejects(readCapped(res, 4999, 'big'), { name: 'ResponseTooLargeError' });
    respond = (_q, r) => r.end('ok');
  });

  it(
    "the caller's timeout covers the lookup and connect, the answer, and the body (plain or compressed)",
    { timeout: 5_000 },
    async () => {
      // The connect-time lookup never answers (the check before it does): only the signal ends it,
      // long before undici's own 10 s connect timeout (the test's 5 s limit tells the two apart).
      let lookups = 0;
      const stalled: Resolver = () =>
        lookups++ === 0
          ? Promise.resolve([{ address: '127.0.0.1', family: 4 }])
          : new Promise(() => undefined);
      await assert.rejects(
        outboundRequest(
          `http://stalled.example:${new URL(base).port}/`,
          { signal: AbortSignal.timeout(200) },
          {
            allowLoopback: true,
            resolve: stalled,
          },
        ),
        { name: 'TimeoutError' },
      );
      assert.equal(lookups, 2, 'it was waiting on the connect-time lookup');
      respond = () => undefined; // never answers
      await assert.rejects(outboundRequest(`${base}/hang`, { signal: AbortSignal.timeout(150) }), {
        name: 'TimeoutError',
      });
      respond = (_q, r) => {
        r.writeHead(200, { 'content-type': 'application/json' });
        r.write('{"value":['); // and never ends
      };
      const res = await outboundRequest(`${base}/slow-body`, { signal: AbortSignal.timeout(300) });
      assert.equal(res.status, 200);
      await assert.rejects(readCapped(res, 1000, 'slow'), { name: 'TimeoutError' });
      const gz = gzipSync('{"value":[' + '1,'.repeat(1000) + '1]}');
      respond = (_q, r) => {
        r.writeHead(200, { 'content-encoding': 'gzip' });
        r.write(gz.subarray(0, 40)); // and never ends
      };
      const zipped = await outboundRequest(`${base}/slow-gzip`, { signal: AbortSignal.timeout(300) });
      await assert.rejects(readCapped(zipped, 100_000, 'slow gzip'), { name: 'TimeoutError' });
      respond = (_q, r) => r.end('ok');
    },
  );

  it('refused connections and resets carry the transport code as the cause', async () => {
    const code = (e: unknown) => (e as { cause?: { code?: unknown } }).cause?.code;
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await assert.rejects(
      outboundRequest(`http://127.0.0.1:${port}/`),
      (e: unknown) => e instanceof OutboundNetworkError && code(e) === 'ECONNREFUSED',
    );
    respond = (q) => q.socket.destroy();
    await assert.rejects(
      outboundRequest(`${base}/reset`),
      (e: unknown) =>
        e instanceof OutboundNetworkError && /^(UND_ERR_SOCKET|ECONNRESET)$/.test(String(code(e))),
    );
    respond = (_q, r) => {
      r.writeHead(200, { 'content-length': '100' });
      r.write('partial');
      setTimeout(() => r.socket?.destroy(), 20);
    };
    const res = await outboundRequest(`${base}/cut`);
    await assert.rejects(
      readCapped(res, 1000, 'cut'),
      (e: unknown) =>
        e instanceof OutboundNetworkError && /^(UND_ERR_SOCKET|ECONNRESET)$/.test(String(code(e))),
    );
    respond = (_q, r) => r.end('ok');
  });
});

describe('outbound address policy in Test & Save', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  it('an instance URL on a private or metadata address is refused with a named error', async () => {
    for (const instanceUrl of ['https://10.20.30.40', 'https://169.254.169.254', 'https://[fd00::1]']) {
      const r = await bridge.api.request('POST', `/v1/orgs/ssrf/integrations/creatio/test`, {
        instanceUrl,
        clientId: 'c',
        clientSecret: 's',
      });
      assert.equal(r.status, 200, r.text);
      const check = r.body.checks.find((c: { name: string }) => c.name === 'instance_reachable');
      assert.equal(check.code, 'instance_url_address_refused', JSON.stringify(check));
      assert.match(check.message, /only public addresses are allowed/);
    }
  });
});
