import type { Db } from './db';
import type { RejectedEventGroup } from './index';

/** What waits for a replay of an organization's refused OpenCX events, and what was dropped. */
export interface RejectedEventSummary {
  groups: RejectedEventGroup[];
  dropped: { count: number; lastAt: string } | null;
}

const iso = (d: Date | string) => new Date(d).toISOString();

/**
 * Refused OpenCX events waiting for a replay (last seen from `since` on), grouped by event, field
 * and code, and those dropped unreplayed, for one organization or every one, in two set-based
 * reads. Organizations with nothing refused are absent from the map.
 */
export async function readRejectedSummaries(
  db: Db,
  o: { orgId?: string; since: Date },
): Promise<Map<string, RejectedEventSummary>> {
  const one = o.orgId !== undefined;
  const [groups, dropped] = await Promise.all([
    db.query<{
      org_id: string;
      event: string;
      field: string | null;
      code: string;
      n: string | number;
      since: Date | string;
      last_at: Date | string;
    }>(
      `SELECT org_id, event, field, code, count(*) AS n, min(received_at) AS since, max(last_at) AS last_at
       FROM opencx_rejected_events
       WHERE replayed_at IS NULL AND last_at >= $1${one ? ' AND org_id = $2' : ''}
       GROUP BY org_id, event, field, code ORDER BY min(received_at), event`,
      one ? [o.since, o.orgId] : [o.since],
    ),
    db.query<{ org_id: string; count: string | number; last_at: Date | string }>(
      `SELECT org_id, count, last_at FROM opencx_rejected_dropped${one ? ' WHERE org_id = $1' : ''}`,
      one ? [o.orgId] : [],
    ),
  ]);
  const out = new Map<string, RejectedEventSummary>();
  const of = (orgId: string) => {
    let s = out.get(orgId);
    if (!s) out.set(orgId, (s = { groups: [], dropped: null }));
    return s;
  };
  for (const r of groups) {
    of(r.org_id).groups.push({
      event: r.event,
      field: r.field,
      code: r.code,
      count: Number(r.n),
      since: iso(r.since),
      lastAt: iso(r.last_at),
    });
  }
  for (const r of dropped) of(r.org_id).dropped = { count: Number(r.count), lastAt: iso(r.last_at) };
  return out;
}
