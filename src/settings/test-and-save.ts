/**
 * Test & Save: every check of an organization's settings, in order, each failure named with its
 * fix (the product's troubleshooting page). Over 300 lines on purpose: the checks run in sequence
 * and each skips the next ones when it fails, which reads best as one function.
 */
import { OutboundAddressRefusedError, outboundRequest, type OutboundResponse } from '../net/outbound';
import { randomUUID } from 'node:crypto';
import { CreatioClient, creatioClientFor, identityServiceUrlFor, type Entity } from '../creatio/client';
import { CreatioError } from '../creatio/errors';
import { closestName } from '../creatio/metadata';
import { describeGap, schemaGaps, type SchemaGap } from '../creatio/schema-check';
import { listedValues } from '../activities/ai-fields';
import { ApiError } from '../errors';
import {
  DEFAULT_OPENCX_API_BASE_URL,
  opencxOrganizationField,
  type OdataPath,
  type OrgSettings,
} from './schema';
import { LOOKUP_GUID_FIELDS, type LookupGuidField, type SettingsInput } from './fields';
import { normalizeBaseUrl, type Notice } from './url';
import { OpenCXClient, OpenCXError } from '../opencx/client';
import { probeProcesses, type ProcessProbeOptions } from './process-probe';

export interface Check {
  name: string;
  ok: boolean;
  skipped?: boolean;
  code?: string;
  message?: string;
  fix?: string;
  field?: string;
}

export interface TestResult {
  ok: boolean;
  checks: Check[];
  notices: Notice[];
  /** The settings as they would be stored (normalised); present when the input could be read. */
  settings?: OrgSettings;
}

export interface TestOptions {
  timeoutMs: number;
  /** Write probe: create, read, update and delete a marked test case (default true). */
  probeWrites?: boolean;
  /** For `verifyProcesses`: the saved organization and where the webhook route marks probes. */
  processes?: ProcessProbeOptions;
}

class CheckFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly fix: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const FIX = {
  secret:
    "Regenerate the client secret in Creatio (System Designer → OAuth 2.0 integrated applications), paste it here, and check that the application's Active box is ticked.",
  grant:
    'In Creatio, create the OAuth 2.0 integrated application as a server-to-server (Client Credentials) application; an authorization-code application cannot be used.',
  odata:
    'Give the OAuth application\'s user the "Access to OData" system operation (CanUseODataService) and read access to Case.',
  caseRights:
    "Give the OAuth application's user read, create and edit permissions on the Case and Activity objects (System Designer → Object permissions).",
  identity:
    'Set identityServiceUrl to your Identity Service address (Creatio system setting "OAuth 2.0 Identity Server Url", OAuth20IdentityServerUrl).',
  retry: 'Creatio is answering with errors right now; run Test & Save again in a few minutes.',
};

const gapName = (g: SchemaGap) => (g.column ? `${g.entity}.${g.column}` : g.entity);

