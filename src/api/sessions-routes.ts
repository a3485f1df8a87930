import { Router } from 'express';
import { actorOf } from './access';
import { z } from 'zod';
import { readSession } from '../diagnose/session';
import { commandParkedStep } from '../workflow-client/client';
import type { AppDeps } from './deps';
import { parseBody } from './errors';
import { conversationsDisabled, sessionParams } from './params';

export const skipBodySchema = z.strictObject({
  reason: z.string().trim().min(1, 'is required').max(500),
});

/**
 * GET /v1/orgs/:orgId/sessions/:sessionId: the conversation as its workflow sees it.
 * POST …/resume: try the parked step now. POST …/skip `{ reason }`: give it up and go on.
 */
export function sessionsRouter(deps: AppDeps): Router {
  const r = Router();
  const conversations = () => {
    if (!deps.conversations) throw conversationsDisabled();
    return deps.conversations;
  };
  r.get('/v1/orgs/:orgId/sessions/:sessionId', async (req, res) => {
    const { orgId, sessionId } = sessionParams(req.params);
    res.json(await readSession(conversations(), orgId, sessionId));
  });
  r.post('/v1/orgs/:orgId/sessions/:sessionId/resume', async (req, res) => {
    const { orgId, sessionId } = sessionParams(req.params);
    const { step } = await commandParkedStep(conversations(), orgId, sessionId, { kind: 'resume' });
    await deps.store.audit(orgId, actorOf(req), 'session.resumed', { sessionId, step });
    res.json({ status: 'resumed', step });
  });
  r.post('/v1/orgs/:orgId/sessions/:sessionId/skip', async (req, res) => {
    const { orgId, sessionId } = sessionParams(req.params);
    const { reason } = parseBody(skipBodySchema, req.body);
    const { step } = await commandParkedStep(conversations(), orgId, sessionId, { kind: 'skip', reason });
    await deps.store.audit(orgId, actorOf(req), 'session.step_skipped', { sessionId, step, reason });
    res.json({ status: 'skipped', step, reason });
  });
  return r;
}
