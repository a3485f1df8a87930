/**
 * The bridge's own store: organization settings (secrets sealed), webhook deliveries, the
 * Creatio inbox, spilled events, worker processes, the case ⇄ session map. Over 300 lines on
 * purpose: one class per database keeps every query and its index in one place to review.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { randomToken, SecretBox, sha256Hex, type EncryptionKey } from '../crypto';
import type { Logger } from '../logger';
import type { OrgSettings } from '../settings/schema';
import type { Notice } from '../settings/url';
import { connectPostgres, openPglite, type Db } from './db';
import { openIn, SEALED, sealIn, type OrgSecretField } from './sealed';
import { readRejectedSummaries, type RejectedEventSummary } from './rejected-summary';

/** An organization's admin token, as listed (never the token). */
export interface OrgToken {
  id: string;
  label: string;
  createdAt: string;
  revokedAt: string | null;
}

export interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  detail: Record<string, unknown>;
}

/** An agent reply's send, by the Creatio activity it comes from. */
export interface ReplyRecord {
  orgId: string;
  activityId: string;
  caseId: string;
  sessionId: string;
}
export { StoreUnavailableError } from './db';
import { migrate } from './migrations';

type PlainSettings = Omit<OrgSettings, 'clientSecret' | 'opencx' | 'afterClose'> & {
  /** Absent in settings saved before it existed: "log". */
  afterClose?: OrgSettings['afterClose'];
  opencx: { apiBaseUrl: string };
  /** Written by data migrations (e.g. a changed default); cleared by the next save. */
  notices?: Notice[];
};

interface SealedSecrets {
  clientSecret: string;
  webhookToken: string;
  opencxApiKey?: string;
  opencxWebhookSecret?: string;
  /** The webhook secret before the last change, still accepted until `previousOpencxWebhookSecretUntil`. */
  previousOpencxWebhookSecret?: string;
  previousOpencxWebhookSecretUntil?: string;
}

export interface StoredOrg {
  orgId: string;
  settings: OrgSettings;
  webhookToken: string;
  /** The OpenCX webhook secret before the last change, accepted until `until` (the rotation overlap). */
  previousWebhookSecret?: { secret: string; until: string };
  updatedAt: Date;
  /** What a migration changed in these settings, until the admin saves them again. */
  notices: Notice[];
}

export interface CaseSession {
  orgId: string;
  caseId: string;
  sessionId: string;
  workflowId: string;
}

/** What came of a call from a Creatio business process, counted per organization for diagnose. */
export type WebhookCallOutcome = 'agent_reply' | 'closure' | 'stale_token' | 'bad_request' | 'no_session';

/** A refused OpenCX event kept for replay, as listed (never with its body). */
export interface RejectedEvent {
  webhookId: string;
  event: string;
  field: string | null;
  code: string;
  attempts: number;
  receivedAt: string;
  lastAt: string;
}

/** Refused OpenCX events of an organization waiting for a replay, grouped by what failed. */
export interface RejectedEventGroup {
  event: string;
  field: string | null;
  code: string;
  count: number;
  since: string;
  lastAt: string;
}

/** Another organization already receives the events of this OpenCX organization. */
export class OpencxOrganizationTakenError extends Error {
  override readonly name = 'OpencxOrganizationTakenError';
  constructor(
    readonly opencxOrgId: string,
    readonly holder: string | undefined,
  ) {
    super(
      `OpenCX organization ${opencxOrgId} is already connected to ${holder ? `bridge organization ${holder}` : 'another bridge organization'}`,
    );
  }
}

const iso = (d: Date | string) => new Date(d).toISOString();

export interface WebhookCalls {
  outcome: WebhookCallOutcome;
  count: number;
  lastAt: string;
  lastReason: string | null;
}

/**
 * Organization settings and the case ⇄ session map. Secrets are sealed with AES-256-GCM before
 * they reach the database; the Creatio webhook token is also kept as a SHA-256 hash so that an
 * incoming call is matched by an indexed lookup rather than by comparing tokens one by one.
 */
export class Store {
  private readonly settingsListeners: ((orgId: string) => void)[] = [];
  /**
   * Refused OpenCX events: at most `perOrg` wait per organization (the oldest are dropped and
   * counted), each deleted `keepDays` after its last delivery. Unmapped OpenCX organizations: the
   * `unmappedIds` most recently seen are kept.
   */
  readonly rejectedEventLimits = { perOrg: 1_000, keepDays: 30, unmappedIds: 1_000 };
  /**
   * How long a rotated credential (a Creatio webhook token, an OpenCX webhook secret) is still
   * accepted beside the new one: the callers switch without a gap (CREDENTIAL_ROTATION_OVERLAP).
   */
  readonly rotation = { overlapMs: 10 * 60_000 };

  constructor(
    readonly db: Db,
    private readonly box: SecretBox,
  ) {}

  /** Calls `fn` after this process changed an organization's settings (caches drop their copy). */
  onSettingsChanged(fn: (orgId: string) => void): void {
    this.settingsListeners.push(fn);
  }