/** Turns a Creatio failure during a check into the diagnosis the troubleshooting page lists. */
function diagnose(err: unknown, stage: 'instance' | 'token' | 'odata', what: string): CheckFailure {
  if (!(err instanceof CreatioError)) throw err;
  switch (err.kind) {
    case 'bad_credentials':
      return new CheckFailure(
        'invalid_client_credentials',
        `${err.message}. The client id or client secret is wrong, expired, or the application is inactive.`,
        FIX.secret,
        'clientSecret',
      );
    case 'grant_type':
      return new CheckFailure('grant_type_not_client_credentials', err.message, FIX.grant, 'clientId');
    case 'unreachable':
      return stage === 'token'
        ? new CheckFailure(
            'identity_service_unreachable',
            err.message,
            `Check that the Identity Service address is right and reachable from the bridge. ${FIX.identity}`,
            'identityServiceUrl',
          )
        : new CheckFailure(
            'creatio_unreachable',
            err.message,
            'Check the Instance URL for typos and that the bridge can reach it (DNS, firewall, VPN).',
            'instanceUrl',
          );
    case 'address_refused':
      return new CheckFailure(
        stage === 'token' ? 'identity_service_url_address_refused' : 'instance_url_address_refused',
        err.message,
        'Use the public address of the service; private and internal addresses are refused.',
        stage === 'token' ? 'identityServiceUrl' : 'instanceUrl',
      );
    case 'unexpected_response':
      return stage === 'token'
        ? new CheckFailure(
            'identity_service_not_found',
            `The token endpoint did not answer as a Creatio Identity Service: ${err.message}`,
            FIX.identity,
            'identityServiceUrl',
          )
        : new CheckFailure(
            'not_creatio_instance',
            `The Instance URL does not answer like a Creatio instance: ${err.message}`,
            'Use the address you open Creatio with, for example https://yourcompany.creatio.com',
            'instanceUrl',
          );
    case 'schema':
      return new CheckFailure(
        'creatio_schema_missing',
        `${what} failed: ${err.message}`,
        'Install or enable the Service module (Case and its activities) in Creatio, and check that the OAuth application’s user may see these objects over OData.',
      );
    case 'forbidden':
      return stage === 'odata'
        ? new CheckFailure('odata_access_denied', `Creatio refused ${what}: ${err.message}`, FIX.odata)
        : new CheckFailure('case_permission_denied', err.message, FIX.caseRights);
    case 'unauthorized':
      return new CheckFailure(
        'token_rejected',
        `Creatio issued a token but rejected it: ${err.message}`,
        `The Identity Service and the instance do not belong together. ${FIX.identity}`,
        'identityServiceUrl',
      );
    case 'rate_limited':
    case 'transient':
      return new CheckFailure('creatio_unavailable', err.message, FIX.retry);
    default:
      return new CheckFailure('creatio_request_failed', `${what} failed: ${err.message}`, FIX.retry);
  }
}

/**
 * Test & Save: every live check the troubleshooting page needs, in dependency order. Nothing is
 * stored here; the caller stores the returned settings only when `ok` is true.
 */
/**
 * Every check of the settings: Creatio (in order, each failure skipping what depends on it), the
 * OpenCX API key, and with `verifyProcesses` the Creatio business processes calling back.
 */
export async function testSettings(
  input: SettingsInput,
  existing: OrgSettings | undefined,
  opts: TestOptions,
): Promise<TestResult> {
  const result = await testCreatio(input, existing, opts);
  const { settings } = result;
  if (!settings) return result;
  const creatioOk = result.checks.every((c) => c.ok);
  result.checks.push(await checkOpenCXKey(settings, opts.timeoutMs, result.notices));
  if (input.verifyProcesses) {
    if (!opts.processes) {
      result.checks.push(
        ...['agent_reply_process', 'closure_process'].map((name) => ({
          name,
          ok: false,
          code: 'processes_need_saved_settings',
          message:
            'The business processes call the webhook URL that the first save creates: there is none to call yet',
          fix: 'Save once without verifyProcesses, set the webhook URL in both Creatio processes, then Test & Save with verifyProcesses.',
        })),
      );
    } else if (!creatioOk) {
      result.checks.push(
        { name: 'agent_reply_process', ok: false, skipped: true },
        { name: 'closure_process', ok: false, skipped: true },
      );
    } else {
      const client = creatioClientFor(settings, { timeoutMs: opts.timeoutMs });
      result.checks.push(...(await probeProcesses(client, settings, opts.processes)));
    }
  }
  result.ok = result.checks.every((c) => c.ok);
  return result;
}

/** Where OpenCX keeps API keys (https://docs.open.cx/api-reference/authentication). */
const OPENCX_KEY_FIX = {
  create: 'Create an API key in OpenCX (Settings → Access → Create API Key) and paste it here.',
  access:
    'In OpenCX (Settings → Access), give the key Full access, or Custom scopes with chat-sessions:read and chat-sessions:write (or create such a key), and paste it here.',
};

/**
 * The OpenCX API key against OpenCX (agent replies and closure need it): a read (the key is
 * taken), then a write that changes nothing (the key may write chat sessions: a read-only key
 * would pass the read and have every reply refused). A write answer that cannot tell (5xx, a
 * timeout) is a notice, not a failure. No key: said, not failed.
 */
