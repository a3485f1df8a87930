import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SecretBox } from '../../src/crypto';
import { createLogger } from '../../src/logger';
import type { OrgSettings } from '../../src/settings/schema';
import { Store } from '../../src/store';
import { migrate } from '../../src/store/migrations';
import { openTestStore, storedSettings, uniqueOrg } from '../helpers';

const settings = (secret: string): OrgSettings =>
  storedSettings({
    clientSecret: secret,
    opencx: { apiBaseUrl: 'https://api.open.cx', apiKey: 'key-1', webhookSecret: undefined },
  });

for (const kind of ['postgres', 'pglite'] as const) {
  describe(`store on ${kind}`, () => {
    let store: Store;
    before(async () => {
      store = await openTestStore(createLogger('warn'), kind);
    });
    after(() => store.close());

    it('runs migrations once, however often it starts', async () => {
      assert.deepEqual(await migrate(store.db), []);
    });

    it("migrates the first release's agent-reply default (Email + Task) to outgoing Email, with a notice", async () => {
      const legacy = uniqueOrg();
      const custom = uniqueOrg();
      await store.saveOrg(legacy, {
        ...settings('x'),
        agentReplyFilter: { activityTypes: ['Email', 'Task'], activityCategories: [] },
      });
      await store.saveOrg(custom, {
        ...settings('x'),
        agentReplyFilter: { activityTypes: ['Email', 'Call'], activityCategories: [] },
      });
      // Run migration 4 again, as on the first start of the release that adds it.
      await store.db.query('DELETE FROM schema_migrations WHERE id = 4');
      assert.deepEqual(await migrate(store.db), [4]);
      const migrated = await store.getOrg(legacy);
      assert.deepEqual(migrated?.settings.agentReplyFilter, {
        activityTypes: ['Email'],
        activityCategories: [],
      });
      assert.equal(migrated?.notices[0]?.code, 'agent_reply_filter_migrated');
      assert.match(migrated.notices[0].message, /Task activities are internal notes/);
      const untouched = await store.getOrg(custom);
      assert.deepEqual(untouched?.settings.agentReplyFilter.activityTypes, ['Email', 'Call']);
      assert.deepEqual(untouched?.notices, []);
      // The admin saving the settings again is the acknowledgement: the notice goes.
      await store.saveOrg(legacy, migrated.settings);
      assert.deepEqual((await store.getOrg(legacy))?.notices, []);
    });

    it('round-trips settings and keeps secrets sealed at rest', async () => {
      const orgId = uniqueOrg();
      const saved = await store.saveOrg(orgId, settings('s3cret-value'));
      const got = await store.getOrg(orgId);
      assert.deepEqual(got?.settings, settings('s3cret-value'));
      assert.equal(got?.webhookToken, saved.webhookToken);
      const [raw] = await store.db.query<{ secrets: unknown; settings: unknown }>(
        'SELECT secrets, settings FROM org_settings WHERE org_id = $1',
        [orgId],
      );
      const text = JSON.stringify(raw);
      for (const s of ['s3cret-value', 'key-1', saved.webhookToken]) assert.ok(!text.includes(s));
    });

    it('keeps the webhook token across updates and finds the org by it', async () => {
      const orgId = uniqueOrg();
      const a = await store.saveOrg(orgId, settings('one'));
      const b = await store.saveOrg(orgId, settings('two'));
      assert.equal(a.webhookToken, b.webhookToken);
      assert.equal(await store.findOrgByWebhookToken(a.webhookToken), orgId);
      assert.equal(await store.findOrgByWebhookToken('not-a-token'), undefined);
    });

    it('cannot be read with another key, and a ciphertext moved to another org fails', async () => {
      const orgId = uniqueOrg();
      await store.saveOrg(orgId, settings('x'));
      const other = new Store(store.db, new SecretBox(randomBytes(32)));
      await assert.rejects(other.getOrg(orgId));
      const box = new SecretBox(randomBytes(32));
      const sealed = box.seal('v', 'org-a:clientSecret');
      assert.equal(box.open(sealed, 'org-a:clientSecret'), 'v');
      assert.throws(() => box.open(sealed, 'org-b:clientSecret'));
    });

    it('maps cases to sessions', async () => {
      const orgId = uniqueOrg();
      const caseId = randomUUID();
      await store.putCaseSession({
        orgId,
        caseId,
        sessionId: 's-1',
        workflowId: `conversation:${orgId}:s-1`,
      });
      await store.putCaseSession({
        orgId,
        caseId,
        sessionId: 's-1',
        workflowId: `conversation:${orgId}:s-1`,
      });
      const found = await store.findSessionByCase(orgId, caseId.toUpperCase());
      assert.equal(found?.sessionId, 's-1');
      assert.equal(await store.findSessionByCase(uniqueOrg(), caseId), undefined);
    });
  });
}
