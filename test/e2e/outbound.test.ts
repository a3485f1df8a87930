import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  checkedAddress,
  classifyAddress,
  OutboundAddressRefusedError,
  policyFetch,
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
      policyFetch(`http://internal.example:${port}/`, {}, { allowLoopback: false, resolve: resolver }),
      (e: unknown) => e instanceof OutboundAddressRefusedError && e.addressClass === 'loopback',
    );
    assert.equal(connections, before, 'no connection was made');
    // Positive control: the same request where loopback is allowed reaches the server.
    const res = await policyFetch(
      `http://internal.example:${port}/`,
      {},
      { allowLoopback: true, resolve: resolver },
    );
    assert.equal(await res.text(), 'ok');
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
      policyFetch(`http://rebind.example:${port}/`, {}, { allowLoopback: false, resolve: resolver }),
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
