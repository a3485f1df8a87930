import express, { Router } from 'express';
import { ApiError } from '../errors';
import { envelopeSchema, isHandled, toConversationEvent } from '../opencx/events';
import { checkTimestamp, INVALID_SIGNATURE, verify } from '../opencx/signature';
import type { Store } from '../store';
import { deliverEvent } from '../conversations/client';
import { conversationWorkflowId } from '../workflows/contract';
import type { AppDeps } from './app';
import { parseBody } from './errors';
import { orgIdParam } from './settings-routes';

/** Longest wait for the delivery record (a nicety: the workflow dedupes without it). */
const DELIVERY_RECORD_MS = 1_000;

/** The promise's value, or undefined if it fails or takes longer than `ms`. */
async function within<T>(ms: number, p: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([p.catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

const SIGNATURE_FIX =
  'Send the Standard Webhooks headers webhook-id, webhook-timestamp and webhook-signature, signed with the webhook secret stored for the organization.';

/**
 * Organizations' webhook secrets, kept in memory for a short while (30 s, known or not) so that a
 * flood of signed-looking requests costs no database read or decryption; a signature that does not
 * match a cached secret reloads it once (the secret may just have been rotated).
 */
class WebhookSecrets {
  private readonly cache = new Map<string, { secret: string | undefined; at: number }>();
  constructor(
    private readonly store: Store,
    private readonly ttlMs = 30_000,
    private readonly maxEntries = 50_000,
  ) {}

  async get(orgId: string, fresh = false): Promise<{ secret: string | undefined; cachedAt: number }> {
    const hit = this.cache.get(orgId);
    if (hit && !fresh && Date.now() - hit.at < this.ttlMs) return { secret: hit.secret, cachedAt: hit.at };
    const org = await this.store.getOrg(orgId);
    const entry = { secret: org?.settings.opencx.webhookSecret, at: Date.now() };
    if (this.cache.size >= this.maxEntries) this.cache.clear();
    this.cache.set(orgId, entry);
    return { secret: entry.secret, cachedAt: entry.at };
  }
}

/**
 * POST /webhooks/opencx: verifies the Standard Webhooks signature, validates the event, and hands
 * it to the conversation's workflow with one signalWithStart. 202 once Temporal has it, never before.
 */
export function opencxWebhookRouter(deps: AppDeps): Router {
  const r = Router();
  const secrets = new WebhookSecrets(deps.store);
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
    const orgId = orgIdParam(envelope.organization_id);
    // An unknown organization, one with no secret and a wrong signature get the same answer, so
    // that the endpoint tells nothing about which organizations exist; the log says which it was.
    let known = await secrets.get(orgId);
    let verified = known.secret ? verify([known.secret], headers, raw) : INVALID_SIGNATURE;
    if (!verified.ok && Date.now() - known.cachedAt > 2_000) {
      known = await secrets.get(orgId, true);
      verified = known.secret ? verify([known.secret], headers, raw) : INVALID_SIGNATURE;
    }
    if (!verified.ok) {
      req.log.info(
        { orgId, reason: known.secret ? verified.code : 'unknown organization or no webhook secret' },
        'OpenCX webhook refused',
      );
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
    let converted: ReturnType<typeof toConversationEvent>;
    try {
      converted = toConversationEvent(envelope.event, envelope.data, headers.id, (schema, data) => {
        if (data === null || typeof data !== 'object' || Array.isArray(data)) {
          throw new ApiError(
            400,
            'invalid_field',
            'data must be a JSON object (or an array whose first element is one)',
            { field: 'data' },
          );
        }
        return parseBody(schema, data, 'data');
      });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      // A signed event OpenCX sent that the bridge cannot read: never lost silently. The 4xx tells
      // the sender; the warning and the counter tell the operator (which organization, event,
      // delivery and field; never the content).
      const details = Array.isArray(err.extra.details) ? (err.extra.details as { field?: unknown }[]) : [];
      req.log.warn(
        {
          orgId,
          event: envelope.event,
          webhookId: headers.id,
          field: err.extra.field ?? null,
          code: err.code,
          ...(details.length > 1 && {
            fields: details.map((d) => (typeof d.field === 'string' ? `data.${d.field}` : null)),
          }),
        },
        'OpenCX event refused: signed, but its data does not validate',
      );
      deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: 'invalid_event' });
      throw err;
    }
    const { sessionId, event } = converted;
    // "duplicate" only for a delivery Temporal is known to have; if the store cannot say in time,
    // the event goes to Temporal anyway (the workflow dedupes by event and message id).
    const seen = await within(DELIVERY_RECORD_MS, deps.store.deliverySeen(orgId, 'opencx', headers.id));
    if (seen) {
      deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: 'duplicate' });
      res.status(200).json({ status: 'duplicate', workflowId: conversationWorkflowId(orgId, sessionId) });
      return;
    }
    const { workflowId, resumed } = await deliverEvent(conv, orgId, sessionId, event);
    await within(DELIVERY_RECORD_MS, deps.store.recordDelivery(orgId, 'opencx', headers.id));
    if (resumed)
      req.log.info({ orgId, sessionId, event: envelope.event }, 'late event: conversation resumed');
    deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: resumed ? 'resumed' : 'accepted' });
    if (event.kind === 'message') deps.metrics.messagesReceived.inc({ author: event.author });
    res.status(202).json({ status: 'accepted', workflowId, ...(resumed && { resumed: true }) });
  });
  return r;
}
