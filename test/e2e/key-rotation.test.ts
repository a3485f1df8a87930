/**
 * Rotation of the encryption key without downtime (docs/decisions/0024-key-rotation.md): sealed
 * values name their key, several keys open and the first seals, the derived Temporal payload keys
 * follow the same list, and `npm run rotate-keys` re-seals the store while conversations run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createCipheriv, randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { NativeConnection } from '@temporalio/worker';
import { ConfigError, loadConfig } from '../../src/config';
import { CreatioInbox } from '../../src/workflow-client/creatio-inbox';
import { EncryptionKey, KeyConfigError, SecretBox, UnknownKeyError, parseKeyList } from '../../src/crypto';
import { createLogger } from '../../src/logger';
import { Store, openStore } from '../../src/store';
import type { Db } from '../../src/store/db';
import { describeRotation, rotateKeys } from '../../src/store/rotate-keys';
import { SEALED_COLUMNS } from '../../src/store/sealed';
import { EncryptionCodec, parsePayloadKeys } from '../../src/temporal/codec';
import { BridgeWorkers } from '../../src/worker';
import { conversationWorkflowId } from '../../src/workflows/contract';
import { Bridge, ev, testWorkerOptions, waitFor } from '../bridge-harness';
import { newTestStoreConfig, startApi, storedSettings, uniqueOrg, type TestStoreConfig } from '../helpers';

const b64 = (k: Buffer) => k.toString('base64');
const keyA = randomBytes(32);
const keyB = randomBytes(32);
const A = new EncryptionKey('k0', keyA);
const B = new EncryptionKey('k1', keyB);
/** What must never appear in an error, a log line or the script's output. */
const material = [b64(keyA), b64(keyB), keyA.toString('hex'), keyB.toString('hex')];
const noMaterial = (text: string) => {
  for (const m of material) assert.ok(!text.includes(m), 'key material leaked');
};

/** A `v1` value as every release before key ids wrote it (pinned here, independent of SecretBox). */
function legacySeal(key: Buffer, plaintext: string, context: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(context));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', b64(iv), b64(cipher.getAuthTag()), b64(ct)].join(':');
}

describe('sealed values name their key', () => {
  it('the current key seals v2:<id>:iv:tag:ct; the legacy key (k0) still writes v1, as before', () => {
    const rotated = new SecretBox([B, A]);
    assert.match(rotated.seal('s3cret', 'org-1:clientSecret'), /^v2:k1:[^:]+:[^:]+:[^:]+$/);
    assert.equal(rotated.currentKeyId, 'k1');
    const legacy = new SecretBox(keyA);
    assert.match(legacy.seal('s3cret', 'org-1:clientSecret'), /^v1:[^:]+:[^:]+:[^:]+$/);
    assert.deepEqual(legacy.currentPrefixes(), ['v1:%', 'v2:k0:%']);
    assert.deepEqual(new SecretBox([new EncryptionKey('key_2', keyB)]).currentPrefixes(), ['v2:key\\_2:%']);
  });

  it('a v1 value (no key id) is read with k0, also when k0 is no longer the current key', () => {
    const old = legacySeal(keyA, 'hello', 'spill:wf:1');
    assert.equal(new SecretBox(keyA).open(old, 'spill:wf:1'), 'hello');
    assert.equal(new SecretBox([B, A]).open(old, 'spill:wf:1'), 'hello');
    assert.equal(new SecretBox([B, A]).isCurrent(old), false);
    assert.equal(new SecretBox([A, B]).isCurrent(old), true);
    // The context still binds: the same value moved to another row does not open.
    assert.throws(() => new SecretBox([B, A]).open(old, 'spill:wf:2'));
  });

  it('every listed key opens, the first seals; a value under a key not listed fails naming the id, not the key', () => {
    const byA = new SecretBox([A]).seal('x', 'c');
    const byB = new SecretBox([B, A]).seal('y', 'c');
    const both = new SecretBox([B, A]);
    assert.equal(both.open(byA, 'c'), 'x');
    assert.equal(both.open(byB, 'c'), 'y');
    const onlyB = new SecretBox([B]);
    assert.throws(
      () => onlyB.open(byA, 'c'),
      (e: unknown) => e instanceof UnknownKeyError && e.keyId === 'k0' && /"k0"/.test(e.message),
    );
    const v2 = new SecretBox([new EncryptionKey('k7', randomBytes(32))]).seal('z', 'c');
    try {
      onlyB.open(v2, 'c');
      assert.fail('expected UnknownKeyError');
    } catch (err) {
      assert.ok(err instanceof UnknownKeyError);
      assert.match(err.message, /key id "k7", which is not configured/);
      noMaterial(err.message + String(err.stack));
    }
    assert.throws(() => both.open('v3:k1:a:b:c', 'c'), /unknown format/);
    assert.throws(() => both.open('v2:k1:a:b', 'c'), /unknown format/);
  });

  it('a key never shows in JSON or inspect output', () => {
    const text = JSON.stringify({ keys: [A, B] }) + inspect([A, B]) + inspect({ nested: { k: A } });
    noMaterial(text);
    assert.match(text, /k0/);
  });
});

