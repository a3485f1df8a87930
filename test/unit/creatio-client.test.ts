import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { CreatioClient, clearTokenCache, identityServiceUrlFor, odataString } from '../../src/creatio/client';
import { CreatioError, parseRetryAfter } from '../../src/creatio/errors';
import { closestName } from '../../src/creatio/metadata';
import { freePort } from '../../src/temporal/launcher';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import {
  SANDBOX_CLIENT,
  startCreatioEmulator,
  type CreatioEmulator,
} from '../../src/sandbox/emulators/creatio';

describe('Creatio client against the emulator', () => {
  let emu: CreatioEmulator;
  const client = (secret = SANDBOX_CLIENT.clientSecret) =>
    new CreatioClient(
      {
        instanceUrl: emu.url,
        identityServiceUrl: emu.url,
        clientId: SANDBOX_CLIENT.clientId,
        clientSecret: secret,
      },
      { timeoutMs: 2_000 },
    );
  const kindOf = async (p: Promise<unknown>) => {
    try {
      await p;
      return 'ok';
    } catch (err) {
      assert.ok(err instanceof CreatioError, String(err));
      return err.kind;
    }
  };

  before(async () => {
    emu = await startCreatioEmulator();
  });
  beforeEach(() => {
    emu.reset();
    clearTokenCache();
  });
  after(() => emu.close());

  it('mints one token per expiry, shared by clients of the same organization', async () => {
    await Promise.all([
      client().listCaseStatuses(),
      client().listCaseStatuses(),
      client().getContact(IDS.contact.Supervisor),
    ]);
    await client().listCaseStatuses();
    assert.equal(emu.count('token'), 1);
  });

  it('re-mints once and replays when a token is rejected (401)', async () => {
    const c = client();
    await c.listCaseStatuses();
    emu.revokeTokens();
    const statuses = await c.listCaseStatuses();
    assert.ok(statuses.some((s) => s.Name === 'Resolved'));
    assert.equal(emu.count('token'), 2);
  });

  it('refreshes a short-lived token before it expires', async () => {
    emu.setFaults({ tokenLifetimeSec: 1 });
    const c = client();
    await c.listCaseStatuses();
    await new Promise((r) => setTimeout(r, 1_100));
    await c.listCaseStatuses();
    assert.equal(emu.count('token'), 2);
    assert.equal(emu.count('GET CaseStatus'), 2, 'no request was wasted on an expired token');
  });

  it('creates with a client id, reads back, patches, lists with filters, deletes', async () => {
    const c = client();
    const id = randomUUID();
    const created = await c.create('Case', {
      Id: id,
      Subject: "O'Brien's order",
      RegisteredOn: new Date().toISOString(),
    });
    assert.equal(created.Id, id);
    assert.match(String(created.Number), /^SR\d{8}$/);
    await c.update('Case', id, { StatusId: IDS.caseStatus['In progress'] });
    const read = await c.getCase<{ Id: string; StatusId: string }>(id, ['Id', 'StatusId']);
    assert.equal(read?.StatusId, IDS.caseStatus['In progress']);
    const found = await c.list('Case', {
      select: ['Id'],
      filter: `Subject eq ${odataString("O'Brien's order")}`,
    });
    assert.deepEqual(
      found.map((r) => r.Id),
      [id],
    );
    await c.remove('Case', id);
    assert.equal(await c.getCase(id, ['Id']), undefined);
  });

  it('classifies every failure', async (t) => {
    // This test sends names Creatio does not have on purpose: not the bridge's requests.
    emu.recordConformance = false;
    t.after(() => (emu.recordConformance = true));
    const c = client();
    assert.equal(await kindOf(client('wrong').token()), 'bad_credentials');
    emu.addClient({ clientId: 'ac', clientSecret: 'ac', grantType: 'authorization_code' });
    assert.equal(
      await kindOf(
        new CreatioClient({
          instanceUrl: emu.url,
          identityServiceUrl: emu.url,
          clientId: 'ac',
          clientSecret: 'ac',
        }).token(),
      ),
      'grant_type',
    );
    // An unknown name cannot be fixed by retrying: a schema mismatch, with what is missing.
    const unknownColumn = await c.create('Case', { Subjekt: 'x' }).catch((e: unknown) => e);
    assert.ok(unknownColumn instanceof CreatioError && unknownColumn.kind === 'schema');
    assert.deepEqual(unknownColumn.missing, { entity: 'Case', column: 'Subjekt' });
    assert.equal(unknownColumn.retryable, false);
    assert.equal(
      await kindOf(c.list('Case', { select: ['Id'], filter: `StatusId eq '${IDS.caseStatus.New}'` })),
      'validation',
    );
    assert.equal(await kindOf(c.update('Case', randomUUID(), { Subject: 'x' })), 'not_found');
    assert.equal(await kindOf(c.create('Case', { Subject: 'x', OwnerId: randomUUID() })), 'transient');
    const unknownSet = await c.list('MessageType', { select: ['Id'] }).catch((e: unknown) => e);
    assert.ok(unknownSet instanceof CreatioError && unknownSet.kind === 'schema');
    assert.deepEqual(unknownSet.missing, { entity: 'MessageType' });
    assert.equal(unknownSet.retryable, false);
    emu.addClient({ clientId: 'ro', clientSecret: 'ro', denied: { Case: ['create'] } });
    const ro = new CreatioClient({
      instanceUrl: emu.url,
      identityServiceUrl: emu.url,
      clientId: 'ro',
      clientSecret: 'ro',
    });
    assert.equal(await kindOf(ro.create('Case', { Subject: 'x' })), 'forbidden');

    emu.setFaults({ rateLimitBurst: 1, retryAfterSec: 7 });
    const limited = await c.listCaseStatuses().catch((e: unknown) => e);
    assert.ok(limited instanceof CreatioError && limited.kind === 'rate_limited');
    assert.equal(limited.retryAfterMs, 7_000);
    assert.equal(limited.retryable, true);

    // A throttling window: every call 429 with Retry-After the rest of it, then answered again.
    emu.setFaults({ rateLimitUntil: Date.now() + 1_500 });
    const throttled = await c.listCaseStatuses().catch((e: unknown) => e);
    assert.ok(throttled instanceof CreatioError && throttled.kind === 'rate_limited');
    assert.equal(throttled.retryAfterMs, 2_000);
    await new Promise((r) => setTimeout(r, 1_600));
    assert.ok((await c.listCaseStatuses()).length > 0);
    emu.setFaults({ rateLimitUntil: 0 });

    emu.setFaults({ errorRate: 1, errorStatus: 502 });
    assert.equal(await kindOf(c.listCaseStatuses()), 'transient');
    emu.setFaults({ errorRate: 0, outage: 'reset' });
    assert.equal(await kindOf(c.listCaseStatuses()), 'transient');
    emu.setFaults({ outage: false, writeThenFailRate: 1 });
    const unknown = await c.create('Case', { Subject: 'x' }).catch((e: unknown) => e);
    assert.ok(unknown instanceof CreatioError && unknown.kind === 'transient' && unknown.outcomeUnknown);

    const closed = `http://127.0.0.1:${await freePort()}`;
    const down = new CreatioClient({
      instanceUrl: closed,
      identityServiceUrl: closed,
      clientId: 'a',
      clientSecret: 'b',
    });
    assert.equal(await kindOf(down.token()), 'unreachable');
  });

  it('reads $metadata with lookups and text lengths', async () => {
    const meta = await client().metadata();
    const caseType = meta.get('Case')!;
    assert.equal(caseType.properties.get('PriorityId')?.lookupEntity, 'CasePriority');
    assert.equal(caseType.properties.get('Subject')?.maxLength, 500);
    assert.equal(meta.get('Activity')?.properties.get('CaseId')?.type, 'Edm.Guid');
  });
});

describe('Creatio client helpers', () => {
  it('derives the Identity Service for Creatio cloud; explicit wins', () => {
    assert.equal(identityServiceUrlFor('https://acme.creatio.com'), 'https://acme-is.creatio.com');
    assert.equal(
      identityServiceUrlFor('https://acme.creatio.com', 'https://id.acme.io/'),
      'https://id.acme.io',
    );
    assert.equal(identityServiceUrlFor('https://crm.acme.io/app'), 'https://crm.acme.io');
  });
  it('parses Retry-After as seconds or a date', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
    assert.equal(parseRetryAfter(null), undefined);
  });
  it('suggests the closest column name', () => {
    const cols = ['PriorityId', 'StatusId', 'Subject', 'UsrProductName'];
    assert.equal(closestName('priorityid', cols), 'PriorityId');
    assert.equal(closestName('UsrProductNam', cols), 'UsrProductName');
    assert.equal(closestName('Completely', cols), undefined);
  });
});
