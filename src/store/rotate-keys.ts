/**
 * `npm run rotate-keys`: re-seals every sealed value of the store (src/store/sealed.ts) with the
 * current key, the first of ENCRYPTION_KEYS. Safe while the bridge runs: one row at a time, each
 * written only if it is still what was read (compare-and-set), so a write of the bridge in between
 * is never lost; such a row was written with the bridge's current key and is left as it is. Running
 * it again changes nothing. Prints counts per table and, at the end, how many values each key id
 * still seals; never a secret.
 */
import path from 'node:path';
import { loadConfig, ConfigError } from '../config';
import { EncryptionKey, LEGACY_KEY_ID, SecretBox, sealedKeyId } from '../crypto';
import { createLogger } from '../logger';
import type { Db } from './db';
import { openStoreDb, resolveEncryptionKey } from './index';
import { SEALED_COLUMNS, openIn, sealIn, type RowKey, type SealedColumn } from './sealed';

export interface ColumnReport {
  /** `table.column` */
  place: string;
  /** Values read that were sealed with another key. */
  stale: number;
  /** Of those, re-sealed with the current key. */
  resealed: number;
  /** Changed or deleted by the bridge between the read and the write (so already current, or gone). */
  changedMeanwhile: number;
  /** Could not be opened (key not configured, or damaged): left as they are, counted by key id. */
  unreadable: Record<string, number>;
  /** After the pass: how many values each key id seals. */
  byKey: Record<string, number>;
}