async function checkOpenCXKey(settings: OrgSettings, timeoutMs: number, notices: Notice[]): Promise<Check> {
  const { apiBaseUrl, apiKey } = settings.opencx;
  if (!apiKey) {
    return {
      name: 'opencx_api_key',
      ok: true,
      skipped: true,
      message: 'no OpenCX API key: agent replies and closures cannot reach OpenCX until one is set',
    };
  }
  const client = new OpenCXClient(apiBaseUrl, apiKey, timeoutMs);
  try {
    await client.checkAccess();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const rejected = err instanceof OpenCXError && err.kind === 'unauthorized';
    return {
      name: 'opencx_api_key',
      ok: false,
      ...(rejected
        ? {
            code: 'opencx_api_key_rejected',
            field: 'opencx.apiKey',
            message: `OpenCX refused the API key: ${message}`,
            fix: err.status === 403 ? OPENCX_KEY_FIX.access : OPENCX_KEY_FIX.create,
          }
        : {
            code: 'opencx_unreachable',
            field: 'opencx.apiBaseUrl',
            message: `OpenCX could not be asked: ${message}`,
            fix: 'Check opencx.apiBaseUrl (default https://api.open.cx) and try again.',
          }),
    };
  }
  const write = await client.probeWriteAccess();
  if (write.verdict === 'refused') {
    return {
      name: 'opencx_api_key',
      ok: false,
      code: 'opencx_api_key_read_only',
      field: 'opencx.apiKey',
      message: `The OpenCX API key may read chat sessions but not write them (${write.answer}): agent replies and closures would be refused`,
      fix: OPENCX_KEY_FIX.access,
    };
  }
  if (write.verdict === 'unknown') {
    notices.push({
      code: 'opencx_write_access_not_checked',
      field: 'opencx.apiKey',
      message: `Could not check that the OpenCX API key may write chat sessions (${write.answer}); agent replies and closures need it. Run Test & Save again later to check.`,
    });
    return { name: 'opencx_api_key', ok: true, message: 'reads chat sessions; write access not checked' };
  }
  return { name: 'opencx_api_key', ok: true, message: 'reads and writes chat sessions' };
}

