import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { Connection } from '@temporalio/client';
import { after, before, describe, it } from 'node:test';
import { temporal } from '@temporalio/proto';
import { ConfigError, loadConfig } from '../../src/config';
import { EncryptionCodec, parsePayloadKeys } from '../../src/temporal/codec';
import { connectionSecurity } from '../../src/temporal/connection';
import { capturingLogger } from '../helpers';
import { Bridge, ev, waitFor } from '../bridge-harness';

/** Markup that must never reach Creatio as markup: each one would run or render in an agent's browser. */
const PAYLOADS = [
  '<img src=x onerror=alert(1)>',
  '<script>alert(document.cookie)</script>',
  '"><svg onload=alert(1)>',
  "'><iframe src=javascript:alert(1)>",
  '<a href="javascript:alert(1)">click</a>',
  '<style>body{display:none}</style>',
  '&lt;b&gt;already escaped&lt;/b&gt; & <b>bold</b>',
];

/** The only markup the bridge itself writes into activity bodies. */
const OWN_TAGS = new Set(['p', 'b', 'br', 'ul', 'li', 'a']);

function assertInert(html: string, where: string): void {
  for (const m of html.matchAll(/<\/?([a-zA-Z][\w-]*)([^>]*)>/g)) {
    const [tag, name = '', attrs = ''] = m;
    assert.ok(OWN_TAGS.has(name.toLowerCase()), `${where}: foreign tag ${tag}`);
    assert.doesNotMatch(attrs, /\son\w+\s*=/i, `${where}: event handler in ${tag}`);
    const href = /href="([^"]*)"/.exec(attrs)?.[1];
    if (href !== undefined) {
      assert.match(href, /^(https:\/\/|http:\/\/127\.0\.0\.1[:/])/, `${where}: link ${href}`);
    }
  }
}

describe('security: nothing from a conversation becomes markup in Creatio', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  it('a catalogue of payloads in every field lands escaped; unsafe links are not kept', async () => {
    const orgId = await bridge.connectOrg();
    const s = `sec-${randomUUID().slice(0, 12)}`;
    const evil = PAYLOADS.join(' ');
    await bridge.send(
      orgId,
      'conversation.started',
      ev.started(s, { name: `Mallory ${PAYLOADS[0]}`, email: 'mallory@example.com' }),
    );
    for (const [i, p] of PAYLOADS.entries()) {
      await bridge.send(orgId, 'conversation.contact_response', {
        ...ev.message(s, `m${i}`, p),
        message: {
          id: `m${i}`,
          text: p,
          attachments: [
            { name: `${p}.pdf`, url: 'javascript:alert(1)', mime_type: 'application/pdf' },
            { name: 'ok.pdf', url: `https://files.example.com/ok.pdf?q=${encodeURIComponent(p)}` },
            { name: 'data.html', url: 'data:text/html,<script>alert(1)</script>' },
          ],
        },
      });
    }
    await bridge.send(orgId, 'conversation.handoff_to_human', {
      ...ev.handoff(s),
      summary: `Summary ${evil}`,
      reason: PAYLOADS[1],
      language: PAYLOADS[2],
      sentiment: PAYLOADS[3],
    });
    const caseId = await bridge.caseOf(orgId, s);
    const activities = await waitFor('the handoff note', () => {
      const rows = bridge.activitiesOf(caseId);
      return rows.some((a) => String(a.Title).includes('Handed off')) ? rows : undefined;
    });
    assert.ok(activities.length >= PAYLOADS.length + 2);
    for (const a of activities) assertInert(String(a.Body), String(a.Title));
    const note = activities.find((a) => String(a.Title).includes('Handed off'))!;
    assert.match(String(note.Body), /&lt;img src=x onerror=alert\(1\)&gt;/);
    const withLinks = activities.find((a) => String(a.Body).includes('ok.pdf'))!;
    assert.match(String(withLinks.Body), /<a href="https:\/\/files\.example\.com\/ok\.pdf/);
    assert.match(String(withLinks.Body), /link not kept: only https links are/);
    assert.doesNotMatch(String(withLinks.Body), /javascript:|data:text/);
  });

  it('changing instanceUrl or the OpenCX base without the secret for it → 400 naming the field', async () => {
    const orgId = await bridge.connectOrg();
    const current = (await bridge.api.request('GET', `/v1/orgs/${orgId}/integrations/creatio`)).body;
    const other = 'http://127.0.0.2:9';
    const moved = await bridge.api.request('PUT', `/v1/orgs/${orgId}/integrations/creatio`, {
      instanceUrl: other,
      clientId: current.clientId,
    });
    assert.equal(moved.status, 400);
    assert.equal(moved.body.error.field, 'clientSecret');
    assert.match(moved.body.error.message, /required when instanceUrl changes/);
    const tested = await bridge.api.request('POST', `/v1/orgs/${orgId}/integrations/creatio/test`, {
      instanceUrl: bridge.emu.url,
      identityServiceUrl: other,
      clientId: current.clientId,
    });
    assert.equal(tested.status, 400);
    assert.match(tested.body.error.message, /required when identityServiceUrl changes/);
    const opencx = await bridge.api.request('PUT', `/v1/orgs/${orgId}/integrations/creatio`, {
      instanceUrl: bridge.emu.url,
      clientId: current.clientId,
      opencx: { apiBaseUrl: other },
    });
    assert.equal(opencx.status, 400);
    assert.equal(opencx.body.error.field, 'opencx.apiKey');
    // The same update with nothing moved keeps the stored secrets (positive control).
    const same = await bridge.api.request('PUT', `/v1/orgs/${orgId}/integrations/creatio`, {
      instanceUrl: bridge.emu.url,
      clientId: current.clientId,
    });
    assert.equal(same.status, 200, same.text);
    assert.equal(same.body.opencx.apiKey, '********');
  });
});

