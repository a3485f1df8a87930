/**
 * Every place the store keeps a sealed value, in one list: the store seals and opens only through
 * it (`sealIn` / `openIn`, with the associated data each place binds), and `npm run rotate-keys`
 * re-seals every entry. A new sealed column is added here or it cannot be sealed at all
 * (test/e2e/key-rotation.test.ts checks both that no other code seals and that no sealed value in the
 * database lies outside this list).
 */
import type { SecretBox } from '../crypto';

/** A row's identity, by primary key column. */
export type RowKey = Record<string, string | number>;

export interface SealedColumn {
  table: string;
  column: string;
  /** The primary key: what addresses one value (never secret). */
  key: readonly string[];
  /**
   * Set for a jsonb object column whose named string fields are each sealed (absent fields are
   * allowed); unset for a text column holding one sealed value.
   */
  fields?: readonly string[];
  /** The associated data of a value: binds it to its row (and field). */
  context(row: RowKey, field: string | undefined): string;
}

/** The sealed fields of `org_settings.secrets`. */
export const ORG_SECRET_FIELDS = [
  'clientSecret',
  'webhookToken',
  'opencxApiKey',
  'opencxWebhookSecret',
  'previousOpencxWebhookSecret',
] as const;
export type OrgSecretField = (typeof ORG_SECRET_FIELDS)[number];

export const SEALED = {
  /** Organization secrets (Creatio client secret, webhook token, OpenCX key and webhook secret). */
  orgSecrets: {
    table: 'org_settings',
    column: 'secrets',
    key: ['org_id'],
    fields: ORG_SECRET_FIELDS,
    context: (row, field) => `${row.org_id}:${field}`,
  },
  /** Events a conversation spilled at continue-as-new (message texts). */
  spill: {
    table: 'conversation_spill',
    column: 'payload',
    key: ['workflow_id', 'chunk'],
    context: (row) => `spill:${row.workflow_id}:${row.chunk}`,
  },
  /** Signed OpenCX events refused by validation, kept for replay (their bodies). */
  rejectedEvents: {
    table: 'opencx_rejected_events',
    column: 'payload',
    key: ['org_id', 'webhook_id'],
    context: (row) => `rejected:${row.org_id}:${row.webhook_id}`,
  },
} satisfies Record<string, SealedColumn>;

export const SEALED_COLUMNS: readonly SealedColumn[] = Object.values(SEALED);

export function sealIn(
  box: SecretBox,
  where: SealedColumn,
  row: RowKey,
  plaintext: string,
  field?: string,
): string {
  return box.seal(plaintext, where.context(row, field));
}

export function openIn(
  box: SecretBox,
  where: SealedColumn,
  row: RowKey,
  sealed: string,
  field?: string,
): string {
  return box.open(sealed, where.context(row, field));
}
