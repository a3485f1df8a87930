import { Router } from 'express';
import { creatioClientFor, type CreatioClient } from '../creatio/client';
import { checkCreatio } from '../diagnose/live';
import type { StoredOrg } from '../store';
import { findingsOf, refusedEventFindings, type Finding, type Session } from '../diagnose/findings';
import { ApiError } from '../errors';
import { GUID_RE, opencxMapping } from '../settings/schema';
import { SESSION_ID_RE } from '../opencx/events';
import { conversationWorkflowId } from '../workflows/contract';
import type { AppDeps } from './deps';
import { REPLAY_FIX } from './opencx-ingress';
import { readSession } from './sessions-routes';
import { orgIdParam, orgNotFound, SESSION_ID_MESSAGE } from './params';

export { SCENARIOS } from '../diagnose/findings';

const MAX_CACHED_CLIENTS = 100;

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
 * conversation (src/diagnose/findings.ts), from what the bridge recorded and what Creatio answers
 * now. An empty `findings` means nothing is wrong.
 */
export function diagnoseRouter(deps: AppDeps): Router {
  const r = Router();
  /**
   * One client per organization while its settings stay the same: it keeps its token and the
   * $metadata the reply filter needs, which is large on a real instance and read once, not per click.
   */
  const clients = new Map<string, { version: string; client: CreatioClient }>();
  const clientFor = (orgId: string, org: StoredOrg): CreatioClient => {
    const version = org.updatedAt.toISOString();
    const hit = clients.get(orgId);
    if (hit?.version === version) return hit.client;
    const client = creatioClientFor(org.settings, { timeoutMs: deps.config.creatioRequestTimeoutMs });
    clients.delete(orgId);
    clients.set(orgId, { version, client });
    // The least recently made go first; an operator looks at a few organizations at a time.
    if (clients.size > MAX_CACHED_CLIENTS) clients.delete(clients.keys().next().value!);
    return client;
  };
  r.get('/v1/orgs/:orgId/diagnose', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const q = query(req.query);
    const org = await deps.store.getOrg(orgId);
    if (!org) throw orgNotFound(orgId);
    // Refused OpenCX events concern the organization, whichever conversation is asked about.
    const refused = refusedEventFindings(
      orgId,
      await deps.store.rejectedEventSummary(orgId),
      Date.now(),
      REPLAY_FIX(orgId),
    );
    const answer = (sessionId: string | null, caseId: string | null, findings: Finding[]) =>
      res.json({
        sessionId,
        caseId,
        workflowId: sessionId && conversationWorkflowId(orgId, sessionId),
        findings: [...findings, ...refused],
      });

    let sessionId = q.sessionId;
    if (!sessionId) {
      const mapped = await deps.store.findSessionByCase(orgId, q.caseId!);
      if (!mapped) {
        answer(null, q.caseId!, [
          {
            code: 'case_not_created_by_bridge',
            scenario: 'case_closure_not_syncing',
            message: `Case ${q.caseId} has no matching OpenCX session: it was not created by the bridge for organization ${orgId}`,
            fix: 'Only cases the bridge created sync back; closing other cases changes nothing in OpenCX.',
          },
        ]);
        return;
      }
      sessionId = mapped.sessionId;
    }
    let session: Session;
    try {
      session = await readSession(deps, orgId, sessionId);
    } catch (err) {
      if (!(err instanceof ApiError) || err.code !== 'session_not_found') throw err;
      answer(sessionId, null, [
        {
          code: 'session_unknown',
          scenario: 'cases_not_created',
          message: `The bridge has received no event of conversation ${sessionId} for organization ${orgId}`,
          fix: `Check that OpenCX sends its webhooks to ${deps.config.publicBaseUrl}/webhooks/opencx with organization_id "${org.settings.opencx.organizationId ?? orgId}" (${opencxMapping(orgId, org.settings)}) and this organization's signing secret (a bad signature, or an organization_id no organization receives, is answered 401; GET /v1/opencx-events/unmapped lists those ids).`,
        },
      ]);
      return;
    }
    const [live, webhookCalls] = await Promise.all([
      checkCreatio(clientFor(orgId, org), org.settings, session.caseId),
      deps.store.creatioWebhookCalls(orgId),
    ]);
    answer(
      sessionId,
      session.caseId,
      findingsOf({ orgId, settings: org.settings, session, webhookCalls, live, now: Date.now() }),
    );
  });
  return r;
}
