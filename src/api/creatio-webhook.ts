import express, { Router } from 'express';
import { z } from 'zod';
import { ApiError } from '../errors';
import { GUID_RE } from '../settings/schema';
import type { WebhookCallOutcome } from '../store';
import type { AppDeps } from './deps';

export const AGENT_REPLY_EVENTS = ['new_activity'] as const;
export const CLOSURE_EVENTS = ['case_closed', 'case_resolved', 'case_status_changed'] as const;
const ACCEPTED = [...AGENT_REPLY_EVENTS, ...CLOSURE_EVENTS] as const;

const TOKEN_FIX =
  'Copy the current webhook URL from Settings → Integrations → Creatio (GET /v1/orgs/:orgId/integrations/creatio) into the business process.';
const BODY_FIX =
  'Send a JSON body with both "event_type" (string) and "caseId" (string), e.g. {"event_type": "new_activity", "caseId": "[#Case.Id#]"}.';

/** Body of POST /webhooks/creatio/:token. Other fields a process sends are allowed and ignored. */
export const creatioWebhookBodySchema = z.looseObject({
  event_type: z.enum(ACCEPTED).describe('What happened in Creatio'),
  caseId: z
    .string()
    .trim()
    .regex(GUID_RE, 'must be a Creatio record Id (a GUID)')
    .transform((v) => v.toLowerCase())
    .describe('The Id of the case ([#Case.Id#])'),
  activityId: z
    .string()
    .regex(GUID_RE)
    .nullish()
    .describe('Optional: the new activity (every new activity of the case is read anyway)'),
});

/** The problem to name first: a missing or non-string field, then caseId, event_type, activityId. */
function bodyError(b: Record<string, unknown>, issues: z.core.$ZodIssue[]): ApiError {
  for (const field of ['event_type', 'caseId']) {
    if (b[field] === undefined || b[field] === null || b[field] === '') {
      return new ApiError(400, 'missing_field', `${field} is required and must be a string`, {
        field,
        fix: BODY_FIX,
      });
    }
    if (typeof b[field] !== 'string') {
      return new ApiError(400, 'invalid_field', `${field} must be a string`, { field, fix: BODY_FIX });
    }
  }
  const on = (field: string) => issues.some((i) => i.path[0] === field);
  if (on('caseId')) {
    return new ApiError(400, 'invalid_field', 'caseId must be a Creatio record Id (a GUID)', {
      field: 'caseId',
      fix: 'Map caseId to the Id of the case ([#Case.Id#]), not its number or subject.',
    });
  }
  if (on('event_type')) {
    return new ApiError(
      400,
      'unknown_event_type',
      `event_type "${String(b.event_type).slice(0, 100)}" is not one of: ${ACCEPTED.join(', ')}`,
      { field: 'event_type' },
    );
  }
  return new ApiError(400, 'invalid_field', 'activityId, when given, must be a GUID string', {
    field: 'activityId',
  });
}

/**
 * POST /webhooks/creatio/:token: calls from the customer's Creatio business processes. Answers in
 * milliseconds; the work happens in the conversation's workflow. Repeated calls change nothing:
 * the workflow reads what is new in Creatio and delivers each reply once.
 */
export function creatioWebhookRouter(deps: AppDeps): Router {
  const r = Router();
  // Creatio's "Call web service" sends JSON under various content types: read any as text.
  r.post('/webhooks/creatio/:token', express.text({ type: () => true, limit: '64kb' }), async (req, res) => {
    const outcome = (o: string) => deps.metrics.webhookEvents.inc({ source: 'creatio', outcome: o });
    /** Counted per organization for diagnose; a failure to count never fails the call. */
    const record = (orgId: string, o: WebhookCallOutcome, reason?: string) =>
      void deps.store
        .recordCreatioWebhookCall(orgId, o, reason)
        .catch((err: unknown) => req.log.warn({ err, orgId }, 'could not count a Creatio webhook call'));
    const token = req.params.token ?? '';
    const orgId = await deps.store.findOrgByWebhookToken(token);
    if (!orgId) {
      outcome('invalid_token');
      const retiredFrom = await deps.store.findOrgByRetiredToken(token);
      if (retiredFrom) {
        record(retiredFrom, 'stale_token', 'a webhook URL from before the last rotation');
        // A known URL, not a guess: answered 401 and not counted by the failure limiter.
        res.locals.retiredToken = true;
      }
      throw new ApiError(401, 'invalid_token', 'Invalid token', { fix: TOKEN_FIX });
    }
    const badRequest = (err: ApiError) => {
      outcome('bad_request');
      record(orgId, 'bad_request', err.message);
      return err;
    };
    const text = typeof req.body === 'string' ? req.body : '';
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw badRequest(
        new ApiError(400, 'invalid_json', 'The request body is not valid JSON', { fix: BODY_FIX }),
      );
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      throw badRequest(
        new ApiError(400, 'invalid_body', 'The request body must be a JSON object', { fix: BODY_FIX }),
      );
    }
    const parsed = creatioWebhookBodySchema.safeParse(body);
    if (!parsed.success) throw badRequest(bodyError(body as Record<string, unknown>, parsed.error.issues));
    const { event_type: eventType, caseId } = parsed.data;

    const kind = (AGENT_REPLY_EVENTS as readonly string[]).includes(eventType) ? 'agent_reply' : 'closure';
    const owner = await deps.store.findSessionByCase(orgId, caseId);
    if (!owner && (await deps.store.markProcessProbe(orgId, caseId, kind))) {
      // Test & Save's probe case (verifyProcesses): the process works.
      outcome('probe');
      record(orgId, kind);
      res.status(200).json({ status: 'probe_received' });
      return;
    }
    if (!owner) {
      const reason = `case ${caseId} has no matching OpenCX session (it was not created by the bridge)`;
      req.log.info({ orgId, caseId, eventType, reason }, 'Creatio webhook ignored');
      outcome('no_session');
      record(orgId, 'no_session', reason);
      res.status(200).json({ status: 'ignored', reason });
      return;
    }
    const inbox = deps.conversations?.creatioInbox;
    if (!inbox)
      throw new ApiError(503, 'temporal_unavailable', 'Conversations are not enabled on this instance');
    // Committed before answering: from here on the call cannot be lost, whatever happens next.
    await deps.store.addInbox({
      orgId,
      workflowId: owner.workflowId,
      kind: kind === 'agent_reply' ? 'creatio_activity' : 'creatio_status',
      eventType,
    });
    void inbox.kick(owner.workflowId);
    outcome('accepted');
    record(orgId, kind);
    res.status(202).json({ status: 'accepted', sessionId: owner.sessionId });
  });
  return r;
}
