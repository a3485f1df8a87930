/**
 * The settings field list (src/settings/fields.ts) and what is derived from it agree: the request
 * schema, the settings answer (secrets masked), its OpenAPI schema, the console's form and which
 * Test & Save check covers which field.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openApiDocument } from '../../src/api/openapi';
import {
  CHECK_NAMES,
  consoleFields,
  FIELD_CHECKS,
  LOOKUP_GUID_FIELDS,
  publicView,
  settingsFields,
  settingsInputSchema,
} from '../../src/settings/fields';
import { MASK, type OrgSettings } from '../../src/settings/schema';

const SECRETS = { clientSecret: 'cs-secret-value', apiKey: 'ocx-key-value', webhookSecret: 'whsec-value' };

const settings: OrgSettings = {
  instanceUrl: 'https://acme.creatio.com',
  identityServiceUrl: 'https://acme-is.creatio.com',
  clientId: 'client',
  clientSecret: SECRETS.clientSecret,
  defaultCaseOwnerId: '410006e1-ca4e-4502-a9ec-e54d922d2c00',
  defaultCaseGroupId: undefined,
  resolvedStatusId: undefined,
  afterClose: 'reopen',
  reopenStatusId: '410006e1-ca4e-4502-a9ec-e54d922d2c01',
  createCaseOnlyOnHandoff: true,
  agentReplyFilter: { activityTypes: ['Email'], activityCategories: [] },
  closureStatusNames: ['Closed'],
  aiFields: [],
  contactMatching: 'never',
  verifiedChannels: ['sms'],
  odataPath: '/odata',
  opencx: {
    apiBaseUrl: 'https://api.open.cx',
    apiKey: SECRETS.apiKey,
    webhookSecret: SECRETS.webhookSecret,
    organizationId: 'ocx-org',
  },
};

/** The dotted paths of an object's keys, `prefix` first (orgId and webhookUrl are not settings). */
function pathsOf(o: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(o).map(([k]) => `${prefix}${k}`);
}

const fields = settingsFields();
const named = (pred: (f: (typeof fields)[number]) => boolean) => fields.filter(pred).map((f) => f.name);

describe('settings: one field list', () => {
  it('the request schema accepts exactly the fields with an input', () => {
    const { opencx, ...top } = settingsInputSchema.shape;
    const inSchema = [...pathsOf(top), ...pathsOf(opencx.unwrap().shape, 'opencx.')].sort();
    assert.deepEqual(inSchema, named((f) => !!f.input).sort());
  });

  it('the settings answer holds exactly the fields with a view, every secret masked', () => {
    const view = publicView('org-1', settings, 'https://bridge.example.com/webhooks/creatio/t');
    const { orgId, webhookUrl, opencx, ...top } = view;
    assert.equal(orgId, 'org-1');
    assert.match(webhookUrl, /^https:/);
    const shown = [...pathsOf(top), ...pathsOf(opencx, 'opencx.')].sort();
    assert.deepEqual(shown, named((f) => !!f.view).sort());
    const json = JSON.stringify(view);
    for (const secret of Object.values(SECRETS)) assert.ok(!json.includes(secret), `${secret} shown`);
    for (const name of named((f) => f.secret === true)) {
      const value = name.split('.').reduce<any>((o, k) => o[k], view);
      assert.equal(value, MASK, name);
    }
    const unset = publicView(
      'org-1',
      { ...settings, opencx: { apiBaseUrl: 'https://x' } } as OrgSettings,
      '',
    );
    assert.equal(unset.opencx.apiKey, null);
    assert.equal(unset.opencx.webhookSecret, null);
  });

  it('the OpenAPI document describes the same request and answer', () => {
    const doc = openApiDocument('https://bridge.example.com') as any;
    const route = doc.paths['/v1/orgs/{orgId}/integrations/creatio'];
    const body = route.put.requestBody.content['application/json'].schema;
    const answer = route.get.responses['200'].content['application/json'].schema;
    const bodyPaths = [
      ...Object.keys(body.properties).filter((k) => k !== 'opencx'),
      ...pathsOf(body.properties.opencx.properties, 'opencx.'),
    ].sort();
    assert.deepEqual(bodyPaths, named((f) => !!f.input).sort());
    const answerPaths = [
      ...Object.keys(answer.properties).filter(
        (k) => !['orgId', 'opencx', 'webhookUrl', 'notices', 'checks'].includes(k),
      ),
      ...pathsOf(answer.properties.opencx.properties, 'opencx.'),
    ].sort();
    assert.deepEqual(answerPaths, named((f) => !!f.view).sort());
    for (const f of fields) {
      const [top, sub] = f.name.split('.');
      const schemas = [body, answer]
        .map((s) => (sub ? s.properties.opencx?.properties[sub] : s.properties[top!]))
        .filter(Boolean);
      for (const s of schemas) assert.ok(s.description, `${f.name} has no description`);
    }
  });

  it("the console's form edits request fields, each with its control", () => {
    const form = consoleFields();
    assert.deepEqual(form.map((f) => f.label).sort(), fields.flatMap((f) => f.console?.label ?? []).sort());
    const controls = form.map((f) => f.control);
    assert.equal(new Set(controls).size, controls.length, 'two controls with one name');
    for (const f of form) {
      // The body a control writes parses; its field is one the request accepts.
      const field = fields.find((x) => f.path === x.name || f.path.startsWith(`${x.name}.`));
      assert.ok(field?.input, `${f.path} is not a request field`);
      if (f.kind === 'secret') assert.ok(field.secret, f.path);
    }
    const secrets = form.filter((f) => f.kind === 'secret').map((f) => f.path);
    assert.deepEqual(secrets.sort(), named((f) => f.secret === true).sort());
  });

  it('every check named is one of Test & Save, and the lookups check knows every GUID field', () => {
    for (const [field, check] of Object.entries(FIELD_CHECKS)) {
      assert.ok((CHECK_NAMES as readonly string[]).includes(check), `${field}: ${check}`);
    }
    assert.deepEqual([...LOOKUP_GUID_FIELDS].sort(), named((f) => f.type === 'guid').sort());
  });
});