async function testCreatio(
  input: SettingsInput,
  existing: OrgSettings | undefined,
  opts: TestOptions,
): Promise<TestResult> {
  const notices: Notice[] = [];
  const checks: Check[] = [];
  const pass = (name: string, message?: string) =>
    checks.push({ name, ok: true, ...(message && { message }) });
  const fail = (name: string, f: CheckFailure) =>
    checks.push({
      name,
      ok: false,
      code: f.code,
      message: f.message,
      fix: f.fix,
      ...(f.field && { field: f.field }),
    });
  const skip = (...names: string[]) =>
    names.forEach((name) => checks.push({ name, ok: false, skipped: true }));
  const done = (settings?: OrgSettings): TestResult => ({
    ok: checks.every((c) => c.ok),
    checks,
    notices,
    ...(settings && { settings }),
  });

  // 1. The URLs.
  let instanceUrl: string;
  let explicitIdentity: string | undefined;
  try {
    instanceUrl = normalizeBaseUrl(input.instanceUrl, 'instanceUrl', notices);
    explicitIdentity = input.identityServiceUrl
      ? normalizeBaseUrl(input.identityServiceUrl, 'identityServiceUrl', notices)
      : undefined;
    pass('instance_url');
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    fail('instance_url', new CheckFailure(err.code, err.message, err.extra.fix ?? '', err.extra.field));
    skip('instance_reachable', 'oauth_token', 'odata_access', 'case_metadata', 'lookups', 'case_permissions');
    return done();
  }
  const identityServiceUrl = identityServiceUrlFor(instanceUrl, explicitIdentity);
  if (!explicitIdentity && identityServiceUrl !== instanceUrl) {
    notices.push({
      code: 'identity_service_url_derived',
      field: 'identityServiceUrl',
      message: `Using the Creatio cloud Identity Service ${identityServiceUrl}`,
    });
  }

  const internalTypes = input.agentReplyFilter.activityTypes.filter((t) => t !== 'Email');
  if (internalTypes.length > 0) {
    notices.push({
      code: 'agent_reply_filter_includes_internal_types',
      field: 'agentReplyFilter.activityTypes',
      message: `${internalTypes.map((t) => `"${t}"`).join(', ')} activities on a case will be sent to the customer as agent replies (by default only outgoing Emails are); remove them if agents use them for internal notes`,
    });
  }

  // A stored secret is only ever sent to the host it was given for: changing where it goes needs it again.
  if (existing && !input.clientSecret) {
    const moved =
      existing.instanceUrl !== instanceUrl
        ? 'instanceUrl'
        : identityServiceUrlFor(existing.instanceUrl, existing.identityServiceUrl) !== identityServiceUrl
          ? 'identityServiceUrl'
          : undefined;
    if (moved) {
      throw new ApiError(400, 'missing_field', `clientSecret is required when ${moved} changes`, {
        field: 'clientSecret',
        fix: `Send the client secret of the OAuth application at the new ${moved}: the stored one is never sent to another host.`,
      });
    }
  }
  const newOpencxBase = input.opencx?.apiBaseUrl?.replace(/\/+$/, '');
  if (
    existing?.opencx.apiKey &&
    !input.opencx?.apiKey &&
    newOpencxBase &&
    newOpencxBase !== existing.opencx.apiBaseUrl
  ) {
    throw new ApiError(400, 'missing_field', 'opencx.apiKey is required when opencx.apiBaseUrl changes', {
      field: 'opencx.apiKey',
      fix: 'Send the OpenCX API key for the new opencx.apiBaseUrl: the stored one is never sent to another host.',
    });
  }

  if (input.afterClose === 'reopen' && !input.reopenStatusId) {
    throw new ApiError(400, 'missing_field', 'reopenStatusId is required when afterClose is "reopen"', {
      field: 'reopenStatusId',
      fix: 'Give the Id of the Case status a reopened case gets (e.g. "In progress"), or set afterClose to "log".',
    });
  }
  const clientSecret = input.clientSecret ?? existing?.clientSecret;
  if (!clientSecret) {
    throw new ApiError(400, 'missing_field', 'clientSecret is required', { field: 'clientSecret' });
  }
  const settings: OrgSettings = {
    instanceUrl,
    identityServiceUrl: explicitIdentity,
    clientId: input.clientId,
    clientSecret,
    defaultCaseOwnerId: input.defaultCaseOwnerId,
    defaultCaseGroupId: input.defaultCaseGroupId,
    resolvedStatusId: input.resolvedStatusId,
    afterClose: input.afterClose,
    reopenStatusId: input.reopenStatusId,
    createCaseOnlyOnHandoff: input.createCaseOnlyOnHandoff,
    agentReplyFilter: input.agentReplyFilter,
    closureStatusNames: input.closureStatusNames,
    aiFields: input.aiFields,
    contactMatching: input.contactMatching,
    verifiedChannels: input.verifiedChannels,
    opencx: {
      apiBaseUrl: (
        input.opencx?.apiBaseUrl ??
        existing?.opencx.apiBaseUrl ??
        DEFAULT_OPENCX_API_BASE_URL
      ).replace(/\/+$/, ''),
      apiKey: input.opencx?.apiKey ?? existing?.opencx.apiKey,
      webhookSecret: input.opencx?.webhookSecret ?? existing?.opencx.webhookSecret,
      ...opencxOrganizationField(input.opencx?.organizationId, existing?.opencx.organizationId),
    },
  };

  // 2. Is anything there, and is it Creatio (on .NET Framework at /0/odata, on .NET Core at /odata)?
  try {
    const odataPath = await probeInstance(instanceUrl, opts.timeoutMs);
    settings.odataPath = odataPath;
    if (odataPath !== '/0/odata') {
      notices.push({
        code: 'odata_path_detected',
        field: 'instanceUrl',
        message: `This Creatio serves OData at ${instanceUrl}${odataPath} (Creatio on .NET / .NET Core): the bridge uses that path`,
      });
    }
    pass('instance_reachable', `OData 4 at ${odataPath}`);
  } catch (err) {
    fail('instance_reachable', err instanceof CheckFailure ? err : diagnose(err, 'instance', 'the instance'));
    skip('oauth_token', 'odata_access', 'case_metadata', 'lookups', 'case_permissions');
    return done(settings);
  }

  // 3. The credentials.
  const client = new CreatioClient(
    {
      instanceUrl,
      identityServiceUrl,
      clientId: settings.clientId,
      clientSecret,
      odataPath: settings.odataPath,
    },
    { timeoutMs: opts.timeoutMs },
  );
  try {
    await client.token();
    pass('oauth_token');
  } catch (err) {
    fail('oauth_token', diagnose(err, 'token', 'the token request'));
    skip('odata_access', 'case_metadata', 'lookups', 'case_permissions');
    return done(settings);
  }

  // 4. OData access.
  try {
    await client.list('Case', { select: ['Id'], top: 1 });
    pass('odata_access');
  } catch (err) {
    fail('odata_access', diagnose(err, 'odata', 'reading Case'));
    skip('case_metadata', 'lookups', 'case_permissions');
    return done(settings);
  }

  // 5. The Case and Activity columns the bridge and the AI field mappings need.
  try {
    const meta = await client.metadata();
    // Every entity set and column the bridge uses, read from $metadata once (src/creatio/model.ts).
    const gaps = schemaGaps(meta);
    for (const g of gaps.filter((x) => !x.required)) {
      notices.push({
        code: 'creatio_schema_optional_missing',
        field: 'instanceUrl',
        message: `${describeGap(g)}; the bridge does without it`,
      });
    }
    const missing = gaps.filter((g) => g.required);
    if (missing.length > 0) {
      const [g, ...more] = missing;
      throw new CheckFailure(
        'creatio_schema_missing',
        describeGap(g!) + (more.length > 0 ? `. Also missing: ${more.map(gapName).join(', ')}` : ''),
        g!.closest && g!.column
          ? `Restore the column "${g!.column}" on ${g!.entity} in Creatio (System Designer → Objects), or contact support if your Creatio renamed it to "${g!.closest}".`
          : 'Install or enable the Service module (Case and its activities) in Creatio, and check that the OAuth application’s user may see these objects over OData.',
      );
    }
    const caseType = meta.get('Case')!;
    const unmapped = input.aiFields
      .map((f, i) => ({ f, i }))
      .filter(({ f }) => f.enabled && !caseType.properties.has(f.column));
    if (unmapped.length > 0) {
      const { f, i } = unmapped[0]!;
      const suggestion = closestName(f.column, caseType.properties.keys());
      throw new CheckFailure(
        'ai_field_column_not_found',
        `AI field "${f.title}": Case has no column "${f.column}" (column names are case-sensitive)${suggestion ? `; the closest is "${suggestion}"` : ''}` +
          (unmapped.length > 1
            ? `. Also missing: ${unmapped
                .slice(1)
                .map((m) => `"${m.f.column}"`)
                .join(', ')}`
            : ''),
        suggestion
          ? `Use "${suggestion}" as the column name.`
          : 'Use the exact column name from the Case object in Creatio.',
        `aiFields.${i}.column`,
      );
    }
    // Dropdowns on lookup columns: every value the description lists must exist in the lookup.
    for (const [i, f] of input.aiFields.entries()) {
      const lookupEntity =
        f.enabled && f.type === 'dropdown' ? caseType.properties.get(f.column)?.lookupEntity : undefined;
      const listed = lookupEntity ? listedValues(f.description) : [];
      if (!lookupEntity || listed.length === 0) continue;
      const names = (
        await client.list<Entity & { Name: string }>(lookupEntity, { select: ['Id', 'Name'], top: 500 })
      ).map((r) => r.Name);
      const unknown = listed.filter((v) => !names.some((n) => n.toLowerCase() === v.toLowerCase()));
      if (unknown.length > 0) {
        throw new CheckFailure(
          'ai_field_value_not_found',
          `AI field "${f.title}": ${unknown.map((v) => `"${v}"`).join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not in the ${lookupEntity} lookup (it has ${names.map((n) => `"${n}"`).join(', ')})`,
          `List only values that exist in ${lookupEntity}, in double quotes.`,
          `aiFields.${i}.description`,
        );
      }
    }
    pass('case_metadata');
  } catch (err) {
    fail('case_metadata', err instanceof CheckFailure ? err : diagnose(err, 'odata', 'reading $metadata'));
  }

  // 6. The GUIDs and names that settings refer to.
  try {
    await checkLookups(client, settings);
    pass('lookups');
  } catch (err) {
    fail('lookups', err instanceof CheckFailure ? err : diagnose(err, 'odata', 'reading lookups'));
  }

  // 7. Create, read, update (and clean up) a marked test case.
  if (opts.probeWrites === false) {
    checks.push({ name: 'case_permissions', ok: true, skipped: true, message: 'write probe disabled' });
  } else {
    try {
      const leftover = await probeCasePermissions(client);
      if (leftover) notices.push(leftover);
      pass('case_permissions', 'created, read, updated and removed a test case');
    } catch (err) {
      fail(
        'case_permissions',
        err instanceof CheckFailure ? err : diagnose(err, 'odata', 'the Case permission probe'),
      );
    }
  }
  return done(settings);
}

