import express, { Router } from 'express';
import { ApiError } from '../errors';
import { envelopeSchema, isHandled } from '../opencx/events';
import { checkTimestamp, INVALID_SIGNATURE, verify } from '../opencx/signature';
import { OPENCX_ORG_ID_RE } from '../settings/schema';
import type { AppDeps } from './deps';
import { parseBody } from './errors';
import { secretsOf, withMode, type OpencxIngress } from './opencx-ingress';

const SIGNATURE_FIX =
  'Send the Standard Webhooks headers webhook-id, webhook-timestamp and webhook-signature, signed with the webhook secret stored for the organization.';

/**
 * POST /webhooks/opencx: finds the organization that receives the event's organization_id,
 * verifies the Standard Webhooks signature with its secret, validates the event, and hands it to
 * the conversation's workflow with one signalWithStart. 202 once Temporal has it, never before. A
 * signed event that does not validate is kept for a replay (src/api/opencx-events-routes.ts).
 */
export function opencxWebhookRouter(deps: AppDeps, ingress: OpencxIngress): Router {
  const r = Router();
  r.post('/webhooks/opencx', express.raw({ type: () => true, limit: '1mb' }), async (req, res) => {
    if (!deps.conversations)
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
    const fresh = checkTimestamp(headers.timestamp);
    if (!fresh.ok) {
      deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: fresh.code });
      throw new ApiError(401, fresh.code, fresh.message, { fix: SIGNATURE_FIX });
    }

    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new ApiError(400, 'invalid_json', 'The request body is not valid JSON');
    }
    const envelope = parseBody(envelopeSchema, body);
    const opencxOrgId = envelope.organization_id;
    if (!OPENCX_ORG_ID_RE.test(opencxOrgId)) {
      throw new ApiError(
        400,
        'invalid_field',
        'organization_id must be 1-200 printable characters without spaces',
        { field: 'organization_id' },
      );
    }
    // An OpenCX organization no organization receives, one with no secret and a wrong signature get
    // the same answer, so that the endpoint tells nothing about which organizations exist; the log
    // says which it was, and unmapped ids are counted for the operator (GET /v1/opencx-events/unmapped).
    let receiver = await ingress.receivers.get(opencxOrgId);
    let verified = receiver.secret ? verify(secretsOf(receiver), headers, raw) : INVALID_SIGNATURE;
    if (!verified.ok && Date.now() - receiver.cachedAt > 2_000) {
      receiver = await ingress.receivers.get(opencxOrgId, true);
      verified = receiver.secret ? verify(secretsOf(receiver), headers, raw) : INVALID_SIGNATURE;
    }
    if (!receiver.orgId) {
      ingress.unmapped.note(opencxOrgId);
      req.log.info({ opencxOrgId }, 'OpenCX webhook refused: no organization receives this organization_id');
      deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: 'unmapped_organization' });
      throw new ApiError(401, INVALID_SIGNATURE.code, INVALID_SIGNATURE.message, { fix: SIGNATURE_FIX });
    }
    const orgId = receiver.orgId;
    if (!verified.ok) {
      req.log.info(
        { orgId, opencxOrgId, reason: receiver.secret ? verified.code : 'no webhook secret' },
        'OpenCX webhook refused',
      );
      deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: verified.code });
      throw new ApiError(401, verified.code, verified.message, { fix: SIGNATURE_FIX });
    }
    ingress.pruneNowAndThen();

    if (!isHandled(envelope.event)) {
      req.log.info({ orgId, event: envelope.event }, 'OpenCX event not used by the bridge; ignored');
      deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: 'ignored' });
      res
        .status(202)
        .json({ status: 'ignored', reason: `event ${envelope.event} is not used by the bridge` });
      return;
    }
    const converted = ingress.convert(envelope.event, envelope.data, headers.id);
    if (!converted.ok) {
      // A signed event OpenCX sent that the bridge cannot read: never lost silently. It is kept
      // (sealed) for a replay; the 4xx tells the sender; the warning and the counter tell the
      // operator (which organization, event, delivery and field; never the content).
      const { error, field, fields } = converted;
      req.log.warn(
        {
          orgId,
          event: envelope.event,
          webhookId: headers.id,
          field: field ?? null,
          code: error.code,
          ...(fields.length > 1 && { fields }),
        },
        'OpenCX event refused: signed, but its data does not validate; kept for a replay',
      );
      deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: 'invalid_event' });
      await ingress.keep(orgId, headers.id, envelope.event, { field, code: error.code }, raw);
      await ingress.askHistoryCheck(orgId, headers.id, envelope.event, envelope.data);
      throw error;
    }
    const { sessionId } = converted;
    const event = withMode(converted.event, receiver.caseOnlyOnHandoff);
    const { workflowId, delivery } = await ingress.deliver(orgId, headers.id, sessionId, event);
    if (delivery === 'duplicate') {
      deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: 'duplicate' });
      res.status(200).json({ status: 'duplicate', workflowId });
      return;
    }
    const resumed = delivery === 'resumed';
    if (resumed)
      req.log.info({ orgId, sessionId, event: envelope.event }, 'late event: conversation resumed');
    deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: delivery });
    res.status(202).json({ status: 'accepted', workflowId, ...(resumed && { resumed: true }) });
  });
  return r;
}
