import { createHash } from 'node:crypto';
import type { ErrorRequestHandler, Request } from 'express';
import { ApiError } from '../errors';

export interface FailureLimits {
  /** Failed attempts of one credential on one route within `windowMs` before it is answered 429. */
  perCredential: number;
  /** Failed attempts of unknown credentials on one route, all callers together, within `windowMs`. */
  unknownPerRoute: number;
  windowMs: number;
  /** Credentials remembered at most (the oldest is forgotten first). */
  maxKeys: number;
}

const DEFAULT_LIMITS: FailureLimits = {
  perCredential: 10,
  unknownPerRoute: 300,
  windowMs: 60_000,
  maxKeys: 10_000,
};

/**
 * Slows down guessing without ever refusing a valid caller: only requests that already failed
 * authentication (401) are counted and answered 429, so a valid token is never refused. Failures
 * are counted per route and per presented credential (a hash of it), so one caller's bad token
 * does not block another caller's good one from the same address; and all failures with unknown
 * credentials on a route share one budget, so guessing many different tokens is slowed too.
 * Memory is bounded: `maxKeys` credentials and `unknownPerRoute` timestamps per route.
 */
export class FailureLimiter {
  private readonly limits: FailureLimits;
  private readonly perKey = new Map<string, number[]>();
  private readonly perRoute = new Map<string, number[]>();

  constructor(limits: Partial<FailureLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /** Milliseconds until a failed attempt of `credential` on `route` is answered 401 again, or 0. */
  blockedFor(route: string, credential: string, now = Date.now()): number {
    const { perCredential, unknownPerRoute, windowMs } = this.limits;
    const wait = (list: number[], max: number) => {
      const recent = list.filter((t) => t > now - windowMs);
      return recent.length < max ? 0 : recent[recent.length - max]! + windowMs - now;
    };
    return Math.max(
      wait(this.perKey.get(key(route, credential)) ?? [], perCredential),
      wait(this.perRoute.get(route) ?? [], unknownPerRoute),
    );
  }

  fail(route: string, credential: string, now = Date.now()): void {
    const { perCredential, unknownPerRoute, windowMs, maxKeys } = this.limits;
    const k = key(route, credential);
    if (!this.perKey.has(k) && this.perKey.size >= maxKeys) {
      const oldest = this.perKey.keys().next().value;
      if (oldest !== undefined) this.perKey.delete(oldest);
    }
    const push = (map: Map<string, number[]>, at: string, max: number) => {
      const recent = (map.get(at) ?? []).filter((t) => t > now - windowMs);
      recent.push(now);
      map.set(at, recent.slice(-max));
    };
    push(this.perKey, k, perCredential);
    push(this.perRoute, route, unknownPerRoute);
  }
}

const key = (route: string, credential: string) =>
  `${route}:${createHash('sha256').update(credential).digest('base64url')}`;

/** The route group and the credential a request presents, for the routes that take a secret. */
function presented(req: Request): { route: string; credential: string } | undefined {
  const path = req.originalUrl.split('?')[0] ?? '';
  const bearer = req.headers.authorization ?? '';
  const webhook = /^\/webhooks\/creatio\/([^/]*)/.exec(path);
  if (webhook) return { route: 'creatio_webhook', credential: webhook[1] ?? '' };
  if (path.startsWith('/v1/') || path === '/v1') return { route: 'v1', credential: bearer };
  if (path.startsWith('/codec/')) return { route: 'codec', credential: bearer };
  if (path === '/readyz') return { route: 'readyz', credential: bearer };
  return undefined;
}

/**
 * Error middleware: a 401 on a route that takes a secret is counted; past the limits it becomes
 * a 429 with Retry-After. A 401 flagged `retiredToken` (a Creatio webhook URL from before a
 * rotation) stays a 401 and is not counted.
 */
export function failureCounter(limiter: FailureLimiter): ErrorRequestHandler {
  return (err, req, res, next) => {
    const at = err instanceof ApiError && err.status === 401 ? presented(req) : undefined;
    if (!at || res.locals.retiredToken === true) {
      next(err);
      return;
    }
    const wait = limiter.blockedFor(at.route, at.credential);
    if (wait > 0) {
      res.setHeader('retry-after', String(Math.ceil(wait / 1000)));
      next(new ApiError(429, 'too_many_failed_attempts', 'Too many failed attempts; try again later'));
      return;
    }
    limiter.fail(at.route, at.credential);
    next(err);
  };
}
