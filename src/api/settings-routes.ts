import { Router } from 'express';
import { ApiError } from '../errors';
import { publicView, settingsInputSchema } from '../settings/schema';
import { testSettings, type TestOptions, type TestResult } from '../settings/test-and-save';
import type { AppDeps } from './app';
import { parseBody } from './errors';

const ORG_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function orgIdParam(value: unknown): string {
  if (typeof value !== 'string' || !ORG_ID_RE.test(value)) {
    throw new ApiError(400, 'invalid_org_id', 'orgId must be 1-64 letters, digits, "_", "-" or "."', {
      field: 'orgId',
    });
  }
  return value;
}

function firstFailure(result: TestResult): ApiError {
  const failed = result.checks.find((c) => !c.ok && !c.skipped)!;
  return new ApiError(422, failed.code ?? 'check_failed', failed.message ?? `${failed.name} failed`, {
    ...(failed.field && { field: failed.field }),
    ...(failed.fix && { fix: failed.fix }),
  });
}

/** Settings → Integrations → Creatio: Test & Save, read, test only, rotate the webhook token. */
export function settingsRouter(deps: AppDeps): Router {
  const r = Router();
  const webhookUrl = (token: string) => `${deps.config.publicBaseUrl}/webhooks/creatio/${token}`;
  const testOpts = { timeoutMs: deps.config.creatioRequestTimeoutMs, ...deps.testOptions };
  /** A saved organization's processes can be probed (they call its webhook URL). */
  const withProbes = (orgId: string, saved: boolean): TestOptions =>
    saved
      ? { ...testOpts, processes: { orgId, registry: deps.store, ...deps.testOptions?.processes } }
      : testOpts;

  r.put('/v1/orgs/:orgId/integrations/creatio', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const input = parseBody(settingsInputSchema, req.body);
    const existing = await deps.store.getOrg(orgId);
    const result = await testSettings(input, existing?.settings, withProbes(orgId, !!existing));
    if (!result.ok || !result.settings) {
      req.log.info({ orgId, checks: result.checks }, 'Test & Save failed; nothing stored');
      res
        .status(422)
        .json({ ...firstFailure(result).toBody(), checks: result.checks, notices: result.notices });
      return;
    }
    const saved = await deps.store.saveOrg(orgId, result.settings);
    req.log.info({ orgId, created: !existing }, 'Creatio integration saved');
    res.status(existing ? 200 : 201).json({
      ...publicView(orgId, saved.settings, webhookUrl(saved.webhookToken)),
      checks: result.checks,
      notices: result.notices,
    });
  });

  r.get('/v1/orgs/:orgId/integrations/creatio', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const org = await deps.store.getOrg(orgId);
    if (!org) throw new ApiError(404, 'org_not_found', `Organization ${orgId} has no Creatio integration`);
    res.json({ ...publicView(orgId, org.settings, webhookUrl(org.webhookToken)), notices: org.notices });
  });

  r.post('/v1/orgs/:orgId/integrations/creatio/test', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const input = parseBody(settingsInputSchema, req.body);
    const existing = await deps.store.getOrg(orgId);
    const { ok, checks, notices } = await testSettings(
      input,
      existing?.settings,
      withProbes(orgId, !!existing),
    );
    res.json({ ok, checks, notices });
  });

  r.post('/v1/orgs/:orgId/integrations/creatio/webhook-token', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const token = await deps.store.rotateWebhookToken(orgId);
    if (!token) throw new ApiError(404, 'org_not_found', `Organization ${orgId} has no Creatio integration`);
    req.log.info({ orgId }, 'Creatio webhook token rotated');
    res.json({ webhookUrl: webhookUrl(token) });
  });

  return r;
}
