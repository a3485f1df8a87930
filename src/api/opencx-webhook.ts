import express, { Router } from 'express';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { ApiError } from '../errors';
import { envelopeSchema, isHandled, toConversationEvent } from '../opencx/events';
import { verify } from '../opencx/signature';
import { SEARCH_ATTRIBUTE_KEYS } from '../temporal/search-attributes';
import { conversationWorkflow } from '../workflows/conversation';
import { conversationEventSignal, conversationWorkflowId } from '../workflows/messages';
import type { AppDeps } from './app';
import { parseBody } from './errors';
import { orgIdParam } from './settings-routes';

const SIGNATURE_FIX =
  'Send the Standard Webhooks headers webhook-id, webhook-timestamp and webhook-signature, signed with the webhook secret stored for the organization.';

/**
 * POST /webhooks/opencx: verifies the Standard Webhooks signature, validates the event, and hands
 * it to the conversation's workflow with one signalWithStart. 202 as soon as Temporal has it.
 */
export function opencxWebhookRouter(deps: AppDeps): Router {
  const r = Router();
  r.post('/webhooks/opencx', express.raw({ type: () => true, limit: '1mb' }), async (req, res) => {
    const conv = deps.conversations;
    if (!conv)
      throw new ApiError(503, 'temporal_unavailable', 'Conversations are not enabled on this instance');
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const headers = {
      id: req.header('webhook-id') ?? '',
      timestamp: req.header('webhook-timestamp') ?? '',
      signature: req.header('webhook-signature') ?? '',
    };
    const missing = Object.entries({
      'webhook-id': headers.id,
      'webhook-timestamp': headers.timestamp,
      'webhook-signature': headers.signature,
    })
      .filter(([, v]) => !v)
      .map(([k]) => k);
    if (missing.length > 0) {
      deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: 'unsigned' });
      throw new ApiError(401, 'missing_signature', `Missing header(s): ${missing.join(', ')}`, {
        fix: SIGNATURE_FIX,
      });
    }
    if (headers.id.length > 200)
      throw new ApiError(400, 'invalid_field', 'webhook-id is too long', { field: 'webhook-id' });

    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new ApiError(400, 'invalid_json', 'The request body is not valid JSON');
    }
    const envelope = parseBody(envelopeSchema, body);
    const orgId = orgIdParam(envelope.organization_id);
    const org = await deps.store.getOrg(orgId);
    if (!org)
      throw new ApiError(404, 'org_not_found', `Organization ${orgId} has no Creatio integration`, {
        field: 'organization_id',
      });
    const secret = org.settings.opencx.webhookSecret;
    if (!secret) {
      throw new ApiError(
        401,
        'webhook_secret_not_configured',
        `Organization ${orgId} has no OpenCX webhook secret`,
        {
          fix: 'Set opencx.webhookSecret with Test & Save (PUT /v1/orgs/:orgId/integrations/creatio).',
        },
      );
    }
    const verified = verify([secret], headers, raw);
    if (!verified.ok) {
      deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: verified.code });
      throw new ApiError(401, verified.code, verified.message, { fix: SIGNATURE_FIX });
    }

    if (!isHandled(envelope.event)) {
      req.log.info({ orgId, event: envelope.event }, 'OpenCX event not used by the bridge; ignored');
      deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: 'ignored' });
      res
        .status(202)
        .json({ status: 'ignored', reason: `event ${envelope.event} is not used by the bridge` });
      return;
    }
    const { sessionId, event } = toConversationEvent(
      envelope.event,
      envelope.data,
      headers.id,
      (schema, data) => parseBody(schema, data, 'data'),
    );
    const workflowId = conversationWorkflowId(orgId, sessionId);

    if (!(await deps.store.claimDelivery(orgId, 'opencx', headers.id))) {
      deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: 'duplicate' });
      res.status(200).json({ status: 'duplicate', workflowId });
      return;
    }
    try {
      await conv.client.workflow.signalWithStart(conversationWorkflow, {
        workflowId,
        taskQueue: conv.taskQueue,
        args: [{ orgId, sessionId, options: conv.options }],
        signal: conversationEventSignal,
        signalArgs: [event],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: [
          { key: SEARCH_ATTRIBUTE_KEYS.OrgId, value: orgId },
          { key: SEARCH_ATTRIBUTE_KEYS.OpenCXSessionId, value: sessionId },
        ],
        memo: { orgId, sessionId },
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        req.log.info(
          { orgId, sessionId, event: envelope.event },
          'event for a finished conversation; ignored',
        );
        deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: 'conversation_closed' });
        res.status(200).json({ status: 'ignored', reason: 'the conversation is already closed', workflowId });
        return;
      }
      await deps.store.releaseDelivery(orgId, 'opencx', headers.id).catch(() => undefined);
      req.log.error({ err, orgId, sessionId }, 'could not hand the event to Temporal');
      throw new ApiError(503, 'temporal_unavailable', 'The event could not be recorded; retry later');
    }
    deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: 'accepted' });
    res.status(202).json({ status: 'accepted', workflowId });
  });
  return r;
}
