import { Router } from 'express';
import { z } from 'zod';
import { ApiError } from '../errors';
import { actorOf, type AdminAccess } from './access';
import type { AppDeps } from './deps';
import { parseBody } from './errors';
import { orgIdParam, orgNotFound } from './params';

export const newTokenSchema = z.strictObject({
  label: z.string().trim().max(100).optional(),
});

/**
 * An organization's own admin tokens (the operator's to manage; `scoped` in access.ts keeps
 * organization tokens out) and its audit log (the operator's, or the organization's token):
 * POST/GET /v1/orgs/:orgId/admin-tokens, DELETE …/admin-tokens/:tokenId, GET /v1/orgs/:orgId/audit.
 */
export function adminTokensRouter(deps: AppDeps, access: AdminAccess): Router {
  const r = Router();

  r.post('/v1/orgs/:orgId/admin-tokens', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const { label = '' } = parseBody(newTokenSchema, req.body ?? {});
    if (!(await deps.store.settingsVersion(orgId))) throw orgNotFound(orgId);
    const t = await deps.store.createOrgToken(orgId, label);
    await deps.store.audit(orgId, actorOf(req), 'admin_token.created', { tokenId: t.id, label });
    res.status(201).json({
      id: t.id,
      label,
      createdAt: t.createdAt,
      token: t.token,
      note: 'Shown once: only its hash is kept. It opens this organization only.',
    });
  });

  r.get('/v1/orgs/:orgId/admin-tokens', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    res.json({ orgId, tokens: await deps.store.orgTokens(orgId) });
  });

  r.delete('/v1/orgs/:orgId/admin-tokens/:tokenId', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const tokenId = String(req.params.tokenId);
    if (!(await deps.store.revokeOrgToken(orgId, tokenId)))
      throw new ApiError(404, 'token_not_found', `Organization ${orgId} has no token ${tokenId}`);
    access.forget();
    await deps.store.audit(orgId, actorOf(req), 'admin_token.revoked', { tokenId });
    res.status(204).end();
  });

  r.get('/v1/orgs/:orgId/audit', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const raw = req.query.limit;
    const limit = typeof raw === 'string' && /^\d{1,4}$/.test(raw) ? Number(raw) : 200;
    res.json({ orgId, entries: await deps.store.auditLog(orgId, limit) });
  });

  return r;
}
