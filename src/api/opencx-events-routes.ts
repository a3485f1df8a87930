import { Router } from 'express';
import { actorOf } from './access';
import { ApiError } from '../errors';
import type { AppDeps } from './deps';
import { REPLAY_FIX, type OpencxIngress, type ReplayOutcome } from './opencx-ingress';
import { conversationsDisabled, orgIdParam, orgNotFound } from './params';

function limitParam(value: unknown, max: number): number {
  if (value === undefined) return Math.min(100, max);
  const n = typeof value === 'string' && /^\d{1,5}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= max)) {
    throw new ApiError(400, 'invalid_field', `limit must be a whole number from 1 to ${max}`, {
      field: 'limit',
    });
  }
  return n;
}

/**
 * Signed OpenCX events the bridge refused, kept for a replay: GET /v1/orgs/:orgId/opencx-events
 * lists them (never their content), POST …/opencx-events/replay replays every one, POST
 * …/opencx-events/:eventId/replay one (eventId = its webhook-id). GET /v1/opencx-events/unmapped:
 * OpenCX organizations whose events no organization receives.
 */
export function opencxEventsRouter(deps: AppDeps, ingress: OpencxIngress): Router {
  const r = Router();
  const knownOrg = async (value: unknown): Promise<string> => {
    const orgId = orgIdParam(value);
    if (!(await deps.store.settingsVersion(orgId))) throw orgNotFound(orgId);
    return orgId;
  };
  const conversations = () => {
    if (!deps.conversations) throw conversationsDisabled();
  };

  r.get('/v1/orgs/:orgId/opencx-events', async (req, res) => {
    const orgId = await knownOrg(req.params.orgId);
    const limit = limitParam(req.query.limit, deps.store.rejectedEventLimits.perOrg);
    const [kept, summary] = await Promise.all([
      deps.store.rejectedEvents(orgId, limit),
      deps.store.rejectedEventSummary(orgId),
    ]);
    res.json({
      orgId,
      waiting: summary.groups.reduce((n, g) => n + g.count, 0),
      groups: summary.groups,
      dropped: summary.dropped,
      events: kept.map(({ body: _body, ...e }) => e),
      ...(summary.groups.length > 0 && { fix: REPLAY_FIX(orgId) }),
    });
  });

  r.post('/v1/orgs/:orgId/opencx-events/replay', async (req, res) => {
    const orgId = await knownOrg(req.params.orgId);
    conversations();
    const kept = await deps.store.rejectedEvents(orgId, deps.store.rejectedEventLimits.perOrg);
    const events: ReplayOutcome[] = [];
    // Oldest first, one at a time: a conversation's events reach it in the order they came.
    for (const k of kept) events.push(await ingress.replay(orgId, k));
    await deps.store.audit(orgId, actorOf(req), 'opencx_events.replayed', {
      events: events.length,
      replayed: events.filter((e) => e.status === 'replayed').length,
    });
    const count = (status: string) => events.filter((e) => e.status === status).length;
    req.log.info(
      { orgId, replayed: count('replayed'), refused: count('refused') },
      'refused OpenCX events replayed',
    );
    res.json({ replayed: count('replayed'), refused: count('refused'), ignored: count('ignored'), events });
  });

  r.post('/v1/orgs/:orgId/opencx-events/:eventId/replay', async (req, res) => {
    const orgId = await knownOrg(req.params.orgId);
    conversations();
    const webhookId = req.params.eventId;
    const kept = await deps.store.rejectedEvent(orgId, webhookId);
    if (!kept) {
      throw new ApiError(
        404,
        'event_not_found',
        `No refused OpenCX event with webhook-id ${webhookId} is kept for organization ${orgId}`,
        { fix: `GET /v1/orgs/${orgId}/opencx-events lists the kept events.` },
      );
    }
    if (kept.replayedAt) {
      res.json({
        webhookId,
        event: kept.event,
        status: 'already_replayed',
        replayedAt: kept.replayedAt,
      });
      return;
    }
    const outcome = await ingress.replay(orgId, kept);
    await deps.store.audit(orgId, actorOf(req), 'opencx_event.replayed', {
      webhookId,
      status: outcome.status,
    });
    if (outcome.status === 'refused') {
      res.status(422).json({
        error: {
          ...outcome.error,
          fix: 'The bridge still cannot read this event; it stays kept. Replay it once a release reads it.',
        },
        webhookId,
        event: kept.event,
        status: 'refused',
      });
      return;
    }
    res.json(outcome);
  });

  r.get('/v1/opencx-events/unmapped', async (req, res) => {
    const limit = limitParam(req.query.limit, deps.store.rejectedEventLimits.unmappedIds);
    // What this process counted is written first, so the list is current.
    await ingress.unmapped.flush();
    const rows = await deps.store.unmappedOpencxOrganizations(limit);
    res.json({
      organizations: rows.map((u) => ({
        opencxOrganizationId: u.opencxOrgId,
        events: u.count,
        firstSeenAt: u.firstSeenAt,
        lastSeenAt: u.lastSeenAt,
        message: `${u.count} event${u.count === 1 ? '' : 's'} from OpenCX organization ${u.opencxOrgId}, not connected (answered 401), the last at ${u.lastSeenAt}`,
      })),
      ...(rows.length > 0 && {
        fix: 'Connect the organization whose events these are: set opencx.organizationId to the OpenCX organization id in its settings (PUT /v1/orgs/:orgId/integrations/creatio).',
      }),
    });
  });
  return r;
}