/**
 * Where the instance answers OData: `/0/odata` first (every cloud site), then `/odata` (Creatio on
 * .NET / .NET Core, reference/creatio-api.md §2.1). Without a token, Creatio asks for credentials.
 */
async function probeInstance(instanceUrl: string, timeoutMs: number): Promise<OdataPath> {
  const first = await probeOdataAt(instanceUrl, '/0/odata', timeoutMs);
  if (first === 'absent') {
    const second = await probeOdataAt(instanceUrl, '/odata', timeoutMs).catch(() => 'absent' as const);
    if (second === 'ok') return '/odata';
    throw new CheckFailure(
      'not_creatio_instance',
      `${new URL(instanceUrl).host} answered 404 at /0/odata and /odata, where Creatio's OData service should be: it is not a Creatio instance`,
      'Use the address you open Creatio with, for example https://yourcompany.creatio.com',
      'instanceUrl',
    );
  }
  return '/0/odata';
}

async function probeOdataAt(
  instanceUrl: string,
  path: OdataPath,
  timeoutMs: number,
): Promise<'ok' | 'absent'> {
  const url = `${instanceUrl}${path}/$metadata`;
  let res: OutboundResponse;
  try {
    res = await outboundRequest(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    if (err instanceof OutboundAddressRefusedError) {
      throw new CheckFailure(
        'instance_url_address_refused',
        err.message,
        'Use the public address of your Creatio instance (https://yourcompany.creatio.com); private and internal addresses are refused.',
        'instanceUrl',
      );
    }
    const e = err as { name?: string; cause?: { code?: string } };
    const why =
      e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? 'connection failed');
    throw new CheckFailure(
      'creatio_unreachable',
      `Cannot reach ${new URL(url).host}: ${why}`,
      'Check the Instance URL for typos and that the bridge can reach it (DNS, firewall, VPN).',
      'instanceUrl',
    );
  }
  res.discard();
  // Creatio asks for credentials (401, or a redirect to its login page for browsers).
  if ([401, 403, 302].includes(res.status)) return 'ok';
  if (res.status === 200 && (res.headers.get('content-type') ?? '').includes('xml')) return 'ok';
  if (res.status === 404) return 'absent';
  if (res.status >= 500) {
    throw new CheckFailure(
      'creatio_unavailable',
      `${new URL(url).host} answered ${res.status}`,
      FIX.retry,
      'instanceUrl',
    );
  }
  throw new CheckFailure(
    'not_creatio_instance',
    `${new URL(url).host} answered ${res.status} where Creatio's OData service should be: it is not a Creatio instance`,
    'Use the address you open Creatio with, for example https://yourcompany.creatio.com',
    'instanceUrl',
  );
}