describe('security: secrets never reach a log line', () => {
  it('at any depth, under any letter case, and webhook tokens in any string', () => {
    const { log, lines } = capturingLogger('info');
    const token = 'tok_9f8e7d6c5b4a';
    log.info(
      {
        a: { b: { c: { d: { ClientSecret: 's3cr3t-deep', APIKEY: 'key-deep' } } } },
        list: [{ Authorization: 'Bearer abc.def' }],
        url: `https://bridge.example.com/WEBHOOKS/Creatio/${token}?x=1`,
        err: new Error(`POST /webhooks/creatio/${token} failed`),
      },
      `called /Webhooks/CREATIO/${token}`,
    );
    const out = lines.join('');
    for (const secret of ['s3cr3t-deep', 'key-deep', 'abc.def', token]) {
      assert.ok(!out.includes(secret), `${secret} leaked: ${out}`);
    }
    assert.match(out, /\[REDACTED\]/);
  });
});

describe('security: deployment guards', () => {
  const base = { ADMIN_API_TOKEN: 'x'.repeat(32), ENCRYPTION_KEY: Buffer.alloc(32).toString('base64') };
  const prod = {
    ...base,
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://db/bridge',
    TEMPORAL_ADDRESS: 'temporal:7233',
  };

  it('production refuses an http:// PUBLIC_BASE_URL (the webhook URL carries its token)', () => {
    assert.throws(
      () => loadConfig({ ...prod, PUBLIC_BASE_URL: 'http://bridge.example.com' }),
      (e: unknown) => e instanceof ConfigError && /PUBLIC_BASE_URL: must be https/.test(e.message),
    );
    assert.doesNotThrow(() => loadConfig({ ...prod, PUBLIC_BASE_URL: 'https://bridge.example.com' }));
  });

  it('the sandbox refuses to listen on a non-loopback HOST', () => {
    assert.throws(
      () => loadConfig({ HOST: '0.0.0.0' }),
      (e: unknown) => e instanceof ConfigError && /HOST: the sandbox/.test(e.message),
    );
    assert.doesNotThrow(() => loadConfig({ HOST: '0.0.0.0', SANDBOX: 'off' }));
    assert.doesNotThrow(() => loadConfig({ HOST: '127.0.0.1' }));
  });
});

