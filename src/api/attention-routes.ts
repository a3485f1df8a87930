import { Router } from 'express';
import { refusedEventFindings, RECENT_MS } from '../diagnose/findings';
import { ApiError } from '../errors';
import {
  AttentionStore,
  type AttentionItem,
  type ConversationAttentionKind,
  type OrgSignals,
} from '../store/attention';
import { conversationWorkflowId } from '../workflows/contract';
import type { AppDeps } from './deps';
import { REPLAY_FIX } from './opencx-ingress';
import { orgIdParam } from './params';

/** Every kind an item can have: the conversations' own, and the organization's (computed at read time). */
export const ATTENTION_KINDS = [
  'step_parked',
  'step_retrying',
  'ai_fields_blank',
  'closure_mismatch',
  'process_not_calling',
  'webhook_refused',
] as const;
export type AttentionKind = (typeof ATTENTION_KINDS)[number];

/** A case mapped this long ago with no call of a business process ever: the process is not calling. */
export const PROCESS_QUIET_MS = 24 * 3600 * 1000;
/** Refused webhook calls within this window are listed (`webhook_refused`). */
export const REFUSED_RECENT_MS = 24 * 3600 * 1000;
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 5_000;

export interface AttentionView {
  orgId: string;
  /** Null for an organization-level item. */
  sessionId: string | null;
  kind: AttentionKind;
  message: string;
  fix: string;
  since: string;
  detail: string;
  links: { inspector: string | null; temporal: string | null };
}

const MESSAGES: Record<ConversationAttentionKind, { message: string; fix: string }> = {
  step_parked: {
    message: 'A step of the conversation is parked until it is fixed',
    fix: 'Open the conversation in the inspector, fix the cause it names, then Resume (or Skip a step the conversation can go on without).',
  },
  step_retrying: {
    message: 'An activity of the conversation keeps failing and is being retried',
    fix: 'Look at the failure in the inspector or the Temporal UI (credentials, Creatio or OpenCX down, a refused value); it parks if Temporal gives up.',
  },
  ai_fields_blank: {
    message: 'AI fields of the case were left blank: the LLM failed or none is configured',
    fix: 'Check the LLM endpoint (LLM_BASE_URL, LLM_API_KEY, LLM_MODEL) of the workers; the fields are evaluated again at the next handoff.',
  },
  closure_mismatch: {
    message: 'The case is closed in Creatio but the OpenCX session could not be resolved',
    fix: 'Check the OpenCX API key and that the session still exists (Settings → Integrations → Creatio), then resume the conversation, or close the session in OpenCX.',
  },
};

function limitOf(q: unknown): number {
  if (q === undefined) return DEFAULT_LIMIT;
  const n = Number(q);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) {
    throw new ApiError(400, 'invalid_field', `limit must be an integer from 1 to ${MAX_LIMIT}`, {
      field: 'limit',
    });
  }
  return n;
}

/**
 * GET /v1/orgs/:orgId/attention and GET /v1/attention (the operator's, every organization): the
 * conversations that need a person now, newest first, each with what is wrong, what to do, and
 * links to the console's inspector and the Temporal UI; and organization-level items computed
 * from what the store already has (a business process that never calls, refused webhook calls).
 */
