import { Router } from 'express';
import { ConversationDiagnoser } from '../diagnose/conversation';
import { ApiError } from '../errors';
import { GUID_RE } from '../settings/schema';
import { SESSION_ID_RE } from '../opencx/events';
import type { AppDeps } from './deps';
import { REPLAY_FIX } from './opencx-ingress';
import { conversationsDisabled, orgIdParam, orgNotFound, SESSION_ID_MESSAGE } from './params';

function query(q: Record<string, unknown>): { sessionId?: string; caseId?: string } {
  const sessionId = typeof q.sessionId === 'string' ? q.sessionId : undefined;
  const caseId = typeof q.caseId === 'string' ? q.caseId.toLowerCase() : undefined;
  if (!sessionId && !caseId) {
    throw new ApiError(400, 'missing_field', 'Give sessionId or caseId', { field: 'sessionId' });
  }
  if (caseId && !GUID_RE.test(caseId)) {
    throw new ApiError(400, 'invalid_field', 'caseId must be a GUID', { field: 'caseId' });
  }
  if (sessionId && !SESSION_ID_RE.test(sessionId)) {
    throw new ApiError(400, 'invalid_field', SESSION_ID_MESSAGE, { field: 'sessionId' });
  }
  return { ...(sessionId && { sessionId }), ...(caseId && { caseId }) };
}

/**
 * GET /v1/orgs/:orgId/diagnose?sessionId=… or ?caseId=…: the troubleshooting page walked for one
 * conversation (src/diagnose/conversation.ts gathers what it reads), from what the bridge recorded
 * and what Creatio answers now. An empty `findings` means nothing is wrong.
 */
export function diagnoseRouter(deps: AppDeps): Router {
  const r = Router();
  const diagnoser = new ConversationDiagnoser({
    store: deps.store,
    conversations: () => {
      if (!deps.conversations) throw conversationsDisabled();
      return deps.conversations;
    },
    creatioRequestTimeoutMs: deps.config.creatioRequestTimeoutMs,
    publicBaseUrl: deps.config.publicBaseUrl,
    replayFix: REPLAY_FIX,
  });
  r.get('/v1/orgs/:orgId/diagnose', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const diagnosis = await diagnoser.diagnose(orgId, query(req.query));
    if (!diagnosis) throw orgNotFound(orgId);
    res.json(diagnosis);
  });
  return r;
}
