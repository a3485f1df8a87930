/**
 * Test & Save checks the way back: the OpenCX API key, and (verifyProcesses) whether the two Creatio
 * business processes call the bridge, with the Creatio emulator's processes active, inactive and
 * missing. No Temporal: the probe lives in the webhook route and the store.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Store } from '../../src/store';
import { startCreatioEmulator, type CreatioEmulator } from '../../src/sandbox/emulators/creatio';
import { startOpenCXEmulator, type OpenCXEmulator } from '../../src/sandbox/emulators/opencx';
import { PROCESS_PROBE_SUBJECT } from '../../src/settings/process-probe';
import {
  capturingLogger,
  openTestStore,
  startApi,
  uniqueOrg,
  validSettings,
  type RunningApi,
} from '../helpers';

interface Check {
  name: string;
  ok: boolean;
  skipped?: boolean;
  code?: string;
  fix?: string;
  field?: string;
}

describe('Test & Save: the OpenCX API key and the business processes calling back', () => {
  let emu: CreatioEmulator;
  let opencx: OpenCXEmulator;
  let store: Store;
  let api: RunningApi;
  const { log } = capturingLogger();

  before(async () => {
    emu = await startCreatioEmulator();
    opencx = await startOpenCXEmulator();
    store = await openTestStore(log);
    // A process that calls, calls within a second here; the ones that do not are waited for 3 s
    // (10 s in the product).
    api = await startApi({ store, log, testOptions: { processes: { waitMs: 3_000 } } });
  });
  after(async () => {
    await api.close();
    await emu.processesIdle();
    await emu.close();
    await opencx.close();
    await store.close();
  });
  beforeEach(() => {
    emu.processes.length = 0;
  });

  const settings = (extra: Record<string, unknown> = {}) =>
    validSettings(emu, { opencx: { apiBaseUrl: opencx.url, apiKey: 'ocx_test_key' }, ...extra });
  const put = (orgId: string, body: unknown) =>
    api.request('PUT', `/v1/orgs/${orgId}/integrations/creatio`, body);
  const check = (checks: Check[], name: string) => {
    const c = checks.find((x) => x.name === name);
    assert.ok(c, `no check ${name} in ${JSON.stringify(checks)}`);
    return c;
  };

  /** A saved organization and the webhook URL its processes call, on this test API. */
  async function saved(): Promise<{ orgId: string; url: string }> {
    const orgId = uniqueOrg();
    const res = await put(orgId, settings());
    assert.equal(res.status, 201, res.text);
    return { orgId, url: `${api.url}/webhooks/creatio/${String(res.body.webhookUrl).split('/').pop()}` };
  }

  const noProbeLeft = async () => {
    await emu.processesIdle();
    assert.ok(
      !emu.rows('Case').some((c) => c.Subject === PROCESS_PROBE_SUBJECT),
      'the probe case is removed',
    );
    assert.ok(
      !emu.rows('Activity').some((a) => a.Title === PROCESS_PROBE_SUBJECT),
      'the probe reply is removed',
    );
    assert.equal((await store.db.query('SELECT 1 FROM process_probes')).length, 0);
  };

  it('the OpenCX API key: checked against OpenCX; a wrong one is named and nothing is stored', async () => {
    const orgId = uniqueOrg();
    const bad = await put(orgId, settings({ opencx: { apiBaseUrl: opencx.url, apiKey: 'ocx_revoked' } }));
    assert.equal(bad.status, 422, bad.text);
    assert.equal(bad.body.error.code, 'opencx_api_key_rejected');
    assert.equal(bad.body.error.field, 'opencx.apiKey');
    assert.match(bad.body.error.fix, /API key/);
    assert.equal(await store.getOrg(orgId), undefined);

    const good = await put(orgId, settings());
    assert.equal(good.status, 201, good.text);
    assert.equal(check(good.body.checks, 'opencx_api_key').ok, true);

    const none = await api.request(
      'POST',
      `/v1/orgs/${uniqueOrg()}/integrations/creatio/test`,
      validSettings(emu),
    );
    const c = check(none.body.checks, 'opencx_api_key');
    assert.deepEqual([c.ok, c.skipped], [true, true]);
    assert.equal(none.body.ok, true);
  });

  it('both processes active: each calls for the probe, and the probe is cleaned up', async () => {
    const { orgId, url } = await saved();
    emu.processes.push(
      { kind: 'agent_reply', url, activityTypes: ['Email'] },
      { kind: 'case_closure', url, statusNames: ['Resolved', 'Closed'] },
    );
    const res = await put(orgId, settings({ verifyProcesses: true }));
    assert.equal(res.status, 200, res.text);
    assert.equal(check(res.body.checks, 'agent_reply_process').ok, true);
    assert.equal(check(res.body.checks, 'closure_process').ok, true);
    assert.ok(emu.processLog.filter((c) => c.status === 200).length >= 2, JSON.stringify(emu.processLog));
    await noProbeLeft();
  });

  it('agent-reply process inactive, closure process missing: both named with their fix; nothing saved', async () => {
    const { orgId, url } = await saved();
    emu.processes.push({ kind: 'agent_reply', url, activityTypes: ['Email'], active: false });
    const before = await store.getOrg(orgId);
    const res = await api.request('POST', `/v1/orgs/${orgId}/integrations/creatio/test`, {
      ...settings({ verifyProcesses: true }),
    });
    assert.equal(res.body.ok, false);
    const reply = check(res.body.checks, 'agent_reply_process');
    assert.deepEqual([reply.ok, reply.code], [false, 'agent_reply_process_not_calling']);
    assert.match(reply.fix!, /Active/);
    const closure = check(res.body.checks, 'closure_process');
    assert.deepEqual([closure.ok, closure.code], [false, 'closure_process_not_calling']);

    const saveRes = await put(orgId, settings({ verifyProcesses: true, closureStatusNames: ['Closed'] }));
    assert.equal(saveRes.status, 422);
    assert.equal(saveRes.body.error.code, 'agent_reply_process_not_calling');
    assert.deepEqual(
      (await store.getOrg(orgId))?.settings.closureStatusNames,
      before?.settings.closureStatusNames,
    );
    await noProbeLeft();
  });

  it('a process calling an old webhook URL is not calling this bridge', async () => {
    const { orgId, url } = await saved();
    emu.processes.push({ kind: 'case_closure', url, statusNames: ['Resolved'] });
    store.rotation.overlapMs = 0; // past the rotation overlap
    await api.request('POST', `/v1/orgs/${orgId}/integrations/creatio/webhook-token`);
    const res = await api.request(
      'POST',
      `/v1/orgs/${orgId}/integrations/creatio/test`,
      settings({ verifyProcesses: true }),
    );
    assert.equal(check(res.body.checks, 'closure_process').code, 'closure_process_not_calling');
    assert.ok(
      emu.processLog.some((c) => c.kind === 'case_closure' && c.status === 401),
      'it called, and got 401',
    );
  });

  it('a new organization cannot be probed yet: there is no webhook URL to call', async () => {
    const res = await api.request(
      'POST',
      `/v1/orgs/${uniqueOrg()}/integrations/creatio/test`,
      settings({ verifyProcesses: true }),
    );
    assert.equal(check(res.body.checks, 'agent_reply_process').code, 'processes_need_saved_settings');
    assert.match(check(res.body.checks, 'closure_process').fix!, /Save once/);
  });
});