describe('key settings', () => {
  it('ENCRYPTION_KEY stays one key, id k0; ENCRYPTION_KEYS lists several, the first current', () => {
    assert.deepEqual(
      loadConfig({ ENCRYPTION_KEY: b64(keyA) }).encryptionKeys?.map((k) => [k.id, b64(k.key)]),
      [['k0', b64(keyA)]],
    );
    const keys = loadConfig({ ENCRYPTION_KEYS: ` k1:${b64(keyB)}, k0:${b64(keyA)} ` }).encryptionKeys;
    assert.deepEqual(
      keys?.map((k) => [k.id, b64(k.key)]),
      [
        ['k1', b64(keyB)],
        ['k0', b64(keyA)],
      ],
    );
    assert.equal(loadConfig({}).encryptionKeys, undefined);
  });

  it('refuses a wrong list with every problem named by position and id, never echoing a key', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ ENCRYPTION_KEYS: `k1:${b64(keyB)}`, ENCRYPTION_KEY: b64(keyA) }, /set only one/],
      [{ ENCRYPTION_KEYS: b64(keyB) }, /entry 1 is not id:base64key/],
      [{ ENCRYPTION_KEYS: `k1:${b64(keyB).slice(0, 20)}` }, /entry 1 \(id "k1"\): the key must be 32 bytes/],
      [{ ENCRYPTION_KEYS: `k1:${b64(keyB)},k1:${b64(keyA)}` }, /entry 2: the id "k1" is listed twice/],
      [
        { ENCRYPTION_KEYS: `k1:${b64(keyB)},k2:${b64(keyB)}` },
        /entry 2 \(id "k2"\): the same key is listed twice/,
      ],
      [{ ENCRYPTION_KEYS: `k 1:${b64(keyB)}` }, /entry 1: the id must be/],
      [{ ENCRYPTION_KEYS: `k1:${b64(keyB)}!` }, /the key must be 32 bytes/],
    ];
    for (const [env, problem] of cases) {
      try {
        loadConfig(env);
        assert.fail(`expected a ConfigError for ${problem}`);
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        assert.match(err.message, problem);
        noMaterial(err.message);
        assert.ok(!err.message.includes(b64(keyB).slice(0, 20)));
      }
    }
    assert.throws(() => parseKeyList(''), KeyConfigError);
  });

  it('production takes ENCRYPTION_KEYS in place of ENCRYPTION_KEY', () => {
    const prod = {
      NODE_ENV: 'production',
      ADMIN_API_TOKEN: 'x'.repeat(32),
      DATABASE_URL: 'postgres://db/bridge',
      TEMPORAL_ADDRESS: 'temporal:7233',
      PUBLIC_BASE_URL: 'https://bridge.example.com',
    };
    assert.throws(() => loadConfig(prod), /ENCRYPTION_KEY: required/);
    assert.deepEqual(
      loadConfig({ ...prod, ENCRYPTION_KEYS: `k1:${b64(keyB)},k0:${b64(keyA)}` }).encryptionKeys?.map(
        (k) => k.id,
      ),
      ['k1', 'k0'],
    );
  });
});

