/**
 * Scoped access: an organization's admin token opens that organization only; the operator token
 * the whole bridge; every change is in the organization's audit log (who, what; no secret).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Bridge, ev, waitFor } from './bridge-harness';

describe('tenants: organization tokens and the audit log', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  const as = (token: string) => ({ authorization: `Bearer ${token}` });

  it("an organization's token opens its organization only; tokens and operator-wide views stay the operator's", async () => {
    const a = await bridge.connectOrg();
    const b = await bridge.connectOrg();
    const made = await bridge.api.request('POST', `/v1/orgs/${a}/admin-tokens`, { label: 'acme admins' });
    assert.equal(made.status, 201, made.text);
    const token = made.body.token as string;
    assert.match(token, /^org_/);

    const own = await bridge.api.request('GET', `/v1/orgs/${a}/integrations/creatio`, undefined, as(token));
    assert.equal(own.status, 200, own.text);
    const other = await bridge.api.request('GET', `/v1/orgs/${b}/integrations/creatio`, undefined, as(token));
    assert.equal(other.status, 403);
    assert.equal(other.body.error.code, 'forbidden_organization');
    const otherPut = await bridge.api.request(
      'PUT',
      `/v1/orgs/${b}/integrations/creatio`,
      { instanceUrl: 'https://attacker.example' },
      as(token),
    );
    assert.equal(otherPut.status, 403, 'cannot send another organization’s transcripts elsewhere');
    for (const path of ['/v1/opencx-events/unmapped', `/v1/orgs/${a}/admin-tokens`]) {
      const r = await bridge.api.request('GET', path, undefined, as(token));
      assert.equal(r.status, 403, path);
      assert.equal(r.body.error.code, 'operator_only');
    }
    // The codec decodes for the operator only: a payload names no organization it could check.
    const decode = await bridge.api.request('POST', '/codec/decode', { payloads: [] }, as(token));
    assert.equal(decode.status, 403);
    assert.equal((await bridge.api.request('POST', '/codec/decode', { payloads: [] })).status, 200);

    // Listed without the token; revoked, it opens nothing.
    const list = await bridge.api.request('GET', `/v1/orgs/${a}/admin-tokens`);
    assert.deepEqual(
      list.body.tokens.map((t: { id: string; label: string }) => [t.id, t.label]),
      [[made.body.id, 'acme admins']],
    );
    assert.ok(!JSON.stringify(list.body).includes(token));
    assert.equal(
      (await bridge.api.request('DELETE', `/v1/orgs/${a}/admin-tokens/${made.body.id}`)).status,
      204,
    );
    const revoked = await bridge.api.request(
      'GET',
      `/v1/orgs/${a}/integrations/creatio`,
      undefined,
      as(token),
    );
    assert.equal(revoked.status, 401);
  });

  it('a new OpenCX webhook secret: the previous one is still accepted for the overlap, and the answer says until when', async () => {
    const orgId = await bridge.connectOrg();
    const s = `rot-${randomUUID().slice(0, 10)}`;
    const current = (await bridge.api.request('GET', `/v1/orgs/${orgId}/integrations/creatio`)).body;
    const newSecret = `whsec_${randomBytes(24).toString('base64')}`;
    const put = await bridge.api.request('PUT', `/v1/orgs/${orgId}/integrations/creatio`, {
      instanceUrl: current.instanceUrl,
      clientId: current.clientId,
      opencx: { webhookSecret: newSecret },
    });
    assert.equal(put.status, 200, put.text);
    const notice = (put.body.notices as { code: string; message: string }[]).find(
      (n) => n.code === 'opencx_webhook_secret_overlap',
    );
    assert.ok(notice, JSON.stringify(put.body.notices));
    // OpenCX still signing with the old secret, and already with the new one: both delivered.
    assert.equal((await bridge.send(orgId, 'conversation.started', ev.started(s))).status, 202);
    assert.equal(
      (
        await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hi'), {
          secret: newSecret,
        })
      ).status,
      202,
    );
    // Once the overlap has passed (a second change with no overlap), only the newest secret works.
    const overlap = bridge.store.rotation.overlapMs;
    bridge.store.rotation.overlapMs = 0;
    try {
      const newest = `whsec_${randomBytes(24).toString('base64')}`;
      const again = await bridge.api.request('PUT', `/v1/orgs/${orgId}/integrations/creatio`, {
        instanceUrl: current.instanceUrl,
        clientId: current.clientId,
        opencx: { webhookSecret: newest },
      });
      assert.equal(again.status, 200, again.text);
      const old = await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'x'), {
        secret: newSecret,
      });
      assert.equal(old.status, 401);
      const ok = await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm3', 'y'), {
        secret: newest,
      });
      assert.equal(ok.status, 202);
    } finally {
      bridge.store.rotation.overlapMs = overlap;
    }
  });

  it('the audit log: settings saved, a token made, a step given up, with who did it and no secret', async () => {
    const orgId = await bridge.connectOrg();
    const made = await bridge.api.request('POST', `/v1/orgs/${orgId}/admin-tokens`, { label: 'ops' });
    const token = made.body.token as string;
    // The organization's admin changes a setting with its own token.
    const current = (await bridge.api.request('GET', `/v1/orgs/${orgId}/integrations/creatio`)).body;
    const put = await bridge.api.request(
      'PUT',
      `/v1/orgs/${orgId}/integrations/creatio`,
      {
        instanceUrl: current.instanceUrl,
        clientId: current.clientId,
        afterClose: 'log',
        opencx: { apiKey: 'ocx_test_key' },
      },
      as(token),
    );
    assert.equal(put.status, 200, put.text);
    // A conversation whose step parks (this Creatio lost a column), given up by the organization's admin.
    const s = `aud-${randomUUID().slice(0, 10)}`;
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hello'));
    await bridge.caseOf(orgId, s);
    bridge.emu.removeFromModel('Activity', 'Title');
    try {
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'anyone?'));
      await waitFor('parked', async () => (await bridge.session(orgId, s)).body?.lastError?.parked);
      const skip = await bridge.api.request(
        'POST',
        `/v1/orgs/${orgId}/sessions/${s}/skip`,
        { reason: 'column restored later' },
        as(token),
      );
      assert.equal(skip.status, 200, skip.text);
    } finally {
      bridge.emu.restoreModel();
    }
    const log = await bridge.api.request('GET', `/v1/orgs/${orgId}/audit`, undefined, as(token));
    assert.equal(log.status, 200, log.text);
    const entries = log.body.entries as { actor: string; action: string; detail: Record<string, unknown> }[];
    const actions = entries.map((e) => `${e.actor} ${e.action}`);
    assert.ok(actions.includes('operator settings.created'), actions.join('\n'));
    assert.ok(actions.includes('operator admin_token.created'), actions.join('\n'));
    assert.ok(actions.includes(`org-token:${made.body.id} settings.updated`), actions.join('\n'));
    assert.ok(actions.includes(`org-token:${made.body.id} session.step_skipped`), actions.join('\n'));
    const text = JSON.stringify(log.body);
    assert.ok(!text.includes('ocx_test_key') && !text.includes(token), 'no secret in the audit log');
    assert.deepEqual(entries.find((e) => e.action === 'settings.updated')!.detail.opencxFields, ['apiKey']);
  });
});
