import type { Db } from './db';

/** Append-only: never edit a migration that has shipped; add a new one. */
export const MIGRATIONS: { id: number; name: string; sql: string[] }[] = [
  {
    id: 1,
    name: 'org settings and case map',
    sql: [
      `CREATE TABLE org_settings (
         org_id text PRIMARY KEY,
         settings jsonb NOT NULL,
         secrets jsonb NOT NULL,
         webhook_token_hash text NOT NULL UNIQUE,
         created_at timestamptz NOT NULL DEFAULT now(),
         updated_at timestamptz NOT NULL DEFAULT now()
       )`,
      `CREATE TABLE case_sessions (
         org_id text NOT NULL,
         case_id uuid NOT NULL,
         session_id text NOT NULL,
         workflow_id text NOT NULL,
         created_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (org_id, case_id)
       )`,
      `CREATE UNIQUE INDEX case_sessions_session ON case_sessions (org_id, session_id)`,
    ],
  },
  {
    id: 2,
    name: 'webhook deliveries seen',
    sql: [
      `CREATE TABLE webhook_deliveries (
         org_id text NOT NULL,
         source text NOT NULL,
         delivery_id text NOT NULL,
         received_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (org_id, source, delivery_id)
       )`,
      `CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at)`,
    ],
  },
  {
    id: 3,
    name: 'inbox of Creatio webhook calls',
    sql: [
      `CREATE TABLE creatio_inbox (
         id bigserial PRIMARY KEY,
         org_id text NOT NULL,
         workflow_id text NOT NULL,
         kind text NOT NULL,
         event_type text NOT NULL,
         received_at timestamptz NOT NULL DEFAULT now()
       )`,
      `CREATE INDEX creatio_inbox_workflow ON creatio_inbox (workflow_id, id)`,
    ],
  },
  {
    id: 4,
    name: 'agent-reply filter: outgoing Email only by default',
    sql: [
      // The first release's default (Email + Task) sent internal Task notes to customers.
      `UPDATE org_settings
          SET settings = jsonb_set(
                jsonb_set(settings, '{agentReplyFilter}', '{"activityTypes":["Email"],"activityCategories":[]}'::jsonb),
                '{notices}',
                COALESCE(settings->'notices', '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
                  'code', 'agent_reply_filter_migrated',
                  'field', 'agentReplyFilter.activityTypes',
                  'message', 'The agent-reply filter was the old default (Email and Task) and is now outgoing Email only: Task activities are internal notes and no longer reach customers. To send Tasks as replies, list "Task" explicitly and save.'))),
              updated_at = now()
        WHERE settings->'agentReplyFilter' = '{"activityTypes":["Email","Task"],"activityCategories":[]}'::jsonb`,
    ],
  },
  {
    id: 5,
    name: 'events a conversation spilled at continue-as-new',
    sql: [
      `CREATE TABLE conversation_spill (
         workflow_id text NOT NULL,
         chunk integer NOT NULL,
         payload text NOT NULL,
         created_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (workflow_id, chunk)
       )`,
    ],
  },
  {
    id: 6,
    name: 'worker processes alive, which share the call limits',
    sql: [
      `CREATE TABLE worker_processes (
         process_id text PRIMARY KEY,
         seen_at timestamptz NOT NULL DEFAULT now()
       )`,
    ],
  },
  {
    id: 7,
    name: 'Creatio webhook calls per organization, and retired webhook tokens (diagnose)',
    sql: [
      `CREATE TABLE retired_webhook_tokens (
         token_hash text PRIMARY KEY,
         org_id text NOT NULL,
         retired_at timestamptz NOT NULL DEFAULT now()
       )`,
      `CREATE TABLE creatio_webhook_calls (
         org_id text NOT NULL,
         outcome text NOT NULL,
         count bigint NOT NULL DEFAULT 1,
         last_at timestamptz NOT NULL DEFAULT now(),
         last_reason text,
         PRIMARY KEY (org_id, outcome)
       )`,
    ],
  },
  {
    id: 8,
    name: 'probe cases of Test & Save, waiting for the business processes to call',
    sql: [
      `CREATE TABLE process_probes (
         case_id text PRIMARY KEY,
         org_id text NOT NULL,
         created_at timestamptz NOT NULL DEFAULT now(),
         agent_reply_at timestamptz,
         closure_at timestamptz
       )`,
    ],
  },
  {
    id: 9,
    name: 'signed OpenCX events refused by validation, kept for replay',
    sql: [
      // payload: the request body as received, sealed (it holds message text and contact details).
      // One row per delivery: a redelivery of the same webhook-id counts an attempt.
      `CREATE TABLE opencx_rejected_events (
         org_id text NOT NULL,
         webhook_id text NOT NULL,
         event text NOT NULL,
         field text,
         code text NOT NULL,
         payload text NOT NULL,
         attempts integer NOT NULL DEFAULT 1,
         received_at timestamptz NOT NULL DEFAULT now(),
         last_at timestamptz NOT NULL DEFAULT now(),
         replayed_at timestamptz,
         PRIMARY KEY (org_id, webhook_id)
       )`,
      `CREATE INDEX opencx_rejected_events_waiting ON opencx_rejected_events (org_id, received_at)
         WHERE replayed_at IS NULL`,
    ],
  },
  {
    id: 10,
    name: 'pace of the calls to a remote per API key, shared by every worker process',
    sql: [
      // One row per paced key (a hash of the API key, never the key). GCRA: `tat` is the
      // theoretical arrival time of the next call; each reservation takes the slot at
      // greatest(tat, now()) and moves `tat` one interval on. `slot_start`: the slot the last
      // reservation got (read back by its caller). `per_second`: the rate right after the last
      // slow-down (`slowed_at`), recovering from there. `paused_until`: the end of the latest
      // Retry-After; `shift_ms`: every pause added up, by which calls already waiting move too.
      `CREATE TABLE call_pace (
         key_hash text PRIMARY KEY,
         tat timestamptz NOT NULL,
         slot_start timestamptz NOT NULL,
         per_second double precision NOT NULL,
         slowed_at timestamptz NOT NULL DEFAULT 'epoch',
         paused_until timestamptz NOT NULL DEFAULT 'epoch',
         shift_ms double precision NOT NULL DEFAULT 0,
         updated_at timestamptz NOT NULL DEFAULT now()
       )`,
    ],
  },
  {
    id: 11,
    name: 'OpenCX organization of each organization; refused OpenCX events bounded; unmapped OpenCX organizations',
    sql: [
      // The OpenCX organization_id whose events the organization receives (by default its own id):
      // one organization each, looked up by the webhook route.
      `ALTER TABLE org_settings ADD COLUMN opencx_org_id text`,
      `UPDATE org_settings SET opencx_org_id = org_id`,
      `ALTER TABLE org_settings ALTER COLUMN opencx_org_id SET NOT NULL`,
      `CREATE UNIQUE INDEX org_settings_opencx_org ON org_settings (opencx_org_id)`,
      // Refused events are deleted 30 days after their last delivery.
      `CREATE INDEX opencx_rejected_events_last ON opencx_rejected_events (last_at)`,
      // Refused events dropped unreplayed because their organization had too many waiting.
      `CREATE TABLE opencx_rejected_dropped (
         org_id text PRIMARY KEY,
         count bigint NOT NULL DEFAULT 0,
         last_at timestamptz NOT NULL DEFAULT now()
       )`,
      // Events whose organization_id no organization receives (answered 401), counted per id.
      `CREATE TABLE opencx_unmapped_orgs (
         opencx_org_id text PRIMARY KEY,
         count bigint NOT NULL DEFAULT 0,
         first_at timestamptz NOT NULL DEFAULT now(),
         last_at timestamptz NOT NULL DEFAULT now()
       )`,
      `CREATE INDEX opencx_unmapped_orgs_last ON opencx_unmapped_orgs (last_at)`,
    ],
  },
  {
    id: 12,
    name: 'agent replies delivered, for the life of the conversation',
    sql: [
      // One row per Creatio activity sent to the customer: a resumed run (after a close and a
      // reopen) or a worker that lost its cache never sends it again. Kept as long as the case map.
      `CREATE TABLE delivered_replies (
         org_id text NOT NULL,
         activity_id text NOT NULL,
         case_id text NOT NULL DEFAULT '',
         session_id text NOT NULL,
         delivered_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (org_id, activity_id)
       )`,
    ],
  },
  {
    id: 13,
    name: 'agent replies whose send was started',
    sql: [
      // 'sending': the send to OpenCX was started (its answer may be lost); 'delivered': it was
      // answered. A retry that cannot ask OpenCX decides from this (src/activities/agent-replies.ts).
      `ALTER TABLE delivered_replies ADD COLUMN state text NOT NULL DEFAULT 'delivered'`,
    ],
  },
  {
    id: 16,
    name: 'organization admin tokens and the audit log',
    sql: [
      // An organization's own admin tokens: only their hash is kept (the token is shown once).
      `CREATE TABLE org_admin_tokens (
         id text PRIMARY KEY,
         org_id text NOT NULL,
         token_hash text NOT NULL UNIQUE,
         label text NOT NULL DEFAULT '',
         created_at timestamptz NOT NULL DEFAULT now(),
         revoked_at timestamptz
       )`,
      `CREATE INDEX org_admin_tokens_org ON org_admin_tokens (org_id)`,
      // Who changed what, per organization (never a secret).
      `CREATE TABLE audit_log (
         id bigserial PRIMARY KEY,
         org_id text NOT NULL,
         actor text NOT NULL,
         action text NOT NULL,
         detail text NOT NULL DEFAULT '{}',
         at timestamptz NOT NULL DEFAULT now()
       )`,
      `CREATE INDEX audit_log_org ON audit_log (org_id, id)`,
    ],
  },
  {
    id: 19,
    name: 'conversations that need attention',
    sql: [
      // One row per open attention item of a conversation (src/store/attention.ts): written where the
      // fact is known (a parked step, an activity that keeps failing, AI fields left blank, a closure
      // that could not reach OpenCX) and deleted when it no longer holds. `since` is the first time.
      `CREATE TABLE attention_items (
         org_id text NOT NULL,
         session_id text NOT NULL,
         kind text NOT NULL,
         since timestamptz NOT NULL DEFAULT now(),
         detail text NOT NULL DEFAULT '',
         updated_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (org_id, session_id, kind)
       )`,
      // One organization's items, newest first; and all of them, newest first (the operator's list).
      `CREATE INDEX attention_items_org_since ON attention_items (org_id, since DESC)`,
      `CREATE INDEX attention_items_since ON attention_items (since DESC)`,
      // Whether an organization has a case mapped before a time (a business process not calling).
      `CREATE INDEX case_sessions_org_created ON case_sessions (org_id, created_at)`,
    ],
  },
];

const LOCK_ID = 727_274_001;

export async function migrate(db: Db): Promise<number[]> {
  return db.transaction(async (tx) => {
    // Serialises concurrent starts (api and worker processes) on one database.
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_ID]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set(
      (await tx.query<{ id: number }>('SELECT id FROM schema_migrations')).map((r) => Number(r.id)),
    );
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.id)) continue;
      for (const stmt of m.sql) await tx.query(stmt);
      await tx.query('INSERT INTO schema_migrations (id, name) VALUES ($1, $2)', [m.id, m.name]);
      applied.push(m.id);
    }
    return applied;
  });
}
