import { Router } from 'express';
import { WorkflowNotFoundError } from '@temporalio/client';
import { ApiError } from '../errors';
import { SESSION_ID_RE } from '../opencx/events';
import { conversationWorkflowId, stateQuery } from '../workflows/contract';
import type { AppDeps } from './app';
import { orgIdParam } from './settings-routes';

/** The conversation as its workflow sees it, with the steps Temporal is still retrying. */
export async function readSession(deps: AppDeps, orgId: string, sessionId: string) {
  const conv = deps.conversations;
  if (!conv)
    throw new ApiError(503, 'temporal_unavailable', 'Conversations are not enabled on this instance');
  const workflowId = conversationWorkflowId(orgId, sessionId);
  const handle = conv.client.workflow.getHandle(workflowId);
  try {
    const [state, described] = await Promise.all([handle.query(stateQuery), handle.describe()]);
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

/** GET /v1/orgs/:orgId/sessions/:sessionId: the conversation as its workflow sees it. */
export function sessionsRouter(deps: AppDeps): Router {
  const r = Router();
  r.get('/v1/orgs/:orgId/sessions/:sessionId', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const sessionId = req.params.sessionId;
    if (!SESSION_ID_RE.test(sessionId)) {
      throw new ApiError(
        400,
        'invalid_session_id',
        'sessionId must be 1-128 letters, digits, "_", ".", ":" or "-"',
        { field: 'sessionId' },
      );
    }
    res.json(await readSession(deps, orgId, sessionId));
  });
  return r;
}