describe('derived payload keys follow the store keys', () => {
  it('the single key keeps id k0 and its derivation; each listed key gives one of its own id, the first encrypts', async () => {
    const legacy = parsePayloadKeys(undefined, keyA);
    assert.deepEqual(
      legacy.map((k) => k.id),
      ['k0'],
    );
    const listed = parsePayloadKeys(undefined, [B, A]);
    assert.deepEqual(
      listed.map((k) => k.id),
      ['k1', 'k0'],
    );
    assert.ok(listed[1]!.key.equals(legacy[0]!.key), 'k0 derives the same payload key as ENCRYPTION_KEY did');
    assert.ok(!listed[0]!.key.equals(keyB), 'a derived key, not the store key itself');
    // A history written under ENCRYPTION_KEY=A decodes with [B, A]; new payloads are written with k1.
    const plain: Payload = { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('"hi"') };
    const [old] = await new EncryptionCodec(legacy).encode([plain]);
    const rotated = new EncryptionCodec(listed);
    const [read] = await rotated.decode([old!]);
    assert.equal(Buffer.from(read!.data!).toString(), '"hi"');
    const [fresh] = await rotated.encode([plain]);
    assert.equal(Buffer.from(fresh!.metadata!['encryption-key-id']!).toString(), 'k1');
    await assert.rejects(new EncryptionCodec(parsePayloadKeys(undefined, [B])).decode([old!]), /"k0"/);
    // TEMPORAL_PAYLOAD_KEYS, when set, still decides on its own.
    const explicit = `p1:${b64(randomBytes(32))}`;
    assert.deepEqual(
      parsePayloadKeys(explicit, [B, A]).map((k) => k.id),
      ['p1'],
    );
  });
});

/** Writes one value of every sealed kind (every registry entry), through the store's own methods. */
async function writeEverySealedKind(store: Store, orgId = uniqueOrg()) {
  const s = storedSettings({
    clientSecret: 'client-s3cret',
    opencx: { apiBaseUrl: 'https://api.open.cx', apiKey: 'ocx-key-1', webhookSecret: 'whsec-one' },
  });
  await store.saveOrg(orgId, s);
  // A changed webhook secret keeps the previous one (sealed too) for the overlap.
  await store.saveOrg(orgId, { ...s, opencx: { ...s.opencx, webhookSecret: 'whsec-two' } });
  await store.rotateWebhookToken(orgId);
  const workflowId = conversationWorkflowId(orgId, `s-${randomUUID().slice(0, 8)}`);
  await store.putSpill(workflowId, 0, '[{"kind":"message","text":"spilled text"}]');
  await store.putSpill(workflowId, 1, '[{"kind":"message","text":"more spilled text"}]');
  await store.keepRejectedEvent({
    orgId,
    webhookId: `wh-${randomUUID().slice(0, 8)}`,
    event: 'conversation.contact_response',
    field: 'data.message',
    code: 'invalid_type',
    body: '{"event":"conversation.contact_response","data":{"text":"refused text"}}',
  });
  return { orgId, workflowId };
}