describe('security: transcripts are encrypted in Temporal history', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  it('no message text or contact detail is in the history in clear; the codec endpoint reads it back', async () => {
    const orgId = await bridge.connectOrg();
    const s = `enc-${randomUUID().slice(0, 12)}`;
    const secretText = `my card number is 4111-${randomUUID()}`;
    const email = `jane.${randomUUID().slice(0, 8)}@example.com`;
    await bridge.send(orgId, 'conversation.started', ev.started(s, { name: 'Jane Private', email }));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', secretText));
    const caseId = await bridge.caseOf(orgId, s);
    await waitFor('logged', () => bridge.activitiesOf(caseId).some((a) => String(a.Body).includes('4111')));

    const history = await bridge.client.workflowService.getWorkflowExecutionHistory({
      namespace: 'default',
      execution: { workflowId: `conversation:${orgId}:${s}` },
    });
    const raw = Buffer.from(
      temporal.api.workflowservice.v1.GetWorkflowExecutionHistoryResponse.encode(history).finish(),
    );
    for (const clear of [secretText, email, 'Jane Private']) {
      assert.equal(raw.indexOf(clear), -1, `"${clear}" is in the history in clear`);
    }
    const signal = history.history!.events!.find((e) => e.workflowExecutionSignaledEventAttributes)!;
    const payload = signal.workflowExecutionSignaledEventAttributes!.input!.payloads![0]!;
    assert.equal(Buffer.from(payload.metadata!.encoding!).toString(), 'binary/encrypted');
    assert.equal(Buffer.from(payload.metadata!['encryption-key-id']!).toString(), 'k0');

    const asJson = {
      payloads: [
        {
          metadata: Object.fromEntries(
            Object.entries(payload.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
          ),
          data: Buffer.from(payload.data!).toString('base64'),
        },
      ],
    };
    const denied = await bridge.api.request('POST', '/codec/decode', asJson, {
      authorization: 'Bearer wrong',
    });
    assert.equal(denied.status, 401);
    const decoded = await bridge.api.request('POST', '/codec/decode', asJson, {
      origin: 'http://localhost:8233',
    });
    assert.equal(decoded.status, 200, decoded.text);
    const plain = Buffer.from(decoded.body.payloads[0].data, 'base64').toString();
    assert.ok(plain.includes('Jane Private') || plain.includes(email), plain.slice(0, 200));

    const preflight = await fetch(`${bridge.api.url}/codec/decode`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:8233', 'access-control-request-method': 'POST' },
    });
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'http://localhost:8233');
    const foreign = await fetch(`${bridge.api.url}/codec/decode`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'POST' },
    });
    assert.equal(foreign.headers.get('access-control-allow-origin'), null);
  });

  it('keys rotate: a payload written with the old key is read while the old key is still listed', async () => {
    const oldKey = { id: 'k1', key: Buffer.alloc(32, 1) };
    const newKey = { id: 'k2', key: Buffer.alloc(32, 2) };
    const [written] = await new EncryptionCodec([oldKey]).encode([
      { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('"hello"') },
    ]);
    const [read] = await new EncryptionCodec([newKey, oldKey]).decode([written!]);
    assert.equal(Buffer.from(read!.data!).toString(), '"hello"');
    const [again] = await new EncryptionCodec([newKey, oldKey]).encode([read!]);
    assert.equal(Buffer.from(again!.metadata!['encryption-key-id']!).toString(), 'k2');
    await assert.rejects(new EncryptionCodec([newKey]).decode([written!]), /no payload key with id "k1"/);
    assert.throws(() => parsePayloadKeys('k1:short', Buffer.alloc(32)), /32-byte keys/);
  });

  it('every payload has an IV of its own, across refills of the IV pool, and reads back', async () => {
    const codec = new EncryptionCodec([{ id: 'k1', key: Buffer.alloc(32, 7) }]);
    const plain = (i: number) => ({
      metadata: { encoding: Buffer.from('json/plain') },
      data: Buffer.from(`"${i}"`),
    });
    // 1,000 payloads: several refills of 256 IVs; one call with many, and many calls with one.
    const sealed = [
      ...(await codec.encode(Array.from({ length: 600 }, (_, i) => plain(i)))),
      ...(await Promise.all(Array.from({ length: 400 }, (_, i) => codec.encode([plain(600 + i)])))).flat(),
    ];
    const ivs = new Set(sealed.map((p) => Buffer.from(p.data!.subarray(0, 12)).toString('hex')));
    assert.equal(ivs.size, 1_000);
    assert.ok(!ivs.has('00'.repeat(12)));
    const read = await codec.decode(sealed);
    assert.deepEqual(
      read.map((p) => Buffer.from(p.data!).toString()),
      Array.from({ length: 1_000 }, (_, i) => `"${i}"`),
    );
  });
});

