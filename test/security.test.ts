import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../src/config';
import { capturingLogger } from './helpers';
import { Bridge, ev, waitFor } from './bridge-harness';

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