async function checkLookups(client: CreatioClient, s: OrgSettings): Promise<void> {
  const problems: CheckFailure[] = [];
  const statusWhere = 'the Case statuses lookup';
  /** How each GUID field the list (fields.ts) gives to this check is found in Creatio. */
  const lookups: Record<
    LookupGuidField,
    { code: string; what: string; where: string; find: (id: string) => Promise<Entity | undefined> }
  > = {
    defaultCaseOwnerId: {
      code: 'default_case_owner_not_found',
      what: 'Contact',
      where: 'the Contacts section (the owner is a Contact)',
      find: (id) => client.getContact(id),
    },
    defaultCaseGroupId: {
      code: 'default_case_group_not_found',
      what: 'Group',
      where: 'Organizational roles / groups (SysAdminUnit)',
      find: (id) => client.getSysAdminUnit(id),
    },
    resolvedStatusId: {
      code: 'resolved_status_not_found',
      what: 'Case status',
      where: statusWhere,
      find: (id) => client.getCaseStatus(id),
    },
    reopenStatusId: {
      code: 'reopen_status_not_found',
      what: 'Case status',
      where: statusWhere,
      find: (id) => client.getCaseStatus(id),
    },
  };
  const guids = LOOKUP_GUID_FIELDS.map((field) => ({ field, ...lookups[field] }));
  for (const g of guids) {
    const id = s[g.field];
    if (id && !(await g.find(id))) {
      problems.push(
        new CheckFailure(
          g.code,
          `${g.what} ${id} does not exist in Creatio (or the OAuth user cannot read it)`,
          `Copy the Id of an existing record from ${g.where}.`,
          g.field,
        ),
      );
    }
  }

  const statuses = await client.listCaseStatuses();
  const names = statuses.map((st) => st.Name);
  s.closureStatusNames.forEach((n, i) => {
    if (!names.includes(n)) {
      const near = closestName(n, names);
      problems.push(
        new CheckFailure(
          'closure_status_not_found',
          `Closure status "${n}" is not a Case status name (names are case-sensitive)${near ? `; Creatio has "${near}"` : ''}`,
          near ? `Use "${near}" exactly.` : `Use one of: ${names.join(', ')}.`,
          `closureStatusNames.${i}`,
        ),
      );
    }
  });

  for (const [kind, set, list] of [
    ['activity_type', 'ActivityType', s.agentReplyFilter.activityTypes],
    ['activity_category', 'ActivityCategory', s.agentReplyFilter.activityCategories],
  ] as const) {
    if (list.length === 0) continue;
    const known = (
      await client.list<Entity & { Name: string }>(set, { select: ['Id', 'Name'], top: 500 })
    ).map((r) => r.Name);
    list.forEach((n, i) => {
      if (!known.includes(n)) {
        const near = closestName(n, known);
        problems.push(
          new CheckFailure(
            `agent_reply_${kind}_not_found`,
            `Agent-reply filter: "${n}" is not an ${set} name${near ? `; Creatio has "${near}"` : ''}`,
            `Use the exact names of the ${set} lookup${near ? `, e.g. "${near}"` : ''}.`,
            `agentReplyFilter.${kind === 'activity_type' ? 'activityTypes' : 'activityCategories'}.${i}`,
          ),
        );
      }
    });
  }
  if (problems.length > 0) {
    const [first, ...rest] = problems;
    throw new CheckFailure(
      first!.code,
      first!.message +
        (rest.length ? ` (and ${rest.length} more: ${rest.map((p) => p.code).join(', ')})` : ''),
      first!.fix,
      first!.field,
    );
  }
}

