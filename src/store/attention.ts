/**
 * Conversations that need a person now, in the `attention_items` table (migration 19): one row
 * per (organization, session, kind), set where the fact is known and cleared when it no longer
 * holds. The API (src/api/attention-routes.ts) lists them; the metrics count them by kind.
 */
import type { Db } from './db';
import type { WebhookCalls, WebhookCallOutcome } from './index';
import { readRejectedSummaries, type RejectedEventSummary } from './rejected-summary';

/** What a conversation can need attention for (organization-level kinds are computed at read time). */
export const CONVERSATION_ATTENTION_KINDS = [
  'step_parked',
  'step_retrying',
  'ai_fields_blank',
  'closure_mismatch',
] as const;
export type ConversationAttentionKind = (typeof CONVERSATION_ATTENTION_KINDS)[number];

export interface AttentionItem {
  orgId: string;
  sessionId: string;
  kind: ConversationAttentionKind;
  /** When the item was first set (kept while it is set again). */
  since: string;
  detail: string;
  updatedAt: string;
}

/** What the organization-level kinds are computed from, per organization (see `orgSignals`). */
export interface OrgSignals {
  calls: WebhookCalls[];
  /** A case mapped before `quietSince`, if any (its time). */
  oldCaseAt: string | null;
  refused: RejectedEventSummary;
}

/** Most characters of detail kept (an error message, a step name). */
const DETAIL_MAX = 500;

const iso = (d: Date | string) => new Date(d).toISOString();

interface Row {
  org_id: string;
  session_id: string;
  kind: ConversationAttentionKind;
  since: Date | string;
  detail: string;
  updated_at: Date | string;
}

const toItem = (r: Row): AttentionItem => ({
  orgId: r.org_id,
  sessionId: r.session_id,
  kind: r.kind,
  since: iso(r.since),
  detail: r.detail,
  updatedAt: iso(r.updated_at),
});

/**
 * Every failed attempt refreshes a `step_retrying` item; one not refreshed for an hour (far longer
 * than any retry interval) belongs to an activity that stopped failing without a success that
 * cleared it (abandoned at continue-as-new, say): it is no longer listed.
 */
const LIVE = `NOT (kind = 'step_retrying' AND updated_at < now() - interval '1 hour')`;

export class AttentionStore {
  constructor(private readonly db: Db) {}

  /** Sets an item; one already set keeps its `since` and takes the new detail. */
  async set(orgId: string, sessionId: string, kind: ConversationAttentionKind, detail = ''): Promise<void> {
    await this.db.query(
      `INSERT INTO attention_items (org_id, session_id, kind, detail) VALUES ($1, $2, $3, $4)
       ON CONFLICT (org_id, session_id, kind) DO UPDATE SET detail = EXCLUDED.detail, updated_at = now()`,
      // PostgreSQL text takes no NUL.
      [orgId, sessionId, kind, detail.replaceAll(String.fromCharCode(0), '').slice(0, DETAIL_MAX)],
    );
  }

  /** Clears the conversation's items of these kinds (answers how many were set). */
  async clear(
    orgId: string,
    sessionId: string,
    kinds: readonly ConversationAttentionKind[],
  ): Promise<number> {
    if (kinds.length === 0) return 0;
    const rows = await this.db.query<{ kind: string }>(
      `DELETE FROM attention_items WHERE org_id = $1 AND session_id = $2 AND kind = ANY($3::text[])
       RETURNING kind`,
      [orgId, sessionId, [...kinds]],
    );
    return rows.length;
  }

  /** One organization's items, newest first (without stale `step_retrying` items: see LIVE). */
  async list(orgId: string, limit = 1_000): Promise<AttentionItem[]> {
    const rows = await this.db.query<Row>(
      `SELECT org_id, session_id, kind, since, detail, updated_at FROM attention_items
       WHERE org_id = $1 AND ${LIVE} ORDER BY since DESC LIMIT $2`,
      [orgId, limit],
    );
    return rows.map(toItem);
  }

  /** Every organization's items, newest first (the operator's list). */
  async listAll(limit = 1_000): Promise<AttentionItem[]> {
    const rows = await this.db.query<Row>(
      `SELECT org_id, session_id, kind, since, detail, updated_at FROM attention_items
       WHERE ${LIVE} ORDER BY since DESC LIMIT $1`,
      [limit],
    );
    return rows.map(toItem);
  }

  /**
   * What the organization-level kinds are computed from, for one organization or every one, in
   * four set-based reads (not four per organization): the Creatio webhook calls by outcome, a case
   * mapped before `quietSince`, and the refused OpenCX events waiting (last seen after
   * `refusedSince`) with those dropped.
   */
  async orgSignals(o: {
    orgId?: string;
    quietSince: Date;
    refusedSince: Date;
  }): Promise<Map<string, OrgSignals>> {
    const one = o.orgId !== undefined;
    const [orgs, calls, old, refused] = await Promise.all([
      this.db.query<{ org_id: string }>(
        one ? 'SELECT org_id FROM org_settings WHERE org_id = $1' : 'SELECT org_id FROM org_settings',
        one ? [o.orgId] : [],
      ),
      this.db.query<{
        org_id: string;
        outcome: WebhookCallOutcome;
        count: string | number;
        last_at: Date | string;
        last_reason: string | null;
      }>(
        `SELECT org_id, outcome, count, last_at, last_reason FROM creatio_webhook_calls${one ? ' WHERE org_id = $1' : ''}`,
        one ? [o.orgId] : [],
      ),
      // Per organization, the first case found mapped before then (the case map's primary key).
      this.db.query<{ org_id: string; at: Date | string | null }>(
        `SELECT s.org_id, (SELECT c.created_at FROM case_sessions c
                            WHERE c.org_id = s.org_id AND c.created_at < $1 LIMIT 1) AS at
         FROM org_settings s${one ? ' WHERE s.org_id = $2' : ''}`,
        one ? [o.quietSince, o.orgId] : [o.quietSince],
      ),
      readRejectedSummaries(this.db, { ...(one && { orgId: o.orgId }), since: o.refusedSince }),
    ]);
    const out = new Map<string, OrgSignals>();
    for (const r of orgs)
      out.set(r.org_id, { calls: [], oldCaseAt: null, refused: { groups: [], dropped: null } });
    for (const r of calls) {
      out.get(r.org_id)?.calls.push({
        outcome: r.outcome,
        count: Number(r.count),
        lastAt: iso(r.last_at),
        lastReason: r.last_reason,
      });
    }
    for (const r of old) {
      const s = out.get(r.org_id);
      if (s && r.at) s.oldCaseAt = iso(r.at);
    }
    for (const [orgId, r] of refused) {
      const sig = out.get(orgId);
      if (sig) sig.refused = r;
    }
    return out;
  }

  /** How many conversations need attention, by kind (of one organization, or all). */
  async counts(orgId?: string): Promise<Record<ConversationAttentionKind, number>> {
    const rows = await this.db.query<{ kind: ConversationAttentionKind; n: string | number }>(
      orgId === undefined
        ? `SELECT kind, count(*) AS n FROM attention_items WHERE ${LIVE} GROUP BY kind`
        : `SELECT kind, count(*) AS n FROM attention_items WHERE org_id = $1 AND ${LIVE} GROUP BY kind`,
      orgId === undefined ? [] : [orgId],
    );
    const out = Object.fromEntries(CONVERSATION_ATTENTION_KINDS.map((k) => [k, 0])) as Record<
      ConversationAttentionKind,
      number
    >;
    for (const r of rows) if (r.kind in out) out[r.kind] = Number(r.n);
    return out;
  }
}
