/**
 * Who is calling the admin API, and what they may see. The operator token (ADMIN_API_TOKEN) opens
 * the whole bridge; an organization's admin token (created by the operator, stored hashed) opens
 * only `/v1/orgs/<its organization>/…`, and not the routes that manage tokens.
 */
import type { Request, RequestHandler } from 'express';
import { secretEquals } from '../crypto';
import { ApiError } from '../errors';
import type { Store } from '../store';

export type Access = { kind: 'operator' } | { kind: 'org'; orgId: string; tokenId: string };

/** How long a token looked up in the store is taken as valid (a revocation in another process applies within it). */
const TOKEN_CACHE_MS = 10_000;

declare module 'express-serve-static-core' {
  interface Request {
    access?: Access;
  }
}

/** The caller as the audit log names it (never a token). */
export function actorOf(req: Request): string {
  const a = req.access;
  return !a ? 'unknown' : a.kind === 'operator' ? 'operator' : `org-token:${a.tokenId}`;
}

export class AdminAccess {
  private readonly cache = new Map<
    string,
    { found: { id: string; orgId: string } | undefined; at: number }
  >();

  constructor(
    private readonly operatorToken: string | undefined,
    private readonly store: Pick<Store, 'findOrgToken'>,
  ) {}

  /** A revocation in this process applies at once. */
  forget(): void {
    this.cache.clear();
  }

  private async lookup(token: string) {
    const hit = this.cache.get(token);
    if (hit && Date.now() - hit.at < TOKEN_CACHE_MS) return hit.found;
    const found = await this.store.findOrgToken(token);
    if (this.cache.size >= 10_000) this.cache.clear();
    this.cache.set(token, { found, at: Date.now() });
    return found;
  }

  /** Authenticates the bearer token: the operator's, or an organization's. */
  authenticate(): RequestHandler {
    return (req, _res, next) => {
      const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      if (!m) throw new ApiError(401, 'unauthorized', 'Missing "Authorization: Bearer <admin token>"');
      const token = m[1]!;
      if (this.operatorToken && secretEquals(token, this.operatorToken)) {
        req.access = { kind: 'operator' };
        next();
        return;
      }
      if (!token.startsWith('org_')) {
        throw new ApiError(401, 'invalid_admin_token', 'The admin API token is not valid');
      }
      this.lookup(token).then(
        (found) => {
          if (!found) {
            next(new ApiError(401, 'invalid_admin_token', 'The admin API token is not valid'));
            return;
          }
          req.access = { kind: 'org', orgId: found.orgId, tokenId: found.id };
          next();
        },
        (err: unknown) => next(err),
      );
    };
  }
}

/**
 * Scope of `/v1`: an organization's token reaches its own `/v1/orgs/<orgId>/…` only, and never
 * the token routes; the rest of `/v1` (operator-wide views) is the operator's.
 */
export const scoped: RequestHandler = (req, _res, next) => {
  const a = req.access;
  if (a?.kind === 'operator') {
    next();
    return;
  }
  const m = /^\/orgs\/([^/]+)(\/.*)?$/.exec(req.path);
  if (!a || !m) throw new ApiError(403, 'operator_only', 'This needs the operator token (ADMIN_API_TOKEN)');
  if (decodeURIComponent(m[1]!) !== a.orgId) {
    throw new ApiError(403, 'forbidden_organization', `This token opens organization ${a.orgId} only`);
  }
  if ((m[2] ?? '').startsWith('/admin-tokens')) {
    throw new ApiError(403, 'operator_only', "An organization's tokens are managed with the operator token");
  }
  next();
};