  private settingsChanged(orgId: string): void {
    for (const fn of this.settingsListeners) fn(orgId);
  }

  /**
   * Records this worker process as alive and answers how many are (seen within `aliveMs`): each
   * takes that share of every organization's call limit. Long-gone processes are forgotten.
   */
  async announceWorkerProcess(processId: string, aliveMs: number): Promise<number> {
    await this.db.query(
      `INSERT INTO worker_processes (process_id, seen_at) VALUES ($1, now())
       ON CONFLICT (process_id) DO UPDATE SET seen_at = now()`,
      [processId],
    );
    await this.db.query(`DELETE FROM worker_processes WHERE seen_at < now() - interval '1 hour'`);
    const rows = await this.db.query<{ n: string | number }>(
      `SELECT count(*) AS n FROM worker_processes WHERE seen_at > now() - make_interval(secs => $1)`,
      [aliveMs / 1000],
    );
    return Number(rows[0]?.n ?? 1);
  }

  async retireWorkerProcess(processId: string): Promise<void> {
    await this.db.query('DELETE FROM worker_processes WHERE process_id = $1', [processId]);
  }

  async ping(): Promise<void> {
    await this.db.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  async getOrg(orgId: string): Promise<StoredOrg | undefined> {
    return this.orgWhere('org_id', orgId);
  }

  /** The organization that receives the events of this OpenCX organization_id (indexed). */
  async getOrgByOpencxOrganization(opencxOrgId: string): Promise<StoredOrg | undefined> {
    return this.orgWhere('opencx_org_id', opencxOrgId);
  }

  /** Which organization receives this OpenCX organization's events (no secret opened). */
  async opencxOrganizationHolder(opencxOrgId: string): Promise<string | undefined> {
    const rows = await this.db.query<{ org_id: string }>(
      'SELECT org_id FROM org_settings WHERE opencx_org_id = $1',
      [opencxOrgId],
    );
    return rows[0]?.org_id;
  }

  private async orgWhere(column: 'org_id' | 'opencx_org_id', value: string): Promise<StoredOrg | undefined> {
    const rows = await this.db.query<{
      org_id: string;
      opencx_org_id: string;
      settings: PlainSettings;
      secrets: SealedSecrets;
      updated_at: Date;
    }>(`SELECT org_id, opencx_org_id, settings, secrets, updated_at FROM org_settings WHERE ${column} = $1`, [
      value,
    ]);
    const row = rows[0];
    return row && this.unseal(row.org_id, row.opencx_org_id, row.settings, row.secrets, row.updated_at);
  }

  /** When the organization's settings last changed (cheap: no secrets read or opened). */
  async settingsVersion(orgId: string): Promise<Date | undefined> {
    const rows = await this.db.query<{ updated_at: Date }>(
      'SELECT updated_at FROM org_settings WHERE org_id = $1',
      [orgId],
    );
    return rows[0]?.updated_at;
  }

  async listOrgIds(): Promise<string[]> {
    const rows = await this.db.query<{ org_id: string }>('SELECT org_id FROM org_settings ORDER BY org_id');
    return rows.map((r) => r.org_id);
  }

  async findOrgByWebhookToken(token: string): Promise<string | undefined> {
    const rows = await this.db.query<{ org_id: string }>(
      'SELECT org_id FROM org_settings WHERE webhook_token_hash = $1',
      [sha256Hex(token)],
    );
    if (rows[0]) return rows[0].org_id;
    // A token rotated less than the overlap ago still works (the processes switch without a gap).
    const retiring = await this.db.query<{ org_id: string }>(
      `SELECT org_id FROM retired_webhook_tokens
        WHERE token_hash = $1 AND retired_at > now() - make_interval(secs => $2)`,
      [sha256Hex(token), this.rotation.overlapMs / 1000],
    );
    return retiring[0]?.org_id;
  }

  /**
   * Inserts or replaces an organization's settings; a new organization gets a webhook token.
   * OpencxOrganizationTakenError when another organization receives the same OpenCX organization.
   */
  async saveOrg(orgId: string, settings: OrgSettings): Promise<StoredOrg> {
    const existing = await this.getOrg(orgId);
    const webhookToken = existing?.webhookToken ?? randomToken();
    const { clientSecret, opencx, ...rest } = settings;
    const opencxOrgId = opencx.organizationId ?? orgId;
    const plain: PlainSettings = { ...rest, opencx: { apiBaseUrl: opencx.apiBaseUrl } };
    // A changed webhook secret: the old one stays valid for the overlap (an old one still within
    // its own overlap is kept if nothing newer replaced it).
    const oldSecret = existing?.settings.opencx.webhookSecret;
    const previous =
      oldSecret && opencx.webhookSecret && oldSecret !== opencx.webhookSecret
        ? { secret: oldSecret, until: new Date(Date.now() + this.rotation.overlapMs).toISOString() }
        : existing?.previousWebhookSecret && Date.parse(existing.previousWebhookSecret.until) > Date.now()
          ? existing.previousWebhookSecret
          : undefined;
    const seal = (value: string, field: OrgSecretField) =>
      sealIn(this.box, SEALED.orgSecrets, { org_id: orgId }, value, field);
    const secrets: SealedSecrets = {
      ...(previous && {
        previousOpencxWebhookSecret: seal(previous.secret, 'previousOpencxWebhookSecret'),
        previousOpencxWebhookSecretUntil: previous.until,
      }),
      clientSecret: seal(clientSecret, 'clientSecret'),
      webhookToken: seal(webhookToken, 'webhookToken'),
      ...(opencx.apiKey && { opencxApiKey: seal(opencx.apiKey, 'opencxApiKey') }),
      ...(opencx.webhookSecret && { opencxWebhookSecret: seal(opencx.webhookSecret, 'opencxWebhookSecret') }),
    };
    let rows: { updated_at: Date }[];
    try {
      rows = await this.db.query<{ updated_at: Date }>(
        `INSERT INTO org_settings (org_id, settings, secrets, webhook_token_hash, opencx_org_id)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (org_id) DO UPDATE
           SET settings = EXCLUDED.settings, secrets = EXCLUDED.secrets,
               webhook_token_hash = EXCLUDED.webhook_token_hash,
               opencx_org_id = EXCLUDED.opencx_org_id, updated_at = now()
         RETURNING updated_at`,
        [orgId, JSON.stringify(plain), JSON.stringify(secrets), sha256Hex(webhookToken), opencxOrgId],
      );
    } catch (err) {
      const e = err as { code?: unknown; constraint?: unknown; message?: unknown };
      const onMapping =
        e.constraint === 'org_settings_opencx_org' || String(e.message).includes('org_settings_opencx_org');
      if (e.code === '23505' && onMapping) {
        throw new OpencxOrganizationTakenError(opencxOrgId, await this.opencxOrganizationHolder(opencxOrgId));
      }
      throw err;
    }
    // Its events are no longer "from an OpenCX organization nobody receives".
    await this.db.query('DELETE FROM opencx_unmapped_orgs WHERE opencx_org_id = $1', [opencxOrgId]);
    this.settingsChanged(orgId);
    return {
      orgId,
      settings,
      webhookToken,
      updatedAt: rows[0]!.updated_at,
      notices: [],
      ...(previous && { previousWebhookSecret: previous }),
    };
  }

  /** Replaces the webhook token; the old one stops matching as soon as this returns. */
  async rotateWebhookToken(orgId: string): Promise<string | undefined> {
    const token = randomToken();
    // The old token is kept (hashed) so that a process still calling it is named in diagnose.
    await this.db.query(
      `INSERT INTO retired_webhook_tokens (token_hash, org_id)
       SELECT webhook_token_hash, org_id FROM org_settings WHERE org_id = $1
       ON CONFLICT (token_hash) DO NOTHING`,
      [orgId],
    );
    const rows = await this.db.query<{ org_id: string }>(
      `UPDATE org_settings
         SET secrets = jsonb_set(secrets, '{webhookToken}', to_jsonb($2::text)),
             webhook_token_hash = $3, updated_at = now()
       WHERE org_id = $1 RETURNING org_id`,
      [
        orgId,
        sealIn(this.box, SEALED.orgSecrets, { org_id: orgId }, token, 'webhookToken'),
        sha256Hex(token),
      ],
    );
    this.settingsChanged(orgId);
    return rows.length > 0 ? token : undefined;
  }

  /** The organization a retired (rotated) webhook token belonged to. */
  async findOrgByRetiredToken(token: string): Promise<string | undefined> {
    const rows = await this.db.query<{ org_id: string }>(
      'SELECT org_id FROM retired_webhook_tokens WHERE token_hash = $1',
      [sha256Hex(token)],
    );
    return rows[0]?.org_id;
  }

  /** Counts a Creatio webhook call of the organization by outcome, with the last time and reason. */
  async recordCreatioWebhookCall(orgId: string, outcome: WebhookCallOutcome, reason?: string): Promise<void> {
    await this.db.query(
      `INSERT INTO creatio_webhook_calls (org_id, outcome, last_reason) VALUES ($1, $2, $3)
       ON CONFLICT (org_id, outcome) DO UPDATE
         SET count = creatio_webhook_calls.count + 1, last_at = now(), last_reason = EXCLUDED.last_reason`,
      // A reason quotes what the caller sent: PostgreSQL text takes no NUL.
      [orgId, outcome, reason?.replaceAll(String.fromCharCode(0), '').slice(0, 500) ?? null],
    );
  }

  async creatioWebhookCalls(orgId: string): Promise<WebhookCalls[]> {
    const rows = await this.db.query<{
      outcome: WebhookCallOutcome;
      count: string;
      last_at: Date;
      last_reason: string | null;
    }>('SELECT outcome, count, last_at, last_reason FROM creatio_webhook_calls WHERE org_id = $1', [orgId]);
    return rows.map((r) => ({
      outcome: r.outcome,
      count: Number(r.count),
      lastAt: new Date(r.last_at).toISOString(),
      lastReason: r.last_reason,
    }));
  }

  /** A probe case of Test & Save (src/settings/process-probe.ts) waits for the processes' calls. */
  async addProcessProbe(orgId: string, caseId: string): Promise<void> {
    await this.db.query('INSERT INTO process_probes (case_id, org_id) VALUES ($1, $2)', [caseId, orgId]);
  }

  /** Marks a process call for a probe case; false when the case is not a probe of this organization. */
  async markProcessProbe(orgId: string, caseId: string, kind: 'agent_reply' | 'closure'): Promise<boolean> {
    const column = kind === 'agent_reply' ? 'agent_reply_at' : 'closure_at';
    const rows = await this.db.query(
      `UPDATE process_probes SET ${column} = now() WHERE case_id = $1 AND org_id = $2 RETURNING case_id`,
      [caseId, orgId],
    );
    return rows.length > 0;
  }

  async processProbe(
    caseId: string,
  ): Promise<{ agentReplyAt: string | null; closureAt: string | null } | undefined> {
    const rows = await this.db.query<{ agent_reply_at: Date | null; closure_at: Date | null }>(
      'SELECT agent_reply_at, closure_at FROM process_probes WHERE case_id = $1',
      [caseId],
    );
    const r = rows[0];
    const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
    return r && { agentReplyAt: iso(r.agent_reply_at), closureAt: iso(r.closure_at) };
  }

  async dropProcessProbe(caseId: string): Promise<void> {
    await this.db.query('DELETE FROM process_probes WHERE case_id = $1', [caseId]);
  }

  /** True when Temporal already has this webhook delivery (it was recorded after the hand-over). */
  async deliverySeen(orgId: string, source: string, deliveryId: string): Promise<boolean> {
    const rows = await this.db.query(
      'SELECT 1 FROM webhook_deliveries WHERE org_id = $1 AND source = $2 AND delivery_id = $3',
      [orgId, source, deliveryId],
    );
    return rows.length > 0;
  }

  /**
   * Records webhook deliveries that Temporal has, in one statement, so that a redelivery is
   * answered "duplicate". Ids older than a week are forgotten, well past any sender's retry window.
   */
  async recordDeliveries(rows: { orgId: string; source: string; deliveryId: string }[]): Promise<void> {
    if (rows.length === 0) return;
    const values = rows.map((_, i) => `($${i * 3 + 1}, $${i * 3 + 2}, $${i * 3 + 3})`).join(', ');
    await this.db.query(
      `INSERT INTO webhook_deliveries (org_id, source, delivery_id) VALUES ${values} ON CONFLICT DO NOTHING`,
      rows.flatMap((r) => [r.orgId, r.source, r.deliveryId]),
    );
    if (Math.random() < 0.001 * rows.length) {
      await this.db.query(`DELETE FROM webhook_deliveries WHERE received_at < now() - interval '7 days'`);
    }
  }

  /** Records a Creatio webhook call for its conversation; committed before the call is answered. */
  async addInbox(e: { orgId: string; workflowId: string; kind: string; eventType: string }): Promise<void> {
    await this.db.query(
      'INSERT INTO creatio_inbox (org_id, workflow_id, kind, event_type) VALUES ($1, $2, $3, $4)',
      [e.orgId, e.workflowId, e.kind, e.eventType],
    );
  }

  /** The calls waiting for a conversation, oldest first. */
  async inboxFor(workflowId: string): Promise<{ id: string; kind: string; eventType: string }[]> {
    const rows = await this.db.query<{ id: string; kind: string; event_type: string }>(
      'SELECT id, kind, event_type FROM creatio_inbox WHERE workflow_id = $1 ORDER BY id LIMIT 1000',
      [workflowId],
    );
    return rows.map((r) => ({ id: String(r.id), kind: r.kind, eventType: r.event_type }));
  }

  async removeInbox(workflowId: string, upToId: string): Promise<void> {
    await this.db.query('DELETE FROM creatio_inbox WHERE workflow_id = $1 AND id <= $2', [
      workflowId,
      upToId,
    ]);
  }

  /** Conversations with calls older than `olderThanMs` still waiting (a crash or an outage left them). */
  async staleInboxWorkflows(olderThanMs: number): Promise<string[]> {
    const rows = await this.db.query<{ workflow_id: string }>(
      `SELECT DISTINCT workflow_id FROM creatio_inbox WHERE received_at < now() - ($1::int * interval '1 millisecond') LIMIT 500`,
      [olderThanMs],
    );
    return rows.map((r) => r.workflow_id);
  }

  /**
   * Events a conversation could not carry across continue-as-new, sealed like the secrets (they
   * hold message text). Written before the run ends; a chunk is rewritten identically on a retry.
   */
  async putSpill(workflowId: string, chunk: number, json: string): Promise<void> {
    await this.db.query(
      `INSERT INTO conversation_spill (workflow_id, chunk, payload) VALUES ($1, $2, $3)
       ON CONFLICT (workflow_id, chunk) DO UPDATE SET payload = EXCLUDED.payload`,
      [workflowId, chunk, sealIn(this.box, SEALED.spill, { workflow_id: workflowId, chunk }, json)],
    );
  }

  async getSpill(workflowId: string, chunk: number): Promise<string | undefined> {
    const rows = await this.db.query<{ payload: string }>(
      'SELECT payload FROM conversation_spill WHERE workflow_id = $1 AND chunk = $2',
      [workflowId, chunk],
    );
    const r = rows[0];
    return r && openIn(this.box, SEALED.spill, { workflow_id: workflowId, chunk }, r.payload);
  }

  /** Which of these chunks are stored. */
  async spillChunks(workflowId: string, chunks: number[]): Promise<number[]> {
    if (chunks.length === 0) return [];
    const rows = await this.db.query<{ chunk: number }>(
      'SELECT chunk FROM conversation_spill WHERE workflow_id = $1 AND chunk = ANY($2::int[])',
      [workflowId, chunks],
    );
    return rows.map((r) => Number(r.chunk));
  }

  async dropSpill(workflowId: string, chunks: number[]): Promise<void> {
    if (chunks.length === 0) return;
    await this.db.query('DELETE FROM conversation_spill WHERE workflow_id = $1 AND chunk = ANY($2::int[])', [
      workflowId,
      chunks,
    ]);
  }

  async putCaseSession(m: CaseSession): Promise<void> {
    await this.db.query(
      `INSERT INTO case_sessions (org_id, case_id, session_id, workflow_id) VALUES ($1, $2, $3, $4)
       ON CONFLICT (org_id, case_id) DO NOTHING`,
      [m.orgId, m.caseId, m.sessionId, m.workflowId],
    );
  }

  async findCaseBySession(orgId: string, sessionId: string): Promise<CaseSession | undefined> {
    const rows = await this.db.query<{ case_id: string; workflow_id: string }>(
      'SELECT case_id, workflow_id FROM case_sessions WHERE org_id = $1 AND session_id = $2',
      [orgId, sessionId],
    );
    const r = rows[0];
    return r && { orgId, caseId: r.case_id, sessionId, workflowId: r.workflow_id };
  }

  /** A new admin token for one organization; the token itself is returned once, only its hash kept. */
  async createOrgToken(
    orgId: string,
    label: string,
  ): Promise<{ id: string; token: string; createdAt: string }> {
    const id = `tok_${randomToken(9)}`;
    const token = `org_${randomToken(32)}`;
    const rows = await this.db.query<{ created_at: Date }>(
      `INSERT INTO org_admin_tokens (id, org_id, token_hash, label) VALUES ($1, $2, $3, $4) RETURNING created_at`,
      [id, orgId, sha256Hex(token), label],
    );
    return { id, token, createdAt: rows[0]!.created_at.toISOString() };
  }

  async orgTokens(orgId: string): Promise<OrgToken[]> {
    const rows = await this.db.query<{
      id: string;
      label: string;
      created_at: Date;
      revoked_at: Date | null;
    }>(
      'SELECT id, label, created_at, revoked_at FROM org_admin_tokens WHERE org_id = $1 ORDER BY created_at, id',
      [orgId],
    );
    return rows.map((r) => ({
      id: r.id,
      label: r.label,
      createdAt: r.created_at.toISOString(),
      revokedAt: r.revoked_at ? r.revoked_at.toISOString() : null,
    }));
  }

  /** Revokes a token of the organization; false when it has no such token. */
  async revokeOrgToken(orgId: string, id: string): Promise<boolean> {
    const rows = await this.db.query<{ id: string }>(
      `UPDATE org_admin_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE org_id = $1 AND id = $2 RETURNING id`,
      [orgId, id],
    );
    return rows.length > 0;
  }

  /** The organization and id of a token that is not revoked. */
  async findOrgToken(token: string): Promise<{ id: string; orgId: string } | undefined> {
    const rows = await this.db.query<{ id: string; org_id: string }>(
      'SELECT id, org_id FROM org_admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL',
      [sha256Hex(token)],
    );
    const r = rows[0];
    return r && { id: r.id, orgId: r.org_id };
  }

  /** One entry of the organization's audit log: who, what, and the non-secret detail. */
  async audit(
    orgId: string,
    actor: string,
    action: string,
    detail: Record<string, unknown> = {},
  ): Promise<void> {
    await this.db.query('INSERT INTO audit_log (org_id, actor, action, detail) VALUES ($1, $2, $3, $4)', [
      orgId,
      actor,
      action,
      JSON.stringify(detail),
    ]);
  }

  /** The organization's audit log, newest first. */
  async auditLog(orgId: string, limit = 200): Promise<AuditEntry[]> {
    const rows = await this.db.query<{ actor: string; action: string; detail: string; at: Date }>(
      'SELECT actor, action, detail, at FROM audit_log WHERE org_id = $1 ORDER BY id DESC LIMIT $2',
      [orgId, Math.max(1, Math.min(limit, 1000))],
    );
    return rows.map((r) => ({
      at: r.at.toISOString(),
      actor: r.actor,
      action: r.action,
      detail: JSON.parse(r.detail) as Record<string, unknown>,
    }));
  }

  /** Records that a send of an agent reply to OpenCX is starting (its answer may be lost). */
  recordReplyAttempt(r: ReplyRecord): Promise<void> {
    return this.recordReply(r, 'sending');
  }

  /** Records that an agent reply (a Creatio activity) reached the customer: never sent again. */
  recordDeliveredReply(r: ReplyRecord): Promise<void> {
    return this.recordReply(r, 'delivered');
  }

  /** 'sending' never downgrades a reply already delivered; 'delivered' is final. */
  private async recordReply(r: ReplyRecord, state: 'sending' | 'delivered'): Promise<void> {
    await this.db.query(
      `INSERT INTO delivered_replies (org_id, activity_id, case_id, session_id, state) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (org_id, activity_id) DO ${state === 'delivered' ? "UPDATE SET state = 'delivered', delivered_at = now()" : 'NOTHING'}`,
      [r.orgId, r.activityId.toLowerCase(), r.caseId.toLowerCase(), r.sessionId, state],
    );
  }

  /** Which of these activities were already delivered as agent replies (lower-case ids). */
  async deliveredReplies(orgId: string, activityIds: string[]): Promise<Set<string>> {
    if (activityIds.length === 0) return new Set();
    const rows = await this.db.query<{ activity_id: string }>(
      `SELECT activity_id FROM delivered_replies
        WHERE org_id = $1 AND activity_id = ANY($2::text[]) AND state = 'delivered'`,
      [orgId, activityIds.map((id) => id.toLowerCase())],
    );
    return new Set(rows.map((r) => r.activity_id));
  }

  /** Where a reply's send stands: started (`sending`), answered (`delivered`), or never started. */
  async replyState(orgId: string, activityId: string): Promise<'sending' | 'delivered' | undefined> {
    const rows = await this.db.query<{ state: 'sending' | 'delivered' }>(
      'SELECT state FROM delivered_replies WHERE org_id = $1 AND activity_id = $2',
      [orgId, activityId.toLowerCase()],
    );
    return rows[0]?.state;
  }

  async findSessionByCase(orgId: string, caseId: string): Promise<CaseSession | undefined> {
    const rows = await this.db.query<{ case_id: string; session_id: string; workflow_id: string }>(
      'SELECT case_id, session_id, workflow_id FROM case_sessions WHERE org_id = $1 AND case_id = $2',
      [orgId, caseId.toLowerCase()],
    );
    const r = rows[0];
    return r && { orgId, caseId: r.case_id, sessionId: r.session_id, workflowId: r.workflow_id };
  }

  private unseal(
    orgId: string,
    opencxOrgId: string,
    plain: PlainSettings,
    secrets: SealedSecrets,
    updatedAt: Date,
  ): StoredOrg {
    const open = (value: string | undefined, field: OrgSecretField) =>
      value === undefined ? undefined : openIn(this.box, SEALED.orgSecrets, { org_id: orgId }, value, field);
    return {
      orgId,
      updatedAt,
      notices: plain.notices ?? [],
      ...(secrets.previousOpencxWebhookSecret &&
        secrets.previousOpencxWebhookSecretUntil && {
          previousWebhookSecret: {
            secret: open(secrets.previousOpencxWebhookSecret, 'previousOpencxWebhookSecret')!,
            until: secrets.previousOpencxWebhookSecretUntil,
          },
        }),
      webhookToken: open(secrets.webhookToken, 'webhookToken')!,
      settings: {
        instanceUrl: plain.instanceUrl,
        identityServiceUrl: plain.identityServiceUrl ?? undefined,
        clientId: plain.clientId,
        defaultCaseOwnerId: plain.defaultCaseOwnerId ?? undefined,
        defaultCaseGroupId: plain.defaultCaseGroupId ?? undefined,
        resolvedStatusId: plain.resolvedStatusId ?? undefined,
        afterClose: plain.afterClose ?? 'log',
        reopenStatusId: plain.reopenStatusId ?? undefined,
        createCaseOnlyOnHandoff: plain.createCaseOnlyOnHandoff,
        agentReplyFilter: plain.agentReplyFilter,
        closureStatusNames: plain.closureStatusNames,
        aiFields: plain.aiFields,
        ...(plain.contactMatching && { contactMatching: plain.contactMatching }),
        ...(plain.verifiedChannels && { verifiedChannels: plain.verifiedChannels }),
        ...(plain.odataPath && { odataPath: plain.odataPath }),
        clientSecret: open(secrets.clientSecret, 'clientSecret')!,
        opencx: {
          apiBaseUrl: plain.opencx.apiBaseUrl,
          apiKey: open(secrets.opencxApiKey, 'opencxApiKey'),
          webhookSecret: open(secrets.opencxWebhookSecret, 'opencxWebhookSecret'),
          ...(opencxOrgId !== orgId && { organizationId: opencxOrgId }),
        },
      },
    };
  }

  /**
   * Keeps a signed OpenCX event that failed validation, for replay once the bridge reads its shape
   * (docs/opencx-reference.md). The body is sealed like the secrets; a redelivery of the same
   * webhook-id counts an attempt and keeps the latest body. Past `rejectedEventLimits.perOrg`
   * waiting events the oldest are dropped (answered as `dropped`, counted per organization), and
   * events whose last delivery is older than `keepDays` are deleted.
   */
  async keepRejectedEvent(e: {
    orgId: string;
    webhookId: string;
    event: string;
    field: string | undefined;
    code: string;
    body: string;
  }): Promise<{ dropped: number }> {
    await this.db.query(
      `INSERT INTO opencx_rejected_events (org_id, webhook_id, event, field, code, payload)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (org_id, webhook_id) DO UPDATE SET
         event = EXCLUDED.event, field = EXCLUDED.field, code = EXCLUDED.code, payload = EXCLUDED.payload,
         attempts = opencx_rejected_events.attempts + 1, last_at = now()`,
      [
        e.orgId,
        e.webhookId,
        e.event,
        e.field ?? null,
        e.code,
        sealIn(this.box, SEALED.rejectedEvents, { org_id: e.orgId, webhook_id: e.webhookId }, e.body),
      ],
    );
    const gone = await this.db.query<{ n: string | number }>(
      `WITH gone AS (
         DELETE FROM opencx_rejected_events WHERE org_id = $1 AND replayed_at IS NULL AND webhook_id IN (
           SELECT webhook_id FROM opencx_rejected_events WHERE org_id = $1 AND replayed_at IS NULL
           ORDER BY received_at DESC, webhook_id DESC OFFSET $2)
         RETURNING 1)
       SELECT count(*) AS n FROM gone`,
      [e.orgId, this.rejectedEventLimits.perOrg],
    );
    const dropped = Number(gone[0]?.n ?? 0);
    if (dropped > 0) {
      await this.db.query(
        `INSERT INTO opencx_rejected_dropped (org_id, count) VALUES ($1, $2)
         ON CONFLICT (org_id) DO UPDATE
           SET count = opencx_rejected_dropped.count + EXCLUDED.count, last_at = now()`,
        [e.orgId, dropped],
      );
    }
    await this.pruneRejectedEvents();
    return { dropped };
  }

  /** Deletes refused events (waiting or replayed) whose last delivery is older than `keepDays`. */
  async pruneRejectedEvents(): Promise<void> {
    await this.db.query(
      `DELETE FROM opencx_rejected_events WHERE last_at < now() - make_interval(days => $1)`,
      [this.rejectedEventLimits.keepDays],
    );
  }

  /** Refused OpenCX events of an organization not replayed yet, oldest first, bodies opened. */
  async rejectedEvents(orgId: string, limit = 100): Promise<(RejectedEvent & { body: string })[]> {
    const rows = await this.db.query<RejectedRow>(
      `SELECT webhook_id, event, field, code, attempts, received_at, last_at, replayed_at, payload
       FROM opencx_rejected_events
       WHERE org_id = $1 AND replayed_at IS NULL AND last_at >= now() - make_interval(days => $3)
       ORDER BY received_at, webhook_id LIMIT $2`,
      [orgId, limit, this.rejectedEventLimits.keepDays],
    );
    return rows.map((r) => ({ ...rejectedOf(r), body: this.openRejected(orgId, r) }));
  }

  /** One refused event (waiting or replayed), body opened; undefined when unknown or expired. */
  async rejectedEvent(
    orgId: string,
    webhookId: string,
  ): Promise<(RejectedEvent & { body: string; replayedAt: string | null }) | undefined> {
    const rows = await this.db.query<RejectedRow>(
      `SELECT webhook_id, event, field, code, attempts, received_at, last_at, replayed_at, payload
       FROM opencx_rejected_events
       WHERE org_id = $1 AND webhook_id = $2 AND last_at >= now() - make_interval(days => $3)`,
      [orgId, webhookId, this.rejectedEventLimits.keepDays],
    );
    const r = rows[0];
    return (
      r && {
        ...rejectedOf(r),
        body: this.openRejected(orgId, r),
        replayedAt: r.replayed_at ? iso(r.replayed_at) : null,
      }
    );
  }

  /**
   * What waits for a replay, by event, field and code (for diagnose and the listing), and how many
   * refused events were dropped unreplayed (more than `perOrg` waiting), with when the last was.
   */
  async rejectedEventSummary(orgId: string): Promise<RejectedEventSummary> {
    const since = new Date(Date.now() - this.rejectedEventLimits.keepDays * 86_400_000);
    const all = await readRejectedSummaries(this.db, { orgId, since });
    return all.get(orgId) ?? { groups: [], dropped: null };
  }

  /** A replay that still fails: the event stays waiting, with what fails now. */
  async noteRejectedEventReplay(
    orgId: string,
    webhookId: string,
    failure: { field: string | undefined; code: string },
  ): Promise<void> {
    await this.db.query(
      'UPDATE opencx_rejected_events SET field = $3, code = $4 WHERE org_id = $1 AND webhook_id = $2',
      [orgId, webhookId, failure.field ?? null, failure.code],
    );
  }

  /** Marks refused events as replayed (their events reached the conversation). */
  async markRejectedEventsReplayed(orgId: string, webhookIds: string[]): Promise<void> {
    if (webhookIds.length === 0) return;
    await this.db.query(
      `UPDATE opencx_rejected_events SET replayed_at = now() WHERE org_id = $1 AND webhook_id = ANY($2::text[])`,
      [orgId, webhookIds],
    );
  }

  private openRejected(orgId: string, r: RejectedRow): string {
    return openIn(this.box, SEALED.rejectedEvents, { org_id: orgId, webhook_id: r.webhook_id }, r.payload);
  }

  /**
   * Counts events whose OpenCX organization_id no organization receives (they were answered 401),
   * per id; only the `unmappedIds` most recently seen ids are kept.
   */
  async countUnmappedOpencxOrganizations(counts: { opencxOrgId: string; count: number }[]): Promise<void> {
    if (counts.length === 0) return;
    await this.db.query(
      `INSERT INTO opencx_unmapped_orgs (opencx_org_id, count)
       SELECT * FROM unnest($1::text[], $2::bigint[])
       ON CONFLICT (opencx_org_id) DO UPDATE
         SET count = opencx_unmapped_orgs.count + EXCLUDED.count, last_at = now()`,
      [counts.map((c) => c.opencxOrgId), counts.map((c) => c.count)],
    );
    await this.db.query(
      `DELETE FROM opencx_unmapped_orgs WHERE opencx_org_id IN (
         SELECT opencx_org_id FROM opencx_unmapped_orgs ORDER BY last_at DESC, opencx_org_id OFFSET $1)`,
      [this.rejectedEventLimits.unmappedIds],
    );
  }

  /** OpenCX organizations that sent events no organization receives, most recent first. */
  async unmappedOpencxOrganizations(
    limit = 100,
  ): Promise<{ opencxOrgId: string; count: number; firstSeenAt: string; lastSeenAt: string }[]> {
    const rows = await this.db.query<{
      opencx_org_id: string;
      count: string | number;
      first_at: Date | string;
      last_at: Date | string;
    }>(
      `SELECT u.opencx_org_id, u.count, u.first_at, u.last_at FROM opencx_unmapped_orgs u
       WHERE NOT EXISTS (SELECT 1 FROM org_settings o WHERE o.opencx_org_id = u.opencx_org_id)
       ORDER BY u.last_at DESC, u.opencx_org_id LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({
      opencxOrgId: r.opencx_org_id,
      count: Number(r.count),
      firstSeenAt: iso(r.first_at),
      lastSeenAt: iso(r.last_at),
    }));
  }
}

interface RejectedRow {
  webhook_id: string;
  event: string;
  field: string | null;
  code: string;
  attempts: number;
  received_at: Date | string;
  last_at: Date | string;
  replayed_at: Date | string | null;
  payload: string;
}

function rejectedOf(r: RejectedRow): RejectedEvent {
  return {
    webhookId: r.webhook_id,
    event: r.event,
    field: r.field,
    code: r.code,
    attempts: Number(r.attempts),
    receivedAt: iso(r.received_at),
    lastAt: iso(r.last_at),
  };
}

/**
 * The encryption key: from config when given; otherwise (development only) a key generated once
 * and kept beside the data, with a warning, so that restarts can still read what was stored.
 */
export async function resolveEncryptionKey(
  configured: Buffer | undefined,
  dataDir: string,
  log: Logger,
): Promise<Buffer> {
  if (configured) return configured;
  const file = path.join(dataDir, 'encryption.key');
  try {
    const key = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
    if (key.length === 32) return key;
  } catch {
    // not created yet
  }
  await mkdir(dataDir, { recursive: true });
  const key = randomBytes(32);
  await writeFile(file, key.toString('base64'), { mode: 0o600 });
  log.warn(
    { file },
    'ENCRYPTION_KEY is not set: generated a development key and stored it beside the data; set ENCRYPTION_KEY in production',
  );
  return key;
}

/**
 * Opens the store. `key`: the encryption keys, the first seals and every one opens (a single
 * Buffer is the legacy key, id `k0`).
 */
export async function openStore(opts: {
  databaseUrl: string | undefined;
  dataDir: string | undefined;
  key: Buffer | readonly EncryptionKey[];
  log: Logger;
}): Promise<Store> {
  const db = await openStoreDb(opts);
  return new Store(db, new SecretBox(opts.key));
}

/** The store's database, migrated (also used by `npm run rotate-keys`). */
export async function openStoreDb(opts: {
  databaseUrl: string | undefined;
  dataDir: string | undefined;
  log: Logger;
}): Promise<Db> {
  let db: Db;
  if (opts.databaseUrl) {
    db = await connectPostgres(opts.databaseUrl);
  } else {
    const dir = opts.dataDir && path.join(opts.dataDir, 'pglite');
    if (dir) await mkdir(dir, { recursive: true });
    db = await openPglite(dir);
  }
  const applied = await migrate(db);
  opts.log.info({ store: db.kind, migrationsApplied: applied }, 'store ready');
  return db;
}
