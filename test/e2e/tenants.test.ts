/**
 * Scoped access: an organization's admin token opens that organization only; the operator token
 * the whole bridge; every change is in the organization's audit log (who, what; no secret).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Bridge, ev, waitFor } from '../bridge-harness';

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

  it("the codec decodes an organization's payloads for its token only; a relabelled payload is refused", async () => {
    const a = await bridge.connectOrg();
    const b = await bridge.connectOrg();
    const token = (await bridge.api.request('POST', `/v1/orgs/${a}/admin-tokens`, { label: 'codec' })).body
      .token as string;
    const texts = new Map<string, string>();
    for (const org of [a, b]) {
      const s = `codec-${randomUUID().slice(0, 10)}`;
      const text = `only for ${org}: ${randomUUID()}`;
      texts.set(org, text);
      await bridge.send(org, 'conversation.started', ev.started(s));
      await bridge.send(org, 'conversation.contact_response', ev.message(s, 'm1', text));
      const caseId = await bridge.caseOf(org, s);
      await waitFor('logged', () => bridge.activitiesOf(caseId).some((x) => String(x.Body).includes(text)));
      texts.set(`${org}:wf`, `conversation:${org}:${s}`);
    }
    /** The signal that carried the message, as the Temporal UI sends it to the codec endpoint. */
    const signalOf = async (org: string) => {
      const history = await bridge.client.workflowService.getWorkflowExecutionHistory({
        namespace: 'default',
        execution: { workflowId: texts.get(`${org}:wf`)! },
      });
      const p = history
        .history!.events!.map((e) => e.workflowExecutionSignaledEventAttributes?.input?.payloads?.[0])
        .filter((x) => x !== undefined)
        .at(-1)!;
      return {
        metadata: Object.fromEntries(
          Object.entries(p.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
        ),
        data: Buffer.from(p.data!).toString('base64'),
      };
    };
    const own = await signalOf(a);
    const foreign = await signalOf(b);
    assert.equal(Buffer.from(own.metadata['encryption-org']!, 'base64').toString(), a);

    const mine = await bridge.api.request('POST', '/codec/decode', { payloads: [own] }, as(token));
    assert.equal(mine.status, 200, mine.text);
    assert.ok(Buffer.from(mine.body.payloads[0].data, 'base64').toString().includes(texts.get(a)!));

    const theirs = await bridge.api.request('POST', '/codec/decode', { payloads: [own, foreign] }, as(token));
    assert.equal(theirs.status, 403, theirs.text);
    assert.equal(theirs.body.error.code, 'forbidden_organization');
    assert.ok(!theirs.text.includes(texts.get(b)!) && !theirs.text.includes(texts.get(a)!));
    const unnamed = { ...foreign, metadata: { ...foreign.metadata } };
    delete unnamed.metadata['encryption-org'];
    assert.equal(
      (await bridge.api.request('POST', '/codec/decode', { payloads: [unnamed] }, as(token))).status,
      403,
      'a payload that names no organization is the operator’s',
    );

    // Relabelled as the token's organization, the other organization's payload is still refused.
    const relabelled = {
      ...foreign,
      metadata: { ...foreign.metadata, 'encryption-org': Buffer.from(a).toString('base64') },
    };
    const forged = await bridge.api.request('POST', '/codec/decode', { payloads: [relabelled] }, as(token));
    assert.equal(forged.status, 403, forged.text);
    assert.ok(!forged.text.includes(texts.get(b)!));

    // The operator reads both; an organization's encode names its organization.
    const both = await bridge.api.request('POST', '/codec/decode', { payloads: [own, foreign] });
    assert.equal(both.status, 200, both.text);
    const encoded = await bridge.api.request(
      'POST',
      '/codec/encode',
      { payloads: [{ metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: 'IjEi' }] },
      as(token),
    );
    assert.equal(encoded.status, 200, encoded.text);
    assert.equal(Buffer.from(encoded.body.payloads[0].metadata['encryption-org'], 'base64').toString(), a);
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