export function attentionRouter(deps: AppDeps): Router {
  const r = Router();
  const items = new AttentionStore(deps.store.db);
  deps.metrics.watchAttention(() => items.counts());
  const base = deps.config.publicBaseUrl.replace(/\/+$/, '');
  const ui = (deps.config.temporalUiOrigin ?? 'http://localhost:8233').replace(/\/+$/, '');
  const namespace = deps.config.temporal?.namespace ?? 'default';
  const inspector = (orgId: string, sessionId: string) =>
    `${base}/admin/#inspector?orgId=${encodeURIComponent(orgId)}&sessionId=${encodeURIComponent(sessionId)}`;
  const temporal = (orgId: string, sessionId: string) =>
    `${ui}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(conversationWorkflowId(orgId, sessionId))}`;

  const view = (i: AttentionItem): AttentionView => ({
    orgId: i.orgId,
    sessionId: i.sessionId,
    kind: i.kind,
    message: i.detail ? `${MESSAGES[i.kind].message}: ${i.detail}` : MESSAGES[i.kind].message,
    fix: MESSAGES[i.kind].fix,
    since: i.since,
    detail: i.detail,
    links: { inspector: inspector(i.orgId, i.sessionId), temporal: temporal(i.orgId, i.sessionId) },
  });

  /** What the store knows of every organization (or one), for the organization-level kinds. */
  const signals = (orgId?: string) => {
    const now = Date.now();
    return items.orgSignals({
      ...(orgId !== undefined && { orgId }),
      quietSince: new Date(now - PROCESS_QUIET_MS),
      refusedSince: new Date(now - RECENT_MS),
    });
  };

  /** The organization's own items, from the webhook calls and refused events the store counts. */
  function orgItems(orgId: string, { calls, oldCaseAt, refused }: OrgSignals): AttentionView[] {
    const now = Date.now();
    const out: AttentionView[] = [];
    const orgLevel = (kind: AttentionKind, message: string, fix: string, since: string, detail = '') =>
      out.push({
        orgId,
        sessionId: null,
        kind,
        message,
        fix,
        since,
        detail,
        links: { inspector: null, temporal: null },
      });
    const called = new Set(calls.filter((c) => c.count > 0).map((c) => c.outcome));
    if (oldCaseAt) {
      for (const [outcome, name, body] of [
        ['closure', 'case-closure', 'case_closed'],
        ['agent_reply', 'agent-reply', 'new_activity'],
      ] as const) {
        if (called.has(outcome)) continue;
        orgLevel(
          'process_not_calling',
          `Cases of organization ${orgId} were made over a day ago and the ${name} business process has never called the bridge: it learns of them only from its own timer`,
          `Create or activate the ${name} process in Creatio's Process Library, calling the webhook URL from Settings → Integrations → Creatio with {"event_type": "${body}", "caseId": "[#Case.Id#]"}.`,
          oldCaseAt,
          `${name} process`,
        );
      }
    }
    for (const c of calls) {
      if ((c.outcome !== 'stale_token' && c.outcome !== 'bad_request') || c.count === 0) continue;
      if (now - Date.parse(c.lastAt) > REFUSED_RECENT_MS) continue;
      orgLevel(
        'webhook_refused',
        `${c.count} call${c.count === 1 ? '' : 's'} from Creatio ${c.count === 1 ? 'was' : 'were'} refused (${c.outcome === 'stale_token' ? '401 Invalid token' : '400'}), the last at ${c.lastAt}${c.lastReason ? `: ${c.lastReason}` : ''}`,
        c.outcome === 'stale_token'
          ? 'Copy the current webhook URL from Settings → Integrations → Creatio into both business processes.'
          : 'The process\'s "Call web service" body must be JSON with event_type and caseId: {"event_type": "new_activity", "caseId": "[#Case.Id#]"}.',
        c.lastAt,
        c.outcome,
      );
    }
    const findings = refusedEventFindings(orgId, refused, now, REPLAY_FIX(orgId));
    findings.forEach((f, n) => {
      const g = refused.groups[n];
      orgLevel('webhook_refused', f.message, f.fix, g?.since ?? refused.dropped?.lastAt ?? '', f.code);
    });
    return out;
  }

  const byNewest = (a: AttentionView, b: AttentionView) => b.since.localeCompare(a.since);
  /** Counts of every kind: the organization-level ones of `list` (the store counts the rest). */
  const countsOf = (list: AttentionView[]) =>
    Object.fromEntries(ATTENTION_KINDS.map((k) => [k, list.filter((i) => i.kind === k).length]));

  r.get('/v1/orgs/:orgId/attention', async (req, res) => {
    const orgId = orgIdParam(req.params.orgId);
    const limit = limitOf(req.query.limit);
    const [conversations, counts, known] = await Promise.all([
      items.list(orgId, limit),
      items.counts(orgId),
      signals(orgId),
    ]);
    const mine = known.get(orgId);
    const org = mine ? orgItems(orgId, mine) : [];
    const list = [...conversations.map(view), ...org].sort(byNewest);
    res.json({ orgId, count: list.length, counts: { ...countsOf(org), ...counts }, items: list });
  });

  r.get('/v1/attention', async (req, res) => {
    const limit = limitOf(req.query.limit);
    const [conversations, counts, known] = await Promise.all([
      items.listAll(limit),
      items.counts(),
      signals(),
    ]);
    const org = [...known].flatMap(([orgId, s]) => orgItems(orgId, s));
    const list = [...conversations.map(view), ...org].sort(byNewest).slice(0, limit);
    res.json({ count: list.length, counts: { ...countsOf(org), ...counts }, items: list });
  });
  return r;
}