describe('security: guessing tokens is slowed down', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  it('after 10 failed attempts with one webhook token, that token gets 429 with Retry-After', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${bridge.api.url}/webhooks/creatio/guess-1`, { method: 'POST', body: '{}' });
      assert.equal(r.status, 401);
    }
    const blocked = await fetch(`${bridge.api.url}/webhooks/creatio/guess-1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ event_type: 'new_activity', caseId: randomUUID() }),
    });
    assert.equal(blocked.status, 429);
    assert.ok(Number(blocked.headers.get('retry-after')) > 0);
    assert.equal(
      ((await blocked.json()) as { error: { code: string } }).error.code,
      'too_many_failed_attempts',
    );
  });
});

describe('security: the bridge reaches a Temporal server over TLS, mTLS or with an API key', () => {
  it('maps the settings to connection options (nothing for a plain server)', () => {
    const read = (p: string) => Buffer.from(`contents of ${p}`);
    assert.deepEqual(connectionSecurity({ tls: false }, read), {});
    assert.deepEqual(connectionSecurity({ tls: false, apiKey: 'cloud-key' }, read), {
      tls: {},
      apiKey: 'cloud-key',
    });
    const mtls = connectionSecurity(
      { tls: true, caPath: 'ca.pem', certPath: 'c.pem', keyPath: 'k.pem' },
      read,
    );
    assert.equal(mtls.tls?.serverRootCACertificate?.toString(), 'contents of ca.pem');
    assert.equal(mtls.tls?.clientCertPair?.crt.toString(), 'contents of c.pem');
    assert.throws(
      () => loadConfig({ TEMPORAL_TLS_CERT_PATH: '/x.pem' }),
      (e: unknown) => e instanceof ConfigError && /mTLS needs both/.test(e.message),
    );
  });

  it('presents its client certificate and the API key in a real TLS handshake', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bridge-tls-'));
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=test-ca',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
    );
    for (const [name, cn] of [
      ['server', 'temporal.test'],
      ['client', 'bridge-worker'],
    ] as const) {
      ssl(
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        `/CN=${cn}`,
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
      );
      writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=DNS:${cn}\n`);
      ssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-days',
        '1',
        '-extfile',
        `${name}.ext`,
        '-out',
        `${name}.pem`,
      );
    }
    const file = (n: string) => readFileSync(path.join(dir, n));
    const seen: { cn?: string; authorization?: string } = {};
    const server = http2.createSecureServer({
      key: file('server.key'),
      cert: file('server.pem'),
      ca: file('ca.pem'),
      requestCert: true,
      rejectUnauthorized: true,
    });
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (session) => {
      sessions.add(session);
      session.on('close', () => sessions.delete(session));
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      seen.cn = String(socket.getPeerCertificate().subject.CN);
    });
    server.on('stream', (stream, headers) => {
      seen.authorization = String(headers.authorization);
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '16', 'grpc-message': 'test' },
        { endStream: true },
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const options = connectionSecurity({
        tls: true,
        caPath: path.join(dir, 'ca.pem'),
        certPath: path.join(dir, 'client.pem'),
        keyPath: path.join(dir, 'client.key'),
        serverName: 'temporal.test',
        apiKey: 'cloud-api-key',
      });
      const connection = Connection.lazy({ address: `127.0.0.1:${port}`, connectTimeout: 5_000, ...options });
      try {
        // Not a Temporal server: the call fails after the handshake, as expected.
        await connection.workflowService.getSystemInfo({}).catch(() => undefined);
      } finally {
        await connection.close();
      }
      assert.equal(seen.cn, 'bridge-worker', 'the server saw the client certificate');
      assert.equal(seen.authorization, 'Bearer cloud-api-key');
    } finally {
      for (const session of sessions) session.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
