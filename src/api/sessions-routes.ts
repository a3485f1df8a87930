import { Router } from 'express';
import { actorOf } from './access';
import { z } from 'zod';
import { commandParkedStep, withTemporal, WorkflowNotFoundError } from '../workflow-client/client';
import { ApiError } from '../errors';
import { conversationWorkflowId, stateQuery } from '../workflows/contract';
import type { AppDeps } from './deps';
import { parseBody } from './errors';
import { conversationsDisabled, sessionParams } from './params';

/** The conversation as its workflow sees it, with the steps Temporal is still retrying. */
export async function readSession(deps: AppDeps, orgId: string, sessionId: string) {
  const conv = deps.conversations;
  if (!conv) throw conversationsDisabled();
  const workflowId = conversationWorkflowId(orgId, sessionId);
  const handle = conv.client.workflow.getHandle(workflowId);
  try {
    const [state, described] = await withTemporal(
      conv,
      () => Promise.all([handle.query(stateQuery), handle.describe()]),
      (err) => err instanceof WorkflowNotFoundError,
    );
    // A step that Temporal is still retrying shows here with its last failure.
    const pending = (described.raw.pendingActivities ?? []).map((a) => ({
      activity: a.activityType?.name ?? null,
      attempt: a.attempt ?? null,
      lastFailure: a.lastFailure?.message ?? null,
      lastFailureType: a.lastFailure?.applicationFailureInfo?.type ?? null,
    }));
    return {
      ...state,
      workflow: {
        id: workflowId,
        runId: described.runId,
        status: described.status.name,
        taskQueue: described.taskQueue,
      },
      retrying: pending.filter((p) => p.lastFailure),
    };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      throw new ApiError(404, 'session_not_found', `No conversation ${sessionId} for organization ${orgId}`);
    }
    throw err;
  }
}

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
    res.json(await readSession(deps, orgId, sessionId));
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
