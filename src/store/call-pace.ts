/**
 * The shared pace of the calls to a remote, per API key, in the `call_pace` table (migration 10):
 * GCRA (virtual scheduling), one atomic statement per reservation, so that every worker process
 * on the same database (PostgreSQL, or PGlite in the single-process default) takes its turn in
 * one queue. src/net/opencx-pacing.ts is the caller.
 */
import type { Db } from './db';

/** What one reservation got. Times are the database's; waits are relative to its clock. */
export interface CallSlot {
  /** False: the slot was further away than `maxWaitMs` allowed, and was not taken. */
  reserved: boolean;
  /** How long to wait from now for the slot (0: at once). */
  waitMs: number;
  /** The slot's place in the queue (database time, epoch ms): reservations are ordered by it. */
  slotMs: number;
  /** Every pause added up at the time of the reservation (see `shiftMs`). */
  shiftMs: number;
}

export interface PaceLimits {
  /** The most calls per second, all processes together. */
  maxPerSecond: number;
  /** The least calls per second a slow-down brings the rate to. */
  minPerSecond: number;
  /** How quickly a slowed rate grows back, in calls per second per second. */
  recoverPerSecond: number;
  /** Calls that may go at once after a quiet time (the burst), as time ahead of the queue. */
  toleranceMs: number;
}

/** The current rate of a key: the slowed one growing back, capped at the maximum. */
const RATE = `least($2::float8, p.per_second + extract(epoch FROM now() - p.slowed_at)::float8 * $3::float8)`;

/** How far a pause of $5 ms reaches past the pause already in force (ms, at least 0). */
const EXTENSION = `greatest(0, extract(epoch FROM (now() + make_interval(secs => $5::float8 / 1000)) - greatest(p.paused_until, now()))::float8 * 1000)`;

export class CallPaceStore {
  constructor(private readonly db: Pick<Db, 'query'>) {}

  /**
   * Reserves the key's next slot (FIFO across processes: the order of reservations is the order of
   * the calls), unless the wait for it would exceed `maxWaitMs`: then nothing is taken and the
   * wait is answered.
   */
  async reserve(keyHash: string, limits: PaceLimits, maxWaitMs: number): Promise<CallSlot> {
    const rows = await this.db.query<{
      ahead_ms: number;
      slot_ms: number;
      reserved: boolean;
      shift_ms: number;
    }>(
      `INSERT INTO call_pace AS p (key_hash, tat, slot_start, per_second)
       VALUES ($1, now() + make_interval(secs => 1.0 / $2::float8), now(), $2::float8)
       ON CONFLICT (key_hash) DO UPDATE SET
         slot_start = greatest(p.tat, now()),
         tat = CASE
           WHEN greatest(p.tat, now()) <= now() + make_interval(secs => ($4::float8 + $5::float8) / 1000)
           THEN greatest(p.tat, now()) + make_interval(secs => 1.0 / ${RATE})
           ELSE p.tat END,
         updated_at = now()
       RETURNING extract(epoch FROM slot_start - now())::float8 * 1000 AS ahead_ms,
                 extract(epoch FROM slot_start)::float8 * 1000 AS slot_ms,
                 tat > slot_start AS reserved,
                 shift_ms`,
      [keyHash, limits.maxPerSecond, limits.recoverPerSecond, limits.toleranceMs, Math.max(0, maxWaitMs)],
    );
    const r = rows[0]!;
    return {
      reserved: r.reserved,
      waitMs: Math.max(0, Number(r.ahead_ms) - limits.toleranceMs),
      slotMs: Number(r.slot_ms),
      shiftMs: Number(r.shift_ms),
    };
  }

  /**
   * The remote pushed back. `pauseMs` (a Retry-After): no call of the key before now + pauseMs;
   * the whole queue moves by what this pause adds to the one in force (calls already waiting move
   * by the same: `shiftMs`). `slowDown` (a 429): the rate halves, at most once a second, down to
   * the minimum.
   */
  async pushBack(
    keyHash: string,
    limits: PaceLimits,
    o: { pauseMs: number; slowDown: boolean },
  ): Promise<void> {
    const slow = `($6::boolean AND now() - p.slowed_at >= interval '1 second')`;
    const pause = `make_interval(secs => $5::float8 / 1000)`;
    const tolerance = `make_interval(secs => $4::float8 / 1000)`;
    await this.db.query(
      `INSERT INTO call_pace AS p (key_hash, tat, slot_start, per_second, slowed_at, paused_until, shift_ms)
       VALUES ($1, now() + ${tolerance} + ${pause}, now(),
               CASE WHEN $6::boolean THEN greatest($7::float8, $2::float8 / 2) ELSE $2::float8 END,
               CASE WHEN $6::boolean THEN now() ELSE 'epoch'::timestamptz END,
               now() + ${pause}, $5::float8)
       ON CONFLICT (key_hash) DO UPDATE SET
         tat = CASE WHEN ${EXTENSION} > 0
           THEN greatest(p.tat, now() + ${tolerance}) + make_interval(secs => ${EXTENSION} / 1000)
           ELSE p.tat END,
         shift_ms = p.shift_ms + ${EXTENSION},
         paused_until = greatest(p.paused_until, now() + ${pause}),
         per_second = CASE WHEN ${slow} THEN greatest($7::float8, ${RATE} / 2) ELSE p.per_second END,
         slowed_at = CASE WHEN ${slow} THEN now() ELSE p.slowed_at END,
         updated_at = now()`,
      [
        keyHash,
        limits.maxPerSecond,
        limits.recoverPerSecond,
        limits.toleranceMs,
        Math.max(0, o.pauseMs),
        o.slowDown,
        limits.minPerSecond,
      ],
    );
  }

  /** Every pause of the key added up (ms): a waiting call moves by what was added since it reserved. */
  async shift(keyHash: string): Promise<number> {
    const rows = await this.db.query<{ shift_ms: number }>(
      'SELECT shift_ms FROM call_pace WHERE key_hash = $1',
      [keyHash],
    );
    return Number(rows[0]?.shift_ms ?? 0);
  }
}
