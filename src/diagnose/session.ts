import { ApiError } from '../errors';
import { withTemporal, WorkflowNotFoundError, type Conversations } from '../workflow-client/client';
import { conversationWorkflowId, stateQuery } from '../workflows/contract';

/**
 * The conversation as its workflow sees it (its state query and Temporal's describe), with the
 * steps Temporal is still retrying: GET …/sessions/:sessionId answers it, diagnose reads it.
 * Throws 404 session_not_found when the bridge has no such conversation.
 */
export async function readSession(conv: Conversations, orgId: string, sessionId: string) {
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
