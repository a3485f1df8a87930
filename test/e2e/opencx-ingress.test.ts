/**
 * End to end (real Temporal server, workers, store, Creatio emulator): what becomes of OpenCX events
 * the bridge cannot take at once.
 * - A signed event that does not validate is answered 400 naming the field, kept (sealed), listed
 *   (never its content), named in diagnose, and replayed with one call once the bridge reads it: the
 *   "fixed release" is a second API over the same store and Temporal whose reader also takes the
 *   message id where this body has it. Its message is logged on the case once, however often it is
 *   replayed or redelivered.
 * - An organization connected with another OpenCX organization id (opencx.organizationId) receives
 *   that organization's events; ids no organization receives are answered 401 and listed for the
 *   operator; two organizations cannot claim one OpenCX organization.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { signedHeaders } from '../../src/opencx/signature';
import { Bridge, ev, nextTimestamp, waitFor, WEBHOOK_SECRET } from '../bridge-harness';
import { readsMessageUuid } from '../fixtures/later-release';
import { startApi, uniqueOrg, validSettings, type RunningApi } from '../helpers';

describe('OpenCX events the bridge cannot take at once', () => {
  const bridge = new Bridge();
  let fixed: RunningApi | undefined;

  before(async () => {
    await bridge.start();
  });
  after(async () => {
    await fixed?.close();
    await bridge.close();
  });

  /** Sends one signed event to an API (the bridge's by default), with the given organization_id. */
  async function send(
    organizationId: string,
    event: string,
    data: Record<string, unknown>,
    o: { id?: string; api?: RunningApi } = {},
  ): Promise<{ status: number; body: any }> {
    const body = JSON.stringify({ event, organization_id: organizationId, data });
    const res = await fetch(`${(o.api ?? bridge.api).url}/webhooks/opencx`, {
      method: 'POST',
      headers: signedHeaders(WEBHOOK_SECRET, body, o.id),
      body,
      signal: AbortSignal.timeout(20_000),
    });
    return { status: res.status, body: await res.json() };
  }
  const refusedCount = async () =>
    (await bridge.metrics.webhookEvents.get()).values.find(
      (v) => v.labels.source === 'opencx' && v.labels.outcome === 'invalid_event',
    )?.value ?? 0;

  describe('a signed event that does not validate: kept, shown, replayed once the bridge reads it', () => {
    let orgId: string;
    let caseId: string;
    const s = `rp-${randomUUID().slice(0, 8)}`;
    const webhookId = `msg_${randomUUID()}`;
    // The message id where this release does not look for it.
    const odd = { conversation_id: s, message: { uuid: 'm-1', text: `${s} #1` }, timestamp: nextTimestamp() };

    it('is answered 400 naming the field, kept, listed without its content, and named in diagnose', async () => {
      orgId = await bridge.connectOrg();
      assert.equal((await send(orgId, 'conversation.started', ev.started(s))).status, 202);
      assert.equal(
        (await send(orgId, 'conversation.contact_response', ev.message(s, 'm-0', `${s} #0`))).status,
        202,
      );
      caseId = await bridge.caseOf(orgId, s);
      await waitFor('the first message in Creatio', () => bridge.customerTexts(caseId).length === 1);

      const before = await refusedCount();
      const r = await send(orgId, 'conversation.contact_response', odd, { id: webhookId });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.field, 'data.message.id');
      // OpenCX delivering it again: one kept event, two attempts.
      assert.equal((await send(orgId, 'conversation.contact_response', odd, { id: webhookId })).status, 400);
      assert.equal(await refusedCount(), before + 2);

      const list = await bridge.api.request('GET', `/v1/orgs/${orgId}/opencx-events`);
      assert.equal(list.status, 200, list.text);
      assert.equal(list.body.waiting, 1);
      assert.equal(list.body.events.length, 1);
      const [kept] = list.body.events;
      assert.deepEqual(
        [kept.webhookId, kept.event, kept.field, kept.code, kept.attempts],
        [webhookId, 'conversation.contact_response', 'data.message.id', 'invalid_field', 2],
      );
      assert.ok(!list.text.includes(`${s} #1`), 'the listing never shows the content');
      assert.match(list.body.fix, new RegExp(`/v1/orgs/${orgId}/opencx-events/replay`));

      const d = await bridge.api.request('GET', `/v1/orgs/${orgId}/diagnose?sessionId=${s}`);
      assert.equal(d.status, 200, d.text);
      const f = d.body.findings.find((x: { code: string }) => x.code === 'opencx_events_refused');
      assert.ok(f, JSON.stringify(d.body.findings));
      assert.equal(f.scenario, 'webhook_errors');
      assert.match(f.message, /^1 signed OpenCX conversation\.contact_response event /);
      assert.match(f.message, /invalid_field at data\.message\.id/);
      assert.ok(f.message.includes(`since ${kept.receivedAt}`), f.message);
      assert.ok(f.fix.includes(`POST /v1/orgs/${orgId}/opencx-events/replay`), f.fix);
    });

    it('replayed while the bridge still cannot read it: 422 naming the field, and it stays kept', async () => {
      const r = await bridge.api.request('POST', `/v1/orgs/${orgId}/opencx-events/${webhookId}/replay`);
      assert.equal(r.status, 422, r.text);
      assert.equal(r.body.status, 'refused');
      assert.equal(r.body.error.field, 'data.message.id');
      const all = await bridge.api.request('POST', `/v1/orgs/${orgId}/opencx-events/replay`);
      assert.equal(all.status, 200, all.text);
      assert.deepEqual([all.body.replayed, all.body.refused], [0, 1]);
      assert.equal(all.body.events[0].error.field, 'data.message.id');
      assert.equal((await bridge.api.request('GET', `/v1/orgs/${orgId}/opencx-events`)).body.waiting, 1);
      assert.deepEqual(bridge.customerTexts(caseId), [`${s} #0`]);
    });

    it('replayed once the bridge reads it: logged on the case once, however often it is replayed or redelivered', async () => {
      // The release that reads it, over the same store and Temporal.
      fixed = await startApi({
        store: bridge.store,
        log: bridge.log,
        metrics: bridge.metrics,
        conversations: { client: bridge.client, taskQueue: bridge.taskQueue, options: bridge.options },
        readOpencxEvent: readsMessageUuid,
      });
      const r = await fixed.request('POST', `/v1/orgs/${orgId}/opencx-events/${webhookId}/replay`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.status, 'replayed');
      assert.equal(r.body.delivery, 'accepted');
      assert.equal(r.body.workflowId, `conversation:${orgId}:${s}`);
      await waitFor('the replayed message in Creatio', () => bridge.customerTexts(caseId).length === 2);

      const again = await fixed.request('POST', `/v1/orgs/${orgId}/opencx-events/${webhookId}/replay`);
      assert.equal(again.status, 200, again.text);
      assert.equal(again.body.status, 'already_replayed');
      const all = await fixed.request('POST', `/v1/orgs/${orgId}/opencx-events/replay`);
      assert.deepEqual([all.body.replayed, all.body.refused, all.body.events], [0, 0, []]);
      // OpenCX delivering it once more, now that it validates: Temporal has it already.
      const redelivered = await send(orgId, 'conversation.contact_response', odd, {
        id: webhookId,
        api: fixed,
      });
      assert.equal(redelivered.status, 200, JSON.stringify(redelivered.body));
      assert.equal(redelivered.body.status, 'duplicate');

      // A later message goes through after everything above: the replayed one is there once.
      assert.equal(
        (await send(orgId, 'conversation.contact_response', ev.message(s, 'm-2', `${s} #2`))).status,
        202,
      );
      await bridge.expectCustomerMessages(orgId, s, 3);
      assert.equal((await bridge.api.request('GET', `/v1/orgs/${orgId}/opencx-events`)).body.waiting, 0);
      const d = await bridge.api.request('GET', `/v1/orgs/${orgId}/diagnose?sessionId=${s}`);
      assert.ok(
        !d.body.findings.some((x: { code: string }) => x.code === 'opencx_events_refused'),
        JSON.stringify(d.body.findings),
      );
    });

    it('an unknown event id is a 404; the routes need the admin token', async () => {
      const r = await bridge.api.request('POST', `/v1/orgs/${orgId}/opencx-events/msg_nope/replay`);
      assert.equal(r.status, 404);
      assert.equal(r.body.error.code, 'event_not_found');
      const anon = await bridge.api.request('GET', `/v1/orgs/${orgId}/opencx-events`, undefined, {
        authorization: '',
      });
      assert.equal(anon.status, 401);
      const unmapped = await bridge.api.request('GET', '/v1/opencx-events/unmapped', undefined, {
        authorization: '',
      });
      assert.equal(unmapped.status, 401);
    });
  });

  describe('explicit OpenCX organization mapping', () => {
    const acme = uniqueOrg('acme');
    const prod = `${acme}-prod`;
    const opencx = (organizationId?: string | null) => ({
      opencx: {
        apiBaseUrl: bridge.opencx.url,
        apiKey: 'ocx_test_key',
        webhookSecret: WEBHOOK_SECRET,
        ...(organizationId !== undefined && { organizationId }),
      },
    });

    it('an organization connected with organizationId receives and logs the events sent with that organization_id', async () => {
      const put = await bridge.api.request(
        'PUT',
        `/v1/orgs/${acme}/integrations/creatio`,
        validSettings(bridge.emu, opencx(prod)),
      );
      assert.equal(put.status, 201, put.text);
      const mapping = `OpenCX organization ${prod} → bridge organization ${acme}`;
      assert.equal(put.body.opencx.organizationId, prod);
      assert.equal(put.body.opencx.mapping, mapping);
      assert.equal(
        put.body.checks.find((c: { name: string }) => c.name === 'opencx_organization')?.message,
        mapping,
      );
      const got = await bridge.api.request('GET', `/v1/orgs/${acme}/integrations/creatio`);
      assert.equal(got.body.opencx.mapping, mapping);

      const s = `map-${randomUUID().slice(0, 8)}`;
      const started = await send(prod, 'conversation.started', ev.started(s));
      assert.equal(started.status, 202, JSON.stringify(started.body));
      assert.equal(started.body.workflowId, `conversation:${acme}:${s}`);
      assert.equal(
        (await send(prod, 'conversation.contact_response', ev.message(s, 'm-0', `${s} #0`))).status,
        202,
      );
      await bridge.expectCustomerMessages(acme, s, 1);

      // Its own id is no longer its OpenCX organization: the same 401 as a wrong signature.
      const own = await send(acme, 'conversation.contact_response', ev.message(s, 'm-1', `${s} #1`));
      assert.equal(own.status, 401);
      assert.equal(own.body.error.code, 'invalid_signature');
    });

    it('events from an OpenCX organization no organization receives: 401 to the sender, counted and named for the operator', async () => {
      const stray = uniqueOrg('stray');
      const wrongSecret = await (async () => {
        const body = JSON.stringify({
          event: 'conversation.contact_response',
          organization_id: prod,
          data: ev.message('x', 'm', 'x'),
        });
        const secret = `whsec_${Buffer.from('another-secret-entirely-0123456789').toString('base64')}`;
        const res = await fetch(`${bridge.api.url}/webhooks/opencx`, {
          method: 'POST',
          headers: signedHeaders(secret, body),
          body,
        });
        return res.json();
      })();
      for (let n = 0; n < 3; n++) {
        const r = await send(stray, 'conversation.contact_response', ev.message('x', `m-${n}`, 'x'));
        assert.equal(r.status, 401);
        assert.deepEqual(r.body, wrongSecret, 'nothing tells which organizations exist');
      }
      const list = await bridge.api.request('GET', '/v1/opencx-events/unmapped');
      assert.equal(list.status, 200, list.text);
      const row = list.body.organizations.find(
        (o: { opencxOrganizationId: string }) => o.opencxOrganizationId === stray,
      );
      assert.ok(row, list.text);
      assert.equal(row.events, 3);
      assert.match(row.message, new RegExp(`^3 events from OpenCX organization ${stray}, not connected`));
      assert.ok(!Number.isNaN(Date.parse(row.lastSeenAt)));
      // The event sent with the bridge id of an organization mapped elsewhere is listed too.
      assert.ok(
        list.body.organizations.some(
          (o: { opencxOrganizationId: string }) => o.opencxOrganizationId === acme,
        ),
      );
      assert.ok(
        !list.body.organizations.some(
          (o: { opencxOrganizationId: string }) => o.opencxOrganizationId === prod,
        ),
      );
    });

    it('a second organization cannot claim the same OpenCX organization: 409 naming it', async () => {
      const other = uniqueOrg('other');
      for (const [method, path] of [
        ['PUT', `/v1/orgs/${other}/integrations/creatio`],
        ['POST', `/v1/orgs/${other}/integrations/creatio/test`],
      ] as const) {
        const r = await bridge.api.request(method, path, validSettings(bridge.emu, opencx(prod)));
        assert.equal(r.status, 409, r.text);
        assert.equal(r.body.error.code, 'opencx_organization_taken');
        assert.equal(r.body.error.field, 'opencx.organizationId');
        assert.ok(r.body.error.message.includes(`OpenCX organization ${prod}`), r.body.error.message);
        assert.ok(r.body.error.message.includes(`bridge organization ${acme}`), r.body.error.message);
      }
      assert.equal(await bridge.store.getOrg(other), undefined, 'nothing stored');
      // An organization without organizationId receives its own id: that is a claim too.
      const plain = await bridge.connectOrg();
      const r = await bridge.api.request(
        'PUT',
        `/v1/orgs/${other}/integrations/creatio`,
        validSettings(bridge.emu, opencx(plain)),
      );
      assert.equal(r.status, 409, r.text);
      // Back to its own id (null), acme's former events (organization_id = acme) reach it again.
      const back = await bridge.api.request(
        'PUT',
        `/v1/orgs/${acme}/integrations/creatio`,
        validSettings(bridge.emu, opencx(null)),
      );
      assert.equal(back.status, 200, back.text);
      assert.equal(back.body.opencx.organizationId, acme);
      const s = `back-${randomUUID().slice(0, 8)}`;
      assert.equal((await send(acme, 'conversation.started', ev.started(s))).status, 202);
      assert.equal((await send(prod, 'conversation.started', ev.started(s))).status, 401);
    });
  });
});