/** Every value of the store's schema that looks sealed, by `table.column`. */
async function sealedLookingColumns(db: Db): Promise<Set<string>> {
  const cols = await db.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = current_schema() AND data_type IN ('text', 'jsonb', 'character varying', 'json')`,
  );
  const found = new Set<string>();
  for (const c of cols) {
    const rows = await db.query(
      `SELECT 1 FROM "${c.table_name}" WHERE "${c.column_name}"::text ~ '(^|")v[12]:' LIMIT 1`,
    );
    if (rows.length > 0) found.add(`${c.table_name}.${c.column_name}`);
  }
  return found;
}

describe('every sealed column is in one list (src/store/sealed.ts)', () => {
  let store: Store;
  let config: TestStoreConfig;
  before(async () => {
    config = await newTestStoreConfig('postgres');
    store = await openStore({
      databaseUrl: config.databaseUrl,
      dataDir: undefined,
      key: keyA,
      log: createLogger('warn'),
    });
  });
  after(() => store.close());

  it('no code seals or opens but the list: a new sealed value must be added to it', () => {
    const root = path.join(__dirname, '..', '..', 'src');
    const allowed = new Set([path.join(root, 'crypto.ts'), path.join(root, 'store', 'sealed.ts')]);
    // These may hold a SecretBox, to hand it to sealIn / openIn (their lines are still checked for seal / open).
    const boxOwners = new Set([
      path.join(root, 'store', 'index.ts'),
      path.join(root, 'store', 'rotate-keys.ts'),
    ]);
    const offenders: string[] = [];
    for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
      const file = path.join(entry.parentPath, entry.name);
      if (allowed.has(file)) continue;
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          // A SecretBox seals (`.seal(`) or opens (`box.open(`) nowhere else; nor is one made elsewhere.
          const sealsOrOpens = /\.seal\(|[bB]ox\)?\??\.open\(/.test(line);
          const holdsBox = /\bSecretBox\b/.test(line) && !boxOwners.has(file);
          if (sealsOrOpens || holdsBox) {
            offenders.push(`${path.relative(root, file)}:${i + 1}: ${line.trim()}`);
          }
        });
    }
    assert.deepEqual(offenders, [], 'seal and open only through sealIn / openIn of src/store/sealed.ts');
  });

  it('after one write of every kind, every column holding a sealed value is listed, and every listed one holds one', async () => {
    await writeEverySealedKind(store);
    const found = await sealedLookingColumns(store.db);
    const listed = new Set(SEALED_COLUMNS.map((c) => `${c.table}.${c.column}`));
    assert.deepEqual([...found].sort(), [...listed].sort());
    // Every field of the jsonb entries that is sealed is listed too.
    for (const c of SEALED_COLUMNS.filter((x) => x.fields)) {
      const rows = await store.db.query<{ key: string }>(
        `SELECT DISTINCT s.key FROM "${c.table}" t, jsonb_each_text(t."${c.column}") s WHERE s.value ~ '^v[12]:'`,
      );
      for (const r of rows)
        assert.ok(c.fields!.includes(r.key), `${c.table}.${c.column}.${r.key} is not listed`);
    }
  });
});

describe('rotate-keys re-seals the store', () => {
  let config: TestStoreConfig;
  let db: Db;
  const log = createLogger('warn');
  before(async () => {
    config = await newTestStoreConfig('postgres');
    const legacy = await openStore({ databaseUrl: config.databaseUrl, dataDir: undefined, key: keyA, log });
    db = legacy.db;
  });
  after(() => db.close());

  it('re-seals every value with the current key, idempotently; then the old key is no longer needed', async () => {
    const legacy = new Store(db, new SecretBox(keyA));
    const { orgId, workflowId } = await writeEverySealedKind(legacy);
    const before = await legacy.getOrg(orgId);

    const report = await rotateKeys(db, new SecretBox([B, A]), { batchSize: 1 });
    assert.equal(report.unreadable, 0);
    assert.equal(report.remaining, 0);
    const byPlace = Object.fromEntries(report.columns.map((c) => [c.place, c]));
    assert.equal(byPlace['org_settings.secrets']!.resealed, 5);
    assert.equal(byPlace['conversation_spill.payload']!.resealed, 2);
    assert.equal(byPlace['opencx_rejected_events.payload']!.resealed, 1);
    assert.deepEqual(byPlace['conversation_spill.payload']!.byKey, { k1: 2 });
    const lines = describeRotation(report).join('\n');
    assert.match(lines, /org_settings\.secrets: 5 re-sealed/);
    assert.match(lines, /Every sealed value is under "k1"/);
    noMaterial(lines);

    const again = await rotateKeys(db, new SecretBox([B, A]));
    assert.deepEqual(
      again.columns.map((c) => c.resealed + c.stale),
      [0, 0, 0],
    );

    const onlyB = new Store(db, new SecretBox([B]));
    const after = await onlyB.getOrg(orgId);
    assert.deepEqual(after?.settings, before?.settings);
    assert.equal(after?.webhookToken, before?.webhookToken);
    assert.equal(after?.previousWebhookSecret?.secret, 'whsec-one');
    assert.match((await onlyB.getSpill(workflowId, 1))!, /more spilled text/);
    assert.match((await onlyB.rejectedEvents(orgId))[0]!.body, /refused text/);
    await assert.rejects(new Store(db, new SecretBox(keyA)).getOrg(orgId), /key id "k1"/);
  });

  it('a write of the bridge between the read and the write is kept (compare-and-set), and counted', async () => {
    const legacy = new Store(db, new SecretBox(keyA));
    const orgId = uniqueOrg();
    const s = storedSettings({
      clientSecret: 'before-rotation',
      opencx: { apiBaseUrl: 'https://api.open.cx', apiKey: 'k', webhookSecret: undefined },
    });
    await legacy.saveOrg(orgId, s);
    const workflowId = conversationWorkflowId(orgId, 's-cas');
    await legacy.putSpill(workflowId, 0, '"old chunk"');
    // The bridge (already on [B, A]) writes both rows just before rotate-keys writes them.
    const bridge = new Store(db, new SecretBox([B, A]));
    let raced = 0;
    const racing: Db = {
      ...db,
      query: async <T>(sql: string, params?: unknown[]) => {
        if (/^UPDATE "org_settings"/.test(sql) && params?.includes(orgId) && raced++ === 0) {
          await bridge.saveOrg(orgId, { ...s, clientSecret: 'written-meanwhile' });
        }
        if (/^UPDATE "conversation_spill"/.test(sql) && params?.includes(workflowId) && raced++ <= 1) {
          await bridge.putSpill(workflowId, 0, '"new chunk"');
        }
        return db.query<T>(sql, params);
      },
    };
    const report = await rotateKeys(racing, new SecretBox([B, A]));
    assert.equal(raced, 2, 'both concurrent writes happened');
    const byPlace = Object.fromEntries(report.columns.map((c) => [c.place, c]));
    assert.ok(byPlace['org_settings.secrets']!.changedMeanwhile >= 1);
    assert.equal(byPlace['conversation_spill.payload']!.changedMeanwhile, 1);
    assert.equal(report.remaining, 0, 'what the bridge wrote is already under the current key');
    assert.equal((await bridge.getOrg(orgId))?.settings.clientSecret, 'written-meanwhile');
    assert.equal(await bridge.getSpill(workflowId, 0), '"new chunk"');
  });

  it('a value whose key is not listed is left as it is, counted by key id; the script exits 1 and never prints a key', async () => {
    const stranger = new EncryptionKey('k9', randomBytes(32));
    const orgId = uniqueOrg();
    await new Store(db, new SecretBox([stranger])).putSpill(conversationWorkflowId(orgId, 's-x'), 0, '"x"');
    const cli = (keys: string) =>
      spawnSync(
        process.execPath,
        ['--import', 'tsx', path.join(__dirname, '..', '..', 'src', 'store', 'rotate-keys.ts')],
        {
          env: {
            PATH: process.env.PATH,
            DATABASE_URL: config.databaseUrl,
            ENCRYPTION_KEYS: keys,
            LOG_LEVEL: 'error',
          },
          encoding: 'utf8',
          timeout: 60_000,
        },
      );
    const res = cli(`k1:${b64(keyB)},k0:${b64(keyA)}`);
    assert.equal(res.status, 1, res.stderr);
    assert.match(res.stdout, /conversation_spill\.payload: .*unreadable: 1 under "k9"/);
    assert.match(res.stdout, /list the key ids named above in ENCRYPTION_KEYS/);
    noMaterial(res.stdout + res.stderr);
    await db.query('DELETE FROM conversation_spill WHERE workflow_id = $1', [
      conversationWorkflowId(orgId, 's-x'),
    ]);
    const ok = cli(`k1:${b64(keyB)},k0:${b64(keyA)}`);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /Every sealed value is under "k1"/);
    noMaterial(ok.stdout + ok.stderr);
    const bad = cli(`k1:${b64(keyB).slice(0, 30)}`);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /ENCRYPTION_KEYS: entry 1 \(id "k1"\)/);
    noMaterial(bad.stdout + bad.stderr);
  });
});

// ---------------------------------------------------------------------------------------------
// End to end: the bridge keeps running through a rotation.

const sid = () => `kr-${randomUUID().slice(0, 12)}`;
const POISON = (set: string, v: Record<string, unknown>) =>
  set === 'Activity' && String(v.Title).includes('POISON')
    ? 'Column "Title" holds a value Creatio will not take'
    : null;

/**
 * Stops the bridge's API and workers and starts them again on the same database and task queue
 * with other keys, as a redeploy does: `storeKeys` for the store, `payloadKeys` for the derived
 * Temporal payload keys.
 */
async function restartWith(
  bridge: Bridge,
  storeKeys: EncryptionKey[],
  payloadKeys: EncryptionKey[],
  natives: NativeConnection[],
): Promise<void> {
  await bridge.api.close();
  await bridge.inbox?.stop();
  await bridge.stopWorkers();
  const oldStore = bridge.store;
  const store = await openStore({
    databaseUrl: bridge.storeConfig.databaseUrl,
    dataDir: undefined,
    key: storeKeys,
    log: bridge.log,
  });
  const codec = new EncryptionCodec(parsePayloadKeys(undefined, payloadKeys));
  const client = new Client({
    connection: bridge.client.connection,
    dataConverter: { payloadCodecs: [codec] },
  });
  const native = await NativeConnection.connect({ address: bridge.address });
  natives.push(native);
  const workers = new BridgeWorkers({
    ...testWorkerOptions({
      connection: native,
      taskQueue: bridge.taskQueue,
      store,
      log: bridge.log,
      payloadKey: storeKeys[0]!.key,
      metrics: bridge.metrics,
    }),
    dataConverter: { payloadCodecs: [codec] },
  });
  await workers.start();
  const inbox = new CreatioInbox(store, client, bridge.log);
  inbox.startSweep(1_000, 1_000);
  const api = await startApi({
    store,
    log: bridge.log,
    metrics: bridge.metrics,
    codec,
    conversations: { client, taskQueue: bridge.taskQueue, options: bridge.options, creatioInbox: inbox },
  });
  Object.assign(bridge, { store, codec, client, workers, inbox, api });
  await oldStore.close();
}

/** The encrypted payloads of a workflow's whole history (every run), as Temporal keeps them. */
async function storedPayloads(bridge: Bridge, workflowId: string): Promise<Payload[]> {
  const found: Payload[] = [];
  const walk = (v: unknown): void => {
    if (!v || typeof v !== 'object' || ArrayBuffer.isView(v)) return;
    const p = v as Payload;
    if (p.metadata && p.data && Buffer.from(p.metadata.encoding ?? []).toString() === 'binary/encrypted') {
      found.push(p);
      return;
    }
    for (const x of Array.isArray(v) ? v : Object.values(v)) walk(x);
  };
  const runs = new Set<string>();
  for await (const w of bridge.client.workflow.list({ query: `WorkflowId = '${workflowId}'` }))
    runs.add(w.runId);
  for (const runId of runs) {
    let nextPageToken: Uint8Array | undefined;
    do {
      const page = await bridge.client.workflowService.getWorkflowExecutionHistory({
        namespace: 'default',
        execution: { workflowId, runId },
        ...(nextPageToken && { nextPageToken }),
      });
      walk(page.history?.events);
      nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
    } while (nextPageToken);
  }
  return found;
}

const keyIdOf = (p: Payload) => Buffer.from(p.metadata!['encryption-key-id']!).toString();

describe('rotation while conversations run (end to end)', () => {
  const bridge = new Bridge({ conversation: { maxHistoryEvents: 120 } });
  const natives: NativeConnection[] = [];
  before(() => bridge.start());
  after(async () => {
    await bridge.close();
    for (const n of natives) await n.close();
  });

  it('A, then [B, A] and rotate-keys under traffic, then the store on [B] alone: every conversation goes on, each message once', async () => {
    // ENCRYPTION_KEY=A, as today: the harness's single key (id k0).
    const a = new EncryptionKey('k0', bridge.storeConfig.key);
    const b = new EncryptionKey('k1', randomBytes(32));
    const orgId = await bridge.connectOrg();
    const settingsBefore = (await bridge.api.request('GET', `/v1/orgs/${orgId}/integrations/creatio`)).body;
    const secretBefore = (await bridge.store.getOrg(orgId))?.settings.clientSecret;
    assert.ok(secretBefore);
    const talk = [sid(), sid()];
    const say = async (s: string, n: number) => {
      const r = await bridge.send(
        orgId,
        'conversation.contact_response',
        ev.message(s, `${s}-${n}`, `${s} #${n}`),
      );
      assert.ok(r.status < 300, JSON.stringify(r));
    };
    for (const s of talk) {
      await bridge.send(orgId, 'conversation.started', ev.started(s));
      await say(s, 0);
      await say(s, 1);
    }
    for (const s of talk) await bridge.expectCustomerMessages(orgId, s, 2);

    // One conversation with events spilled to the store: parked on a message Creatio refuses
    // while 2.4 MB more arrive, past the history limit (a new run carries them in the store).
    const spiller = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(spiller));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(spiller, 'g0', 'first'));
    const spillCase = await bridge.caseOf(orgId, spiller);
    bridge.emu.setFaults({ rejectWrite: POISON });
    await bridge.send(orgId, 'conversation.contact_response', ev.message(spiller, 'g1', 'POISON'));
    const parkedOn = (step: string) =>
      waitFor(`the step '${step}' parked`, async () => {
        const st = (await bridge.session(orgId, spiller)).body;
        return st?.lastError?.parked && st.lastError.step === step ? st : undefined;
      });
    await parkedOn('log message g1');
    for (let i = 2; i <= 41; i++) {
      await bridge.send(
        orgId,
        'conversation.contact_response',
        ev.message(spiller, `g${i}`, `large ${i} ${'x'.repeat(60_000)}`),
      );
    }
    for (let i = 42; i <= 141; i++) {
      await bridge.send(orgId, 'conversation.contact_response', ev.message(spiller, `g${i}`, `short ${i}`));
    }
    await waitFor(
      'a new run while parked',
      async () => (await bridge.session(orgId, spiller)).body?.runs > 1,
      60_000,
    );
    await parkedOn('log message g1');
    const spilled = await bridge.store.db.query<{ payload: string }>(
      'SELECT payload FROM conversation_spill WHERE workflow_id = $1',
      [conversationWorkflowId(orgId, spiller)],
    );
    assert.ok(spilled.length > 0, 'events were spilled to the store');
    assert.ok(
      spilled.every((r) => r.payload.startsWith('v1:')),
      'sealed as today (v1, key A)',
    );
    // A refused OpenCX event kept for replay (sealed too).
    await bridge.store.keepRejectedEvent({
      orgId,
      webhookId: 'wh-rotation',
      event: 'conversation.contact_response',
      field: 'data.message',
      code: 'invalid_type',
      body: '{"text":"kept for replay"}',
    });

    // 1. Every process restarts on [B, A]: B seals and encrypts, A still opens and decodes.
    await restartWith(bridge, [b, a], [b, a], natives);
    for (const s of talk) await say(s, 2);
    for (const s of talk) await bridge.expectCustomerMessages(orgId, s, 3);

    // 2. rotate-keys while messages keep coming.
    const rotating = rotateKeys(bridge.store.db, new SecretBox([b, a]), { batchSize: 1 });
    for (const s of talk) await say(s, 3);
    const report = await rotating;
    assert.equal(report.unreadable, 0, describeRotation(report).join('\n'));
    assert.equal(report.remaining, 0, describeRotation(report).join('\n'));
    const byPlace = Object.fromEntries(report.columns.map((c) => [c.place, c]));
    assert.ok(byPlace['conversation_spill.payload']!.resealed >= spilled.length);
    assert.ok(byPlace['org_settings.secrets']!.resealed >= 3);
    assert.equal(byPlace['opencx_rejected_events.payload']!.resealed, 1);
    for (const s of talk) await bridge.expectCustomerMessages(orgId, s, 4);
    const again = await rotateKeys(bridge.store.db, new SecretBox([b, a]));
    assert.equal(
      again.columns.reduce((n, c) => n + c.resealed, 0),
      0,
      'a second run has nothing to do',
    );

    // 3. The store on [B] alone; the payload keys still accept A's derived key (k0) for the
    // histories written under it.
    await restartWith(bridge, [b], [b, a], natives);
    const settingsAfter = await bridge.api.request('GET', `/v1/orgs/${orgId}/integrations/creatio`);
    assert.equal(settingsAfter.status, 200, settingsAfter.text);
    assert.deepEqual(settingsAfter.body, settingsBefore, 'organization settings read the same');
    assert.equal((await bridge.store.getOrg(orgId))?.settings.clientSecret, secretBefore);
    assert.match((await bridge.store.rejectedEvent(orgId, 'wh-rotation'))!.body, /kept for replay/);
    for (const s of talk) await say(s, 4);
    for (const s of talk) await bridge.expectCustomerMessages(orgId, s, 5);

    // The spilled events, re-sealed with B, are read back once the parked step is skipped.
    bridge.emu.setFaults({ rejectWrite: null });
    const skip = await bridge.api.request('POST', `/v1/orgs/${orgId}/sessions/${spiller}/skip`, {
      reason: 'poison',
    });
    assert.equal(skip.status, 200, skip.text);
    await waitFor(
      'all 140 messages after the poison logged',
      async () => (await bridge.session(orgId, spiller)).body?.messages?.logged === 141,
      120_000,
    );
    const order = bridge
      .activitiesOf(spillCase)
      .map((x) => /(large|short) (\d+)/.exec(String(x.Title))?.[2])
      .filter((n): n is string => n !== undefined)
      .map(Number);
    assert.deepEqual(
      order,
      Array.from({ length: 140 }, (_, i) => i + 2),
      'every spilled message once, in order',
    );

    // Old histories decode through the codec: payloads written under A (k0) and under B (k1).
    const payloads = await storedPayloads(bridge, conversationWorkflowId(orgId, talk[0]!));
    const ids = new Set(payloads.map(keyIdOf));
    assert.ok(ids.has('k0') && ids.has('k1'), `payloads under both keys: ${[...ids].join(', ')}`);
    const decoded = await bridge.codec.decode(payloads);
    assert.ok(
      decoded.some((p) =>
        Buffer.from(p.data ?? [])
          .toString()
          .includes(`${talk[0]} #0`),
      ),
    );
    // Which is why A stays listed for the payloads until those histories are gone.
    const withoutA = new EncryptionCodec(parsePayloadKeys(undefined, [b]));
    await assert.rejects(
      withoutA.decode(payloads.filter((p) => keyIdOf(p) === 'k0')),
      /no payload key with id "k0"/,
    );
  });
});
