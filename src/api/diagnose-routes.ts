import { Router } from 'express';
import { ApiError } from '../errors';
import { GUID_RE } from '../settings/schema';
import { SESSION_ID_RE } from '../opencx/events';
import { conversationWorkflowId } from '../workflows/contract';
import type { AppDeps } from './app';
import { readSession } from './sessions-routes';
import { orgIdParam } from './settings-routes';

/** The troubleshooting page's scenarios (DESIGN.md §8). */
export const SCENARIOS = [
  'invalid_credentials',
  'cases_not_created',
  'agent_replies_not_reaching_customers',
  'case_closure_not_syncing',
  'ai_fields_blank',
  'webhook_errors',
  'creatio_downtime',
  'none',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface Finding {
  code: string;
  scenario: Scenario;
  message: string;
  fix: string;
}

type Session = Awaited<ReturnType<typeof readSession>>;

const CREDENTIAL_ERRORS = new Set([
  'CreatioBadCredentialsError',
  'CreatioGrantTypeError',
  'CreatioUnauthorizedError',
]);

/** What the conversation's own record says is wrong, scenario by scenario. */
export function findingsOf(s: Session): Finding[] {
  const out: Finding[] = [];
  const err = s.lastError;
  if (err && CREDENTIAL_ERRORS.has(err.type)) {
    out.push({
      code: 'credentials_rejected',
      scenario: 'invalid_credentials',
      message: `Creatio refused the credentials at "${err.step}": ${err.message}`,
      fix: 'Regenerate the client secret in Creatio (OAuth application, Client Credentials grant), run Test & Save, then resume the conversation.',
    });
  } else if (err?.parked) {
    out.push({
      code: 'step_parked',
      scenario: 'creatio_downtime',
      message: `The step "${err.step}" is parked after ${err.type}: ${err.message}`,
      fix: 'Fix the cause, then resume the step (or wait for the periodic retry).',
    });
  }
  if (s.retrying.length > 0) {
    const r = s.retrying[0]!;
    out.push({
      code: 'creatio_retrying',
      scenario: 'creatio_downtime',
      message: `${r.activity ?? 'A step'} is being retried (attempt ${r.attempt ?? '?'}): ${r.lastFailure ?? ''}`,
      fix: 'Nothing is lost: the step goes on once Creatio answers again. Check Creatio’s status if this lasts.',
    });
  }
  if (!s.caseId && s.status === 'closed' && s.mode === 'handoff_only' && !s.handedOffAt) {
    out.push({
      code: 'no_case_handoff_only',
      scenario: 'cases_not_created',
      message:
        'Create case only on handoff is enabled and the AI resolved the conversation: no case by design',
      fix: 'Turn off "Create case only on handoff" to get a case for every conversation, or trigger a handoff to test.',
    });
  }
  const reply = s.processes?.agentReply;
  if (reply?.finding) {
    out.push({
      code: 'agent_reply_process_not_calling',
      scenario: 'agent_replies_not_reaching_customers',
      message: `${reply.finding} (${reply.missed} repl${reply.missed === 1 ? 'y' : 'ies'} found only by the timer, last at ${reply.lastMissedAt}; process calls for this case: ${reply.calls})`,
      fix: 'In Creatio’s Process Library check that the agent-reply process is Active, that its webhook URL is the one shown in Settings → Integrations → Creatio, and that its Activity filter matches how agents reply.',
    });
  }
  const closure = s.processes?.closure;
  if (closure?.finding) {
    out.push({
      code: 'closure_process_not_calling',
      scenario: 'case_closure_not_syncing',
      message: `${closure.finding} (process calls for this case: ${closure.calls})`,
      fix: 'Check that the case-closure process is Active, calls the current webhook URL, and that its status filter matches your closure status exactly.',
    });
  }
  const mismatch = [...s.notes].reverse().find((n) => n.message.includes('(names are case-sensitive)'));
  if (mismatch && s.status === 'open') {
    out.push({
      code: 'closure_status_name_mismatch',
      scenario: 'case_closure_not_syncing',
      message: mismatch.message,
      fix: 'Make closureStatusNames match the Creatio status name exactly (case-sensitive) and save.',
    });
  }
  for (const f of s.aiFields?.fields ?? []) {
    if (f.outcome === 'written') continue;
    out.push({
      code: `ai_field_${f.outcome}`,
      scenario: 'ai_fields_blank',
      message: `AI field "${f.title}" (${f.column}): ${f.outcome}${f.reason ? ` — ${f.reason}` : ''}`,
      fix:
        f.outcome === 'mapping_disabled'
          ? 'Enable the mapping in Settings → Integrations → Creatio.'
          : f.outcome === 'column_missing'
            ? 'Use the exact Creatio column name (case-sensitive).'
            : 'Tighten the AI description with explicit values and clear criteria.',
    });
  }
  if (s.aiFields?.status === 'failed' && (s.aiFields.fields ?? []).length === 0) {
    out.push({
      code: 'ai_fields_llm_error',
      scenario: 'ai_fields_blank',
      message: s.aiFields.reason ?? 'AI field evaluation failed',
      fix: 'Check the LLM endpoint (LLM_BASE_URL, LLM_API_KEY) and its status.',
    });
  }
  return out;
}

/**
 * GET /v1/orgs/:orgId/diagnose?sessionId=… or ?caseId=…: the troubleshooting page walked for one
 * conversation, from what the bridge recorded of it. An empty `findings` means nothing is wrong.
 */
export function diagnoseRouter(deps: AppDeps): Router {
  const r = Router();
  r.get('/v1/orgs/:orgId/diagnose', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const q = req.query as Record<string, unknown>;
    let sessionId = typeof q.sessionId === 'string' ? q.sessionId : undefined;
    const caseId = typeof q.caseId === 'string' ? q.caseId.toLowerCase() : undefined;
    if (!sessionId && !caseId) {
      throw new ApiError(400, 'missing_field', 'Give sessionId or caseId', { field: 'sessionId' });
    }
    if (caseId && !GUID_RE.test(caseId)) {
      throw new ApiError(400, 'invalid_field', 'caseId must be a GUID', { field: 'caseId' });
    }
    if (sessionId && !SESSION_ID_RE.test(sessionId)) {
      throw new ApiError(
        400,
        'invalid_field',
        'sessionId must be 1-128 letters, digits, "_", ".", ":" or "-"',
        {
          field: 'sessionId',
        },
      );
    }
    if (!sessionId) {
      const mapped = await deps.store.findSessionByCase(orgId, caseId!);
      if (!mapped) {
        res.json({
          sessionId: null,
          caseId,
          workflowId: null,
          findings: [
            {
              code: 'case_not_created_by_bridge',
              scenario: 'case_closure_not_syncing',
              message: `Case ${caseId} has no matching OpenCX session: it was not created by the bridge for organization ${orgId}`,
              fix: 'Only cases the bridge created sync back; closing other cases changes nothing in OpenCX.',
            },
          ],
        });
        return;
      }
      sessionId = mapped.sessionId;
    }
    const session = await readSession(deps, orgId, sessionId);
    res.json({
      sessionId,
      caseId: session.caseId,
      workflowId: conversationWorkflowId(orgId, sessionId),
      findings: findingsOf(session),
    });
  });
  return r;
}
