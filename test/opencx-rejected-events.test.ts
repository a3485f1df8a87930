/**
 * The store keeps signed OpenCX events that failed validation, for a later replay (not wired to a
 * route yet): sealed at rest, one row per webhook-id, attempts counted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../src/logger';
import type { Store } from '../src/store';
import { openTestStore, uniqueOrg } from './helpers';

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
  });
}