export const PROBE_SUBJECT = '[OpenCX bridge] connection test (safe to delete)';

/**
 * The only way to know the OAuth user may create and update cases is to do it: a marked case is
 * created, read back, updated, given an activity, and deleted again.
 */
async function probeCasePermissions(client: CreatioClient): Promise<Notice | undefined> {
  const caseId = randomUUID();
  const activityId = randomUUID();
  const step = async (code: string, what: string, fn: () => Promise<unknown>) => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof CreatioError && (err.kind === 'forbidden' || err.kind === 'not_found')) {
        throw new CheckFailure(
          code,
          `The OAuth application's user may not ${what}: ${err.message}`,
          FIX.caseRights,
        );
      }
      throw err;
    }
  };
  await step('case_create_forbidden', 'create Case records', () =>
    client.create('Case', {
      Id: caseId,
      Subject: PROBE_SUBJECT,
      Symptoms: 'Created by Test & Save to check permissions.',
    }),
  );
  const readBack = await client.getCase(caseId, ['Id']);
  if (!readBack) {
    throw new CheckFailure(
      'case_read_forbidden',
      "The OAuth application's user may create cases but cannot read them back",
      FIX.caseRights,
    );
  }
  await step('case_update_forbidden', 'update Case records', () =>
    client.update('Case', caseId, { Subject: `${PROBE_SUBJECT} ✓` }),
  );
  await step('activity_create_forbidden', 'create Activity records', () =>
    client.create('Activity', { Id: activityId, Title: PROBE_SUBJECT, CaseId: caseId }),
  );
  try {
    await client.remove('Activity', activityId);
    await client.remove('Case', caseId);
    return undefined;
  } catch {
    return {
      code: 'probe_case_left',
      message: `Could not delete the test case ${caseId} (no delete permission); delete it in Creatio by hand`,
    };
  }
}
