import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../src/temporal/launcher';
import type { Store } from '../../src/store';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { startCreatioEmulator, type CreatioEmulator } from '../../src/sandbox/emulators/creatio';
import { startOpenCXEmulator, type OpenCXEmulator } from '../../src/sandbox/emulators/opencx';
import {
  capturingLogger,
  openTestStore,
  startApi,
  uniqueOrg,
  validSettings,
  type RunningApi,
} from '../helpers';

describe('Connect Creatio: Test & Save', () => {
  let emu: CreatioEmulator;
  let opencx: OpenCXEmulator;
  let store: Store;
  let api: RunningApi;
  let website: http.Server;
  let websiteUrl: string;
  const { log, lines } = capturingLogger();

  before(async () => {
    emu = await startCreatioEmulator();
    opencx = await startOpenCXEmulator();
    opencx.apiKeys.add('ocx_live_abc').add('ocx_live_TopSecretKey_91b2');
    opencx.readOnlyKeys.add('ocx_live_readonly');
    // As in OpenCX: a session id it never created is unknown (404), the write check's answer.
    opencx.sessionsMustExist = true;
    store = await openTestStore(log);
    api = await startApi({ store, log });
    website = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html><head><title>Acme Corp</title></head><body>Welcome</body></html>');
    });
    await new Promise<void>((r) => website.listen(0, '127.0.0.1', r));
    websiteUrl = `http://127.0.0.1:${(website.address() as AddressInfo).port}`;
  });
  after(async () => {
    await api.close();
    await emu.close();
    await opencx.close();
    await store.close();
    website.closeAllConnections();
    website.close();
  });

  const put = (orgId: string, body: unknown) =>
    api.request('PUT', `/v1/orgs/${orgId}/integrations/creatio`, body);

  /** Asserts a Test & Save failure: the exact code, a fix, and nothing stored. */
  async function expectFailure(body: unknown, code: string, status = 422) {
    const orgId = uniqueOrg();
    const res = await put(orgId, body);
    assert.equal(res.status, status, res.text);
    assert.equal(res.body.error.code, code, res.text);
    assert.ok(res.body.error.message.length > 0);
    if (status === 422) assert.ok(res.body.error.fix, `no fix for ${code}`);
    assert.equal(await store.getOrg(orgId), undefined, 'nothing may be stored after a failed Test & Save');
    return res.body;
  }

  it('stores valid settings, returns the webhook URL and masks every secret', async () => {
    const orgId = uniqueOrg();
    const res = await put(
      orgId,
      validSettings(emu, {
        opencx: { apiBaseUrl: opencx.url, apiKey: 'ocx_live_abc', webhookSecret: 'whsec_xyz' },
      }),
    );
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.clientSecret, '********');
    assert.equal(res.body.opencx.apiKey, '********');
    assert.equal(res.body.opencx.webhookSecret, '********');
    assert.match(res.body.webhookUrl, /^https:\/\/bridge\.example\.com\/webhooks\/creatio\/[\w-]{32,}$/);
    assert.ok(res.body.checks.every((c: { ok: boolean }) => c.ok));
    const stored = await store.getOrg(orgId);
    assert.equal(stored?.settings.clientSecret, validSettings(emu).clientSecret);
    assert.equal(stored?.settings.opencx.apiKey, 'ocx_live_abc');
    const got = await api.request('GET', `/v1/orgs/${orgId}/integrations/creatio`);
    assert.equal(got.status, 200);
    assert.equal(got.body.webhookUrl, res.body.webhookUrl);
    assert.equal(got.body.clientSecret, '********');
    // The write probe cleaned up after itself.
    assert.equal(emu.rows('Case').length, 0);
    assert.equal(emu.rows('Activity').length, 0);
  });

  it('keeps the stored secret when an update omits it', async () => {
    const orgId = uniqueOrg();
    assert.equal((await put(orgId, validSettings(emu))).status, 201);
    const { clientSecret: _omitted, ...rest } = validSettings(emu, { createCaseOnlyOnHandoff: true });
    const res = await put(orgId, rest);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.createCaseOnlyOnHandoff, true);
    assert.equal((await store.getOrg(orgId))?.settings.clientSecret, validSettings(emu).clientSecret);
  });

  it('normalises a trailing slash and says so', async () => {
    const orgId = uniqueOrg();
    const res = await put(orgId, validSettings(emu, { instanceUrl: `${emu.url}/` }));
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.instanceUrl, emu.url);
    assert.ok(
      res.body.notices.some((n: { code: string }) => n.code === 'instance_url_trailing_slash_removed'),
    );
    assert.equal((await store.getOrg(orgId))?.settings.instanceUrl, emu.url);
  });

  it('rejects a malformed Instance URL', async () => {
    await expectFailure(
      validSettings(emu, { instanceUrl: 'yourcompany creatio com' }),
      'instance_url_malformed',
    );
  });

  it('rejects http:// for a host that is not loopback', async () => {
    const body = await expectFailure(
      validSettings(emu, { instanceUrl: 'http://acme.creatio.com' }),
      'instance_url_not_https',
    );
    assert.equal(body.error.field, 'instanceUrl');
  });

  it('names an unreachable host', async () => {
    const port = await freePort();
    await expectFailure(
      validSettings(emu, { instanceUrl: `http://127.0.0.1:${port}` }),
      'creatio_unreachable',
    );
  });

  it('names a host that is not Creatio', async () => {
    await expectFailure(validSettings(emu, { instanceUrl: websiteUrl }), 'not_creatio_instance');
  });

  it('names a wrong client secret', async () => {
    const body = await expectFailure(
      validSettings(emu, { clientSecret: 'wrong-secret' }),
      'invalid_client_credentials',
    );
    assert.equal(body.error.field, 'clientSecret');
    const token = body.checks.find((c: { name: string }) => c.name === 'oauth_token');
    assert.equal(token.ok, false);
  });

  it('names an OAuth application that is not client credentials', async () => {
    emu.addClient({
      clientId: 'authcode-app',
      clientSecret: 's3cret-authcode',
      grantType: 'authorization_code',
    });
    await expectFailure(
      validSettings(emu, { clientId: 'authcode-app', clientSecret: 's3cret-authcode' }),
      'grant_type_not_client_credentials',
    );
  });

  it('names a user without OData access', async () => {
    emu.addClient({ clientId: 'no-odata', clientSecret: 's3cret-no-odata', odataAccess: false });
    await expectFailure(
      validSettings(emu, { clientId: 'no-odata', clientSecret: 's3cret-no-odata' }),
      'odata_access_denied',
    );
  });

  for (const [perm, code] of [
    ['read', 'case_read_forbidden'],
    ['create', 'case_create_forbidden'],
    ['update', 'case_update_forbidden'],
  ] as const) {
    it(`names a user that may not ${perm} Case`, async () => {
      const clientId = `no-case-${perm}`;
      emu.addClient({ clientId, clientSecret: `s3cret-${perm}`, denied: { Case: [perm] } });
      await expectFailure(validSettings(emu, { clientId, clientSecret: `s3cret-${perm}` }), code);
    });
  }

  it('names a user that may not create activities', async () => {
    emu.addClient({ clientId: 'no-activity', clientSecret: 's3cret-act', denied: { Activity: ['create'] } });
    await expectFailure(
      validSettings(emu, { clientId: 'no-activity', clientSecret: 's3cret-act' }),
      'activity_create_forbidden',
    );
  });

  for (const [field, code] of [
    ['defaultCaseOwnerId', 'default_case_owner_not_found'],
    ['defaultCaseGroupId', 'default_case_group_not_found'],
    ['resolvedStatusId', 'resolved_status_not_found'],
  ] as const) {
    it(`names a ${field} that does not exist`, async () => {
      const body = await expectFailure(
        validSettings(emu, { [field]: '11111111-2222-4333-8444-555555555555' }),
        code,
      );
      assert.equal(body.error.field, field);
    });
  }

  it('accepts owner, group and status GUIDs that exist', async () => {
    const res = await put(
      uniqueOrg(),
      validSettings(emu, {
        defaultCaseOwnerId: IDS.contact.Supervisor,
        defaultCaseGroupId: IDS.sysAdminUnit['Support line 1'],
        resolvedStatusId: IDS.caseStatus.Resolved.toUpperCase(),
      }),
    );
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.resolvedStatusId, IDS.caseStatus.Resolved);
  });

  it('names an AI field column that does not exist, with the closest real one', async () => {
    const body = await expectFailure(
      validSettings(emu, {
        aiFields: [
          { column: 'priorityid', title: 'Priority', type: 'dropdown', description: 'Low, Medium, High' },
        ],
      }),
      'ai_field_column_not_found',
    );
    assert.equal(body.error.field, 'aiFields.0.column');
    assert.match(body.error.message, /"PriorityId"/);
    assert.match(body.error.fix, /PriorityId/);
  });

  it('ignores a disabled AI field mapping when checking columns', async () => {
    const res = await put(
      uniqueOrg(),
      validSettings(emu, {
        aiFields: [{ column: 'Nope', title: 'Off', type: 'text', description: 'unused', enabled: false }],
      }),
    );
    assert.equal(res.status, 201, res.text);
  });

  it('names a closure status that differs only in case', async () => {
    const body = await expectFailure(
      validSettings(emu, { closureStatusNames: ['resolved'] }),
      'closure_status_not_found',
    );
    assert.match(body.error.message, /"Resolved"/);
  });

  it('names an agent-reply activity type that does not exist', async () => {
    await expectFailure(
      validSettings(emu, { agentReplyFilter: { activityTypes: ['E-mail'] } }),
      'agent_reply_activity_type_not_found',
    );
  });

  it('answers /test with every check and stores nothing', async () => {
    const orgId = uniqueOrg();
    const res = await api.request(
      'POST',
      `/v1/orgs/${orgId}/integrations/creatio/test`,
      validSettings(emu, { clientSecret: 'nope' }),
    );
    assert.equal(res.status, 200);
    assert.equal(res.body.ok, false);
    const names = res.body.checks.map((c: { name: string }) => c.name);
    assert.deepEqual(names.slice(0, 3), ['instance_url', 'instance_reachable', 'oauth_token']);
    assert.equal(await store.getOrg(orgId), undefined);
  });

  describe('the OpenCX API key may write chat sessions', () => {
    const withKey = (apiKey: string) =>
      validSettings(emu, { opencx: { apiBaseUrl: opencx.url, apiKey, webhookSecret: 'whsec_xyz' } });
    const opencxCheck = (body: { checks: { name: string; ok: boolean; message?: string }[] }) =>
      body.checks.find((c) => c.name === 'opencx_api_key')!;

    it('a read-only key: named with its fix, nothing stored, nothing sent', async () => {
      const from = opencx.requests.length;
      const body = await expectFailure(withKey('ocx_live_readonly'), 'opencx_api_key_read_only');
      assert.equal(body.error.field, 'opencx.apiKey');
      assert.match(body.error.message, /may read chat sessions but not write them.*403/);
      assert.match(body.error.fix, /Settings → Access/);
      assert.match(body.error.fix, /chat-sessions:write/);
      const asked = opencx.requests.slice(from).map((r) => `${r.method} ${r.url}`);
      assert.equal(asked.length, 2, asked.join('; '));
      // The list read sends no page size (https://docs.open.cx/api-reference/chat-sessions/list).
      assert.equal(asked[0], 'GET /chat/sessions');
      assert.match(asked[1]!, /^PATCH \/chat\/sessions\/[0-9a-f-]{36}$/);
      assert.equal(opencx.sent.length, 0, 'no message was sent');
      assert.equal(opencx.statusChanges.length, 0, 'no session changed');
    });

    it('a key that may write: saved, the check says so, nothing sent and no session changed', async () => {
      const orgId = uniqueOrg();
      const res = await put(orgId, withKey('ocx_live_abc'));
      assert.equal(res.status, 201, res.text);
      assert.deepEqual(
        [opencxCheck(res.body).ok, opencxCheck(res.body).message],
        [true, 'reads and writes chat sessions'],
      );
      assert.ok(!res.body.notices.some((n: { code: string }) => n.code.startsWith('opencx_')));
      assert.equal(opencx.sent.length, 0);
      assert.equal(opencx.statusChanges.length, 0);
      assert.equal((await store.getOrg(orgId))?.settings.opencx.apiKey, 'ocx_live_abc');
    });

    it('OpenCX answers 500 to the write check: saved, with a notice that write access was not checked', async () => {
      const orgId = uniqueOrg();
      opencx.faults = { ...opencx.faults, writeErrorStatus: 500 };
      try {
        const res = await put(orgId, withKey('ocx_live_abc'));
        assert.equal(res.status, 201, res.text);
        assert.equal(opencxCheck(res.body).ok, true);
        const notice = res.body.notices.find(
          (n: { code: string }) => n.code === 'opencx_write_access_not_checked',
        );
        assert.ok(notice, JSON.stringify(res.body.notices));
        assert.match(notice.message, /Could not check that the OpenCX API key may write chat sessions.*500/);
        assert.equal(notice.field, 'opencx.apiKey');
        assert.ok(await store.getOrg(orgId));
      } finally {
        opencx.faults = { ...opencx.faults, writeErrorStatus: 0 };
      }
    });

    it('a key OpenCX does not know: the fix names Settings → Access', async () => {
      const body = await expectFailure(withKey('ocx_live_unknown'), 'opencx_api_key_rejected');
      assert.match(body.error.fix, /Settings → Access/);
    });
  });

  describe('bad input gets a 4xx naming the problem', () => {
    it('bad JSON', async () => {
      const res = await api.request(
        'PUT',
        `/v1/orgs/${uniqueOrg()}/integrations/creatio`,
        '{"instanceUrl": ',
      );
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, 'invalid_json');
    });
    it('a wrong type', async () => {
      const res = await put(uniqueOrg(), validSettings(emu, { createCaseOnlyOnHandoff: 'yes' }));
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, 'invalid_field');
      assert.equal(res.body.error.field, 'createCaseOnlyOnHandoff');
    });
    it('a missing field', async () => {
      const { clientId: _c, ...rest } = validSettings(emu);
      const res = await put(uniqueOrg(), rest);
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, 'missing_field');
      assert.equal(res.body.error.field, 'clientId');
    });
    it('an unknown field', async () => {
      const res = await put(uniqueOrg(), validSettings(emu, { clientSecretz: 'x' }));
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, 'unknown_field');
      assert.equal(res.body.error.field, 'clientSecretz');
    });
    it('a GUID that is not a GUID', async () => {
      const res = await put(uniqueOrg(), validSettings(emu, { defaultCaseOwnerId: 'bob' }));
      assert.equal(res.status, 400);
      assert.equal(res.body.error.field, 'defaultCaseOwnerId');
    });
    it('a bad AI field type', async () => {
      const res = await put(
        uniqueOrg(),
        validSettings(emu, {
          aiFields: [{ column: 'Subject', title: 'S', type: 'number', description: 'd' }],
        }),
      );
      assert.equal(res.status, 400);
      assert.equal(res.body.error.field, 'aiFields.0.type');
    });
    it('a body that is not an object', async () => {
      const res = await put(uniqueOrg(), '[1,2]');
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, 'invalid_body');
    });
    it('an org id with bad characters', async () => {
      const res = await put('bad%20org', validSettings(emu));
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, 'invalid_org_id');
    });
    it('no admin token, or a wrong one', async () => {
      const none = await api.request('GET', `/v1/orgs/x/integrations/creatio`, undefined, {
        authorization: '',
      });
      assert.equal(none.status, 401);
      assert.equal(none.body.error.code, 'unauthorized');
      const wrong = await api.request('GET', `/v1/orgs/x/integrations/creatio`, undefined, {
        authorization: 'Bearer nope',
      });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.error.code, 'invalid_admin_token');
    });
    it('an organization that is not connected', async () => {
      const res = await api.request('GET', `/v1/orgs/${uniqueOrg()}/integrations/creatio`);
      assert.equal(res.status, 404);
      assert.equal(res.body.error.code, 'org_not_found');
    });
  });

  it('rotates the webhook token: the old one keeps matching for the overlap, then stops', async () => {
    const orgId = uniqueOrg();
    const created = await put(orgId, validSettings(emu));
    const oldToken = String(created.body.webhookUrl).split('/').pop()!;
    assert.equal(await store.findOrgByWebhookToken(oldToken), orgId);
    const rotated = await api.request('POST', `/v1/orgs/${orgId}/integrations/creatio/webhook-token`);
    assert.equal(rotated.status, 200);
    const newToken = String(rotated.body.webhookUrl).split('/').pop()!;
    assert.notEqual(newToken, oldToken);
    // The processes still calling the old URL are switched within the overlap (10 minutes).
    assert.ok(Date.parse(rotated.body.previousValidUntil) > Date.now() + 9 * 60_000);
    assert.equal(await store.findOrgByWebhookToken(oldToken), orgId);
    assert.equal(await store.findOrgByWebhookToken(newToken), orgId);
    const overlap = store.rotation.overlapMs;
    store.rotation.overlapMs = 0; // as if the overlap had passed
    try {
      assert.equal(await store.findOrgByWebhookToken(oldToken), undefined);
    } finally {
      store.rotation.overlapMs = overlap;
    }
    assert.equal(
      (await api.request('GET', `/v1/orgs/${orgId}/integrations/creatio`)).body.webhookUrl,
      rotated.body.webhookUrl,
    );
  });

  it('never lets a secret reach a log line, a response or the database in clear', async () => {
    const secret = 'Sup3r-Secret-Value-7f3a9c';
    const apiKey = 'ocx_live_TopSecretKey_91b2';
    const whsec = 'whsec_TopSecretSigning_55e1';
    emu.addClient({ clientId: 'leak-check', clientSecret: secret });
    const orgId = uniqueOrg();
    const bodies: string[] = [];
    const settings = validSettings(emu, {
      clientId: 'leak-check',
      clientSecret: secret,
      opencx: { apiBaseUrl: opencx.url, apiKey, webhookSecret: whsec },
    });
    bodies.push((await put(orgId, settings)).text);
    bodies.push((await api.request('GET', `/v1/orgs/${orgId}/integrations/creatio`)).text);
    bodies.push((await api.request('POST', `/v1/orgs/${orgId}/integrations/creatio/test`, settings)).text);
    // A failing save with a different wrong secret must not echo it either.
    const wrong = 'Wrong-Secret-Value-0c4d';
    bodies.push((await put(uniqueOrg(), { ...settings, clientSecret: wrong })).text);
    const token = String(JSON.parse(bodies[0]!).webhookUrl).split('/').pop()!;
    const raw = JSON.stringify(await store.db.query('SELECT * FROM org_settings WHERE org_id = $1', [orgId]));
    for (const s of [secret, apiKey, whsec, wrong]) {
      for (const b of bodies) assert.ok(!b.includes(s), `secret in a response: ${b}`);
      assert.ok(!lines.join('').includes(s), 'secret in the logs');
      assert.ok(!raw.includes(s), 'secret stored in clear');
    }
    assert.ok(!raw.includes(token), 'webhook token stored in clear');
    assert.ok(lines.length > 0, 'the requests were logged');
  });
});
