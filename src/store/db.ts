import type { Pool as PgPool } from 'pg';

/** The small SQL surface the store needs; implemented by node-postgres and by PGlite. */
export interface Db {
  readonly kind: 'postgres' | 'pglite';
  query<T>(sql: string, params?: unknown[]): Promise<T[]>;
  transaction<T>(fn: (tx: Pick<Db, 'query'>) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The database did not answer in time or dropped the connection: retry later. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}

/** SQLSTATE classes of a database that is down, restarting or out of resources. */
const UNAVAILABLE_SQLSTATE = /^(08|53|57)/;

/** Connection-level failures become StoreUnavailableError; SQL errors stay as they are. */
export function classifyStoreError(err: unknown): unknown {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (
    UNAVAILABLE_SQLSTATE.test(code) ||
    /^E(CONNREFUSED|CONNRESET|TIMEDOUT|PIPE|HOSTUNREACH|AI_AGAIN)$/.test(code) ||
    /timeout|terminated|Connection ended|not queryable/i.test(message)
  ) {
    return new StoreUnavailableError(`The database is unavailable: ${message}`, { cause: err });
  }
  return err;
}

/** Bounds of every store call: a database that hangs costs a request seconds, never forever. */
export const STORE_TIMEOUTS = { connectMs: 3_000, queryMs: 5_000 };

export async function connectPostgres(url: string): Promise<Db> {
  const { Pool } = await import('pg');
  const pool: PgPool = new Pool({
    connectionString: url,
    max: 10,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: STORE_TIMEOUTS.connectMs,
    query_timeout: STORE_TIMEOUTS.queryMs,
  });
  // A broken idle connection must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  return {
    kind: 'postgres',
    async query<T>(sql: string, params: unknown[] = []) {
      try {
        const res = await pool.query(sql, params);
        return res.rows as T[];
      } catch (err) {
        throw classifyStoreError(err);
      }
    },
    async transaction<T>(fn: (tx: Pick<Db, 'query'>) => Promise<T>) {
      const client = await pool.connect().catch((err: unknown) => {
        throw classifyStoreError(err);
      });
      try {
        await client.query('BEGIN');
        const result = await fn({
          query: async <R>(sql: string, params: unknown[] = []) =>
            (await client.query(sql, params)).rows as R[],
        });
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

/** Embedded PostgreSQL (WASM): same SQL dialect, no server, data kept in `dir`. */
export async function openPglite(dir: string | undefined): Promise<Db> {
  const { PGlite } = await import('@electric-sql/pglite');
  const db = dir ? new PGlite(dir) : new PGlite();
  await db.waitReady;
  return {
    kind: 'pglite',
    async query<T>(sql: string, params: unknown[] = []) {
      const res = await db.query<T>(sql, params);
      return res.rows;
    },
    async transaction<T>(fn: (tx: Pick<Db, 'query'>) => Promise<T>) {
      return db.transaction(async (tx) =>
        fn({
          query: async <R>(sql: string, params: unknown[] = []) => (await tx.query<R>(sql, params)).rows,
        }),
      );
    },
    close: () => db.close(),
  };
}