export interface RotationReport {
  currentKeyId: string;
  columns: ColumnReport[];
  /** Values under another key than the current one after the pass (0 when the rotation is done). */
  remaining: number;
  unreadable: number;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Re-seals every sealed value with `box`'s current key; see the file comment. */
export async function rotateKeys(
  db: Db,
  box: SecretBox,
  opts: { batchSize?: number } = {},
): Promise<RotationReport> {
  const batchSize = opts.batchSize ?? 200;
  const columns: ColumnReport[] = [];
  for (const where of SEALED_COLUMNS) {
    const report: ColumnReport = {
      place: `${where.table}.${where.column}`,
      stale: 0,
      resealed: 0,
      changedMeanwhile: 0,
      unreadable: {},
      byKey: {},
    };
    if (where.fields) await rotateJsonColumn(db, box, where, batchSize, report);
    else await rotateTextColumn(db, box, where, batchSize, report);
    report.byKey = await census(db, where);
    columns.push(report);
  }
  const remaining = columns.reduce(
    (n, c) =>
      n + Object.entries(c.byKey).reduce((m, [id, count]) => m + (id === box.currentKeyId ? 0 : count), 0),
    0,
  );
  const unreadable = columns.reduce(
    (n, c) => n + Object.values(c.unreadable).reduce((m, count) => m + count, 0),
    0,
  );
  return { currentKeyId: box.currentKeyId, columns, remaining, unreadable };
}

function keyOf(where: SealedColumn, row: Record<string, unknown>): RowKey {
  return Object.fromEntries(where.key.map((k) => [k, row[k] as string | number]));
}

/** `(k1, k2) > ($n, $n+1)` and the parameters, for keyset paging. */
function after(
  where: SealedColumn,
  last: RowKey | undefined,
  from: number,
): { sql: string; params: unknown[] } {
  if (!last) return { sql: 'true', params: [] };
  const cols = where.key.map(quote).join(', ');
  const marks = where.key.map((_, i) => `$${from + i}`).join(', ');
  return { sql: `(${cols}) > (${marks})`, params: where.key.map((k) => last[k]) };
}

function byRow(where: SealedColumn, from: number): string {
  return where.key.map((k, i) => `${quote(k)} = $${from + i}`).join(' AND ');
}

function noteUnreadable(report: ColumnReport, sealed: string): void {
  let id: string;
  try {
    id = sealedKeyId(sealed);
  } catch {
    id = 'unknown format';
  }
  report.unreadable[id] = (report.unreadable[id] ?? 0) + 1;
}

/**
 * The column's rows in key order, `batchSize` at a time (keyset paging, so a row is met once however
 * the rows before it change): each row's key columns and `sealed`, the value to rotate. `filter` (a
 * condition on `$1`…, with `params`) narrows the rows read.
 */
async function* pages(
  db: Db,
  where: SealedColumn,
  batchSize: number,
  select: { sealed: string; filter?: string; params?: unknown[] },
): AsyncGenerator<Record<string, unknown>[]> {
  const keyCols = where.key.map(quote).join(', ');
  const fixed = select.params ?? [];
  let last: RowKey | undefined;
  for (;;) {
    const page = after(where, last, fixed.length + 2);
    const rows = await db.query<Record<string, unknown>>(
      `SELECT ${keyCols}, ${select.sealed} AS sealed FROM ${quote(where.table)}
        WHERE ${select.filter ?? 'true'} AND ${page.sql}
        ORDER BY ${keyCols} LIMIT $${fixed.length + 1}`,
      [...fixed, batchSize, ...page.params],
    );
    if (rows.length > 0) yield rows;
    if (rows.length < batchSize) return;
    last = keyOf(where, rows[rows.length - 1]!);
  }
}

/**
 * Writes `fresh` in place of the row's value only if the value is still `old` (a process that wrote
 * it meanwhile wins); answers whether it did.
 */
async function replaceIfUnchanged(
  db: Db,
  where: SealedColumn,
  key: RowKey,
  fresh: string,
  old: string,
  cast = '',
): Promise<boolean> {
  const col = quote(where.column);
  const written = await db.query(
    `UPDATE ${quote(where.table)} SET ${col} = $1${cast}
      WHERE ${byRow(where, 3)} AND ${col} = $2${cast} RETURNING 1`,
    [fresh, old, ...where.key.map((k) => key[k])],
  );
  return written.length > 0;
}

/** A text column holding one sealed value: only the rows not under the current key are read. */
async function rotateTextColumn(
  db: Db,
  box: SecretBox,
  where: SealedColumn,
  batchSize: number,
  report: ColumnReport,
): Promise<void> {
  const col = quote(where.column);
  const stale = {
    sealed: col,
    filter: `NOT (${col} LIKE ANY ($1::text[]))`,
    params: [box.currentPrefixes()],
  };
  for await (const rows of pages(db, where, batchSize, stale)) {
    for (const row of rows) {
      const key = keyOf(where, row);
      const old = row.sealed as string;
      report.stale++;
      let fresh: string;
      try {
        fresh = sealIn(box, where, key, openIn(box, where, key, old));
      } catch {
        noteUnreadable(report, old);
        continue;
      }
      if (await replaceIfUnchanged(db, where, key, fresh, old)) report.resealed++;
      else report.changedMeanwhile++;
    }
  }
}

/** A jsonb object of sealed fields: each row is rewritten whole, only if it is unchanged. */
async function rotateJsonColumn(
  db: Db,
  box: SecretBox,
  where: SealedColumn,
  batchSize: number,
  report: ColumnReport,
): Promise<void> {
  const col = quote(where.column);
  for await (const rows of pages(db, where, batchSize, { sealed: `${col}::text` })) {
    for (const row of rows) {
      const key = keyOf(where, row);
      const oldText = row.sealed as string;
      const value = JSON.parse(oldText) as Record<string, unknown>;
      let changed = 0;
      for (const field of where.fields ?? []) {
        const old = value[field];
        if (typeof old !== 'string' || box.isCurrent(old)) continue;
        report.stale++;
        try {
          value[field] = sealIn(box, where, key, openIn(box, where, key, old, field), field);
          changed++;
        } catch {
          noteUnreadable(report, old);
        }
      }
      if (changed === 0) continue;
      if (await replaceIfUnchanged(db, where, key, JSON.stringify(value), oldText, '::jsonb')) {
        report.resealed += changed;
      } else {
        report.changedMeanwhile += changed;
      }
    }
  }
}

/** How many values of the column each key id seals (`k0` for `v1` values). */
async function census(db: Db, where: SealedColumn): Promise<Record<string, number>> {
  const col = quote(where.column);
  const keyId = (v: string) =>
    `CASE WHEN ${v} LIKE 'v1:%' THEN '${LEGACY_KEY_ID}' ELSE split_part(${v}, ':', 2) END`;
  const rows = where.fields
    ? await db.query<{ key_id: string; n: string | number }>(
        `SELECT ${keyId('s.value')} AS key_id, count(*) AS n
           FROM ${quote(where.table)} t, jsonb_each_text(t.${col}) s
          WHERE s.key = ANY ($1::text[]) GROUP BY 1 ORDER BY 1`,
        [where.fields],
      )
    : await db.query<{ key_id: string; n: string | number }>(
        `SELECT ${keyId(col)} AS key_id, count(*) AS n FROM ${quote(where.table)} GROUP BY 1 ORDER BY 1`,
      );
  return Object.fromEntries(rows.map((r) => [r.key_id, Number(r.n)]));
}

/** The report as lines for an operator: ids and counts only. */
export function describeRotation(r: RotationReport): string[] {
  const lines = [`Re-sealing with key "${r.currentKeyId}".`];
  for (const c of r.columns) {
    const unreadable = Object.entries(c.unreadable)
      .map(([id, n]) => `${n} under "${id}"`)
      .join(', ');
    const byKey = Object.entries(c.byKey)
      .map(([id, n]) => `${id}: ${n}`)
      .join(', ');
    lines.push(
      `${c.place}: ${c.resealed} re-sealed, ${c.changedMeanwhile} changed meanwhile (left as written), ` +
        `${unreadable ? `unreadable: ${unreadable}` : '0 unreadable'}; now by key: ${byKey || 'no values'}`,
    );
  }
  if (r.unreadable > 0) {
    lines.push(
      `${r.unreadable} values could not be opened: list the key ids named above in ENCRYPTION_KEYS and run again.`,
    );
  } else if (r.remaining > 0) {
    lines.push(
      `${r.remaining} values are still under other keys (written meanwhile by a process whose current key is not "${r.currentKeyId}"?): run again once every process has it first.`,
    );
  } else {
    lines.push(`Every sealed value is under "${r.currentKeyId}".`);
  }
  return lines;
}

async function main(): Promise<number> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const keys = config.encryptionKeys ?? [
    new EncryptionKey(LEGACY_KEY_ID, await resolveEncryptionKey(undefined, config.dataDir, log)),
  ];
  if (!config.databaseUrl) {
    console.log(
      `No DATABASE_URL: the embedded store in ${path.join(config.dataDir, 'pglite')} (stop the bridge first: it is one process's).`,
    );
  }
  const db = await openStoreDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, log });
  try {
    const report = await rotateKeys(db, new SecretBox(keys));
    for (const line of describeRotation(report)) console.log(line);
    return report.unreadable > 0 ? 1 : 0;
  } finally {
    await db.close();
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      // A store error names the database, never a key; the message alone is enough here.
      console.error(`rotate-keys failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
