/**
 * The store keeps signed OpenCX events that failed validation, for a replay: sealed at rest, one
 * row per webhook-id, attempts counted, at most `perOrg` waiting per organization (the oldest
 * dropped and counted), deleted `keepDays` after their last delivery. It also knows which
 * organization receives which OpenCX organization, and counts events of OpenCX organizations that
 * none receives.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/logger';
import { OpencxOrganizationTakenError, type Store } from '../../src/store';
import { openTestStore, storedSettings, uniqueOrg } from '../helpers';

for (const kind of ['postgres', 'pglite'] as const) {
  describe(`store: refused OpenCX events kept for replay (${kind})`, () => {
    let store: Store;
    before(async () => {
      store = await openTestStore(createLogger('warn'), kind);
    });
    after(() => store.close());

    it('keeps the body sealed, counts redeliveries, lists what was not replayed, oldest first', async () => {
      const orgId = uniqueOrg('rej');
      const body = JSON.stringify({
        event: 'conversation.contact_response',
        organization_id: orgId,
        data: { conversation_id: 's', message: { text: 'secret words' } },
      });
      const e = {
        orgId,
        webhookId: 'msg_1',
        event: 'conversation.contact_response',
        field: 'data.message.id',
        code: 'invalid_field',
        body,
      };
      await store.keepRejectedEvent(e);
      await store.keepRejectedEvent(e);
      await store.keepRejectedEvent({ ...e, webhookId: 'msg_2', field: undefined, code: 'invalid_body' });
      const raw = await store.db.query<{ payload: string }>(
        'SELECT payload FROM opencx_rejected_events WHERE org_id = $1',
        [orgId],
      );
      assert.ok(
        raw.every((r) => !r.payload.includes('secret words')),
        'sealed at rest',
      );
      const kept = await store.rejectedEvents(orgId);
      assert.deepEqual(
        kept.map((k) => [k.webhookId, k.field, k.code, k.attempts, k.body === body]),
        [
          ['msg_1', 'data.message.id', 'invalid_field', 2, true],
          ['msg_2', null, 'invalid_body', 1, true],
        ],
      );
      await store.markRejectedEventsReplayed(orgId, ['msg_1']);
      assert.deepEqual(
        (await store.rejectedEvents(orgId)).map((k) => k.webhookId),
        ['msg_2'],
      );
      assert.deepEqual(await store.rejectedEvents(uniqueOrg('other')), []);
    });

    const keep = (orgId: string, webhookId: string, field = 'data.message.id') =>
      store.keepRejectedEvent({
        orgId,
        webhookId,
        event: 'conversation.contact_response',
        field,
        code: 'invalid_field',
        body: `{"n":"${webhookId}"}`,
      });

    it('keeps at most perOrg waiting per organization: the oldest are dropped and counted', async () => {
      const orgId = uniqueOrg('cap');
      const other = uniqueOrg('cap-other');
      store.rejectedEventLimits.perOrg = 3;
      try {
        await keep(other, 'o-1');
        for (const id of ['e-1', 'e-2', 'e-3']) assert.deepEqual(await keep(orgId, id), { dropped: 0 });
        await store.markRejectedEventsReplayed(orgId, ['e-1']);
        // A replayed event does not count against the bound.
        assert.deepEqual(await keep(orgId, 'e-4'), { dropped: 0 });
        assert.deepEqual(await keep(orgId, 'e-5', 'data.conversation_id'), { dropped: 1 });
        assert.deepEqual(await keep(orgId, 'e-6'), { dropped: 1 });
        assert.deepEqual(
          (await store.rejectedEvents(orgId)).map((k) => k.webhookId),
          ['e-4', 'e-5', 'e-6'],
        );
        assert.equal((await store.rejectedEvent(orgId, 'e-1'))?.replayedAt !== null, true);
        assert.equal(await store.rejectedEvent(orgId, 'e-2'), undefined, 'dropped');
        const summary = await store.rejectedEventSummary(orgId);
        assert.deepEqual(
          summary.groups.map((g) => [g.event, g.field, g.code, g.count]),
          [
            ['conversation.contact_response', 'data.message.id', 'invalid_field', 2],
            ['conversation.contact_response', 'data.conversation_id', 'invalid_field', 1],
          ],
          'grouped, the group with the oldest event first',
        );
        assert.equal(summary.dropped?.count, 2);
        assert.equal((await store.rejectedEvents(other)).length, 1, 'another organization is untouched');
      } finally {
        store.rejectedEventLimits.perOrg = 1_000;
      }
    });

    it('deletes events 30 days after their last delivery; a replay that still fails records what fails now', async () => {
      const orgId = uniqueOrg('old');
      await keep(orgId, 'old-1');
      await keep(orgId, 'new-1');
      await store.db.query(
        `UPDATE opencx_rejected_events SET received_at = now() - interval '40 days',
           last_at = now() - interval '31 days' WHERE org_id = $1 AND webhook_id = 'old-1'`,
        [orgId],
      );
      assert.deepEqual(
        (await store.rejectedEvents(orgId)).map((k) => k.webhookId),
        ['new-1'],
        'an expired event is not listed',
      );
      assert.equal(await store.rejectedEvent(orgId, 'old-1'), undefined);
      await store.pruneRejectedEvents();
      const rows = await store.db.query('SELECT 1 FROM opencx_rejected_events WHERE org_id = $1', [orgId]);
      assert.equal(rows.length, 1, 'and it is deleted');

      await store.noteRejectedEventReplay(orgId, 'new-1', {
        field: 'data.message.text',
        code: 'invalid_field',
      });
      const kept = await store.rejectedEvent(orgId, 'new-1');
      assert.equal(kept?.field, 'data.message.text');
      assert.equal(kept?.attempts, 1, 'a replay is not a delivery');
      assert.equal(kept?.replayedAt, null);
    });

    it('one organization per OpenCX organization: the mapping is found by id, and a second claim is refused', async () => {
      const acme = uniqueOrg('acme');
      const prod = `${acme}-prod`;
      await store.saveOrg(
        acme,
        storedSettings({ opencx: { ...storedSettings().opencx, organizationId: prod } }),
      );
      assert.equal((await store.getOrgByOpencxOrganization(prod))?.orgId, acme);
      assert.equal((await store.getOrg(acme))?.settings.opencx.organizationId, prod);
      assert.equal(
        await store.getOrgByOpencxOrganization(acme),
        undefined,
        'its own id is no longer received',
      );
      assert.equal(await store.opencxOrganizationHolder(prod), acme);

      const other = uniqueOrg('other');
      await assert.rejects(
        store.saveOrg(
          other,
          storedSettings({ opencx: { ...storedSettings().opencx, organizationId: prod } }),
        ),
        (err: unknown) => err instanceof OpencxOrganizationTakenError && err.holder === acme,
      );
      assert.equal(await store.getOrg(other), undefined, 'nothing stored');
      // The default (its own id) is a claim too.
      const plain = uniqueOrg('plain');
      await store.saveOrg(plain, storedSettings());
      assert.equal((await store.getOrg(plain))?.settings.opencx.organizationId, undefined);
      await assert.rejects(
        store.saveOrg(
          other,
          storedSettings({ opencx: { ...storedSettings().opencx, organizationId: plain } }),
        ),
        OpencxOrganizationTakenError,
      );
    });

    it('counts events of OpenCX organizations none receives, keeping the most recent ids', async () => {
      const a = uniqueOrg('unmapped-a');
      const b = uniqueOrg('unmapped-b');
      await store.countUnmappedOpencxOrganizations([
        { opencxOrgId: a, count: 2 },
        { opencxOrgId: b, count: 1 },
      ]);
      await store.countUnmappedOpencxOrganizations([{ opencxOrgId: a, count: 3 }]);
      const listed = await store.unmappedOpencxOrganizations(1000);
      assert.equal(listed.find((u) => u.opencxOrgId === a)?.count, 5);
      assert.equal(listed.find((u) => u.opencxOrgId === b)?.count, 1);
      // Connected: no longer listed.
      await store.saveOrg(
        uniqueOrg('now'),
        storedSettings({ opencx: { ...storedSettings().opencx, organizationId: b } }),
      );
      assert.equal(
        (await store.unmappedOpencxOrganizations(1000)).find((u) => u.opencxOrgId === b),
        undefined,
      );
      store.rejectedEventLimits.unmappedIds = 1;
      try {
        await store.countUnmappedOpencxOrganizations([{ opencxOrgId: uniqueOrg('latest'), count: 1 }]);
        assert.equal((await store.db.query('SELECT 1 FROM opencx_unmapped_orgs')).length, 1);
      } finally {
        store.rejectedEventLimits.unmappedIds = 1_000;
      }
    });
  });
}
