import { Router } from 'express';
import { actorOf } from './access';
import { ApiError } from '../errors';
import { OpencxOrganizationTakenError, type StoredOrg } from '../store';
import { publicView, settingsInputSchema, type SettingsInput } from '../settings/fields';
import { opencxMapping, opencxOrganizationField } from '../settings/schema';
import { testSettings, type Check, type TestOptions, type TestResult } from '../settings/test-and-save';
import type { AppDeps } from './deps';
import { parseBody } from './errors';
import { orgIdParam, orgNotFound } from './params';

function firstFailure(result: TestResult): ApiError {
  const failed = result.checks.find((c) => !c.ok && !c.skipped)!;
  return new ApiError(422, failed.code ?? 'check_failed', failed.message ?? `${failed.name} failed`, {
    ...(failed.field && { field: failed.field }),
    ...(failed.fix && { fix: failed.fix }),
  });
}

function opencxOrganizationTaken(opencxOrgId: string, holder: string | undefined): ApiError {
  return new ApiError(
    409,
    'opencx_organization_taken',
    `OpenCX organization ${opencxOrgId} is already connected to ${holder ? `bridge organization ${holder}` : 'another bridge organization'}: its events can go to one organization only`,
    {
      field: 'opencx.organizationId',
      fix: `Check the OpenCX organization id; to move it here, first give ${holder ?? 'the other organization'} another opencx.organizationId.`,
    },
  );
}

/** In production the OpenCX API key goes over https only: an http apiBaseUrl is refused. */
function opencxHttpsOnly(input: SettingsInput): void {
  const base = input.opencx?.apiBaseUrl;
  if (base !== undefined && !base.toLowerCase().startsWith('https://')) {
    throw new ApiError(400, 'invalid_field', 'opencx.apiBaseUrl must use https://', {
      field: 'opencx.apiBaseUrl',
      fix: 'Use the https:// address of the OpenCX API (default https://api.open.cx).',
    });
  }
}

/** Settings → Integrations → Creatio: Test & Save, read, test only, rotate the webhook token. */
export function settingsRouter(deps: AppDeps): Router {
  const r = Router();
  const webhookUrl = (token: string) => `${deps.config.publicBaseUrl}/webhooks/creatio/${token}`;
  const { processes: probeTiming, ...given } = deps.testOptions ?? {};
  const testOpts = { timeoutMs: deps.config.creatioRequestTimeoutMs, ...given };
  /** A saved organization's processes can be probed (they call its webhook URL). */
  const withProbes = (orgId: string, saved: boolean): TestOptions =>
    saved ? { ...testOpts, processes: { orgId, registry: deps.store, ...probeTiming } } : testOpts;

  /**
   * The OpenCX organization the settings would receive events of: 409 before any live check when
   * another organization receives them already. Its check says which goes where.
   */
  const opencxOrganization = async (
    orgId: string,
    input: SettingsInput,
    existing: StoredOrg | undefined,
  ): Promise<Check> => {
    const opencx = opencxOrganizationField(
      input.opencx?.organizationId,
      existing?.settings.opencx.organizationId,
    );
    const opencxOrgId = opencx.organizationId ?? orgId;
    const holder = await deps.store.opencxOrganizationHolder(opencxOrgId);
    if (holder && holder !== orgId) throw opencxOrganizationTaken(opencxOrgId, holder);
    return { name: 'opencx_organization', ok: true, message: opencxMapping(orgId, { opencx }) };
  };

  r.put('/v1/orgs/:orgId/integrations/creatio', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const input = parseBody(settingsInputSchema, req.body);
    if (deps.config.env === 'production') opencxHttpsOnly(input);
    const existing = await deps.store.getOrg(orgId);
    const mapping = await opencxOrganization(orgId, input, existing);
    const result = await testSettings(input, existing?.settings, withProbes(orgId, !!existing));
    result.checks.push(mapping);
    if (!result.ok || !result.settings) {
      req.log.info({ orgId, checks: result.checks }, 'Test & Save failed; nothing stored');
      res
        .status(422)
        .json({ ...firstFailure(result).toBody(), checks: result.checks, notices: result.notices });
      return;
    }
    let saved: StoredOrg;
    try {
      saved = await deps.store.saveOrg(orgId, result.settings);
    } catch (err) {
      if (err instanceof OpencxOrganizationTakenError)
        throw opencxOrganizationTaken(err.opencxOrgId, err.holder);
      throw err;
    }
    req.log.info({ orgId, created: !existing }, 'Creatio integration saved');
    // The fields sent, never their values (some are secrets).
    await deps.store.audit(orgId, actorOf(req), existing ? 'settings.updated' : 'settings.created', {
      fields: Object.keys(req.body as Record<string, unknown>).sort(),
      ...(input.opencx && { opencxFields: Object.keys(input.opencx).sort() }),
    });
    const rotated =
      saved.previousWebhookSecret &&
      existing?.previousWebhookSecret?.until !== saved.previousWebhookSecret.until
        ? [
            {
              code: 'opencx_webhook_secret_overlap',
              field: 'opencx.webhookSecret',
              message: `The previous OpenCX webhook secret is still accepted until ${saved.previousWebhookSecret.until}: switch OpenCX to the new one before then`,
            },
          ]
        : [];
    res.status(existing ? 200 : 201).json({
      ...publicView(orgId, saved.settings, webhookUrl(saved.webhookToken)),
      checks: result.checks,
      notices: [...result.notices, ...rotated],
    });
  });

  r.get('/v1/orgs/:orgId/integrations/creatio', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const org = await deps.store.getOrg(orgId);
    if (!org) throw orgNotFound(orgId);
    res.json({ ...publicView(orgId, org.settings, webhookUrl(org.webhookToken)), notices: org.notices });
  });

  r.post('/v1/orgs/:orgId/integrations/creatio/test', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const input = parseBody(settingsInputSchema, req.body);
    if (deps.config.env === 'production') opencxHttpsOnly(input);
    const existing = await deps.store.getOrg(orgId);
    const mapping = await opencxOrganization(orgId, input, existing);
    const { ok, checks, notices } = await testSettings(
      input,
      existing?.settings,
      withProbes(orgId, !!existing),
    );
    res.json({ ok, checks: [...checks, mapping], notices });
  });

  r.post('/v1/orgs/:orgId/integrations/creatio/webhook-token', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const token = await deps.store.rotateWebhookToken(orgId);
    if (!token) throw orgNotFound(orgId);
    req.log.info({ orgId }, 'Creatio webhook token rotated');
    const overlapMs = deps.store.rotation.overlapMs;
    await deps.store.audit(orgId, actorOf(req), 'webhook_token.rotated', {
      overlapSeconds: overlapMs / 1000,
    });
    res.json({
      webhookUrl: webhookUrl(token),
      // The old URL keeps working this long, so the processes can be switched without a gap.
      previousValidUntil: new Date(Date.now() + overlapMs).toISOString(),
    });
  });

  return r;
}
