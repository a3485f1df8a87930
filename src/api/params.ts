import { ApiError } from '../errors';
import { SESSION_ID_RE } from '../opencx/events';

const ORG_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** The `:orgId` of a route: 1-64 letters, digits, "_", "-" or "." (400 invalid_org_id otherwise). */
export function orgIdParam(value: unknown): string {
  if (typeof value !== 'string' || !ORG_ID_RE.test(value)) {
    throw new ApiError(400, 'invalid_org_id', 'orgId must be 1-64 letters, digits, "_", "-" or "."', {
      field: 'orgId',
    });
  }
  return value;
}

/** The message every route gives for a valid sessionId that is not one. */
export const SESSION_ID_MESSAGE = 'sessionId must be 1-128 letters, digits, "_", ".", ":" or "-"';

/** `:orgId` and `:sessionId` of a session route (400 invalid_session_id for a bad sessionId). */
export function sessionParams(params: Record<string, string | undefined>): {
  orgId: string;
  sessionId: string;
} {
  const orgId = orgIdParam(params.orgId);
  const sessionId = params.sessionId ?? '';
  if (!SESSION_ID_RE.test(sessionId)) {
    throw new ApiError(400, 'invalid_session_id', SESSION_ID_MESSAGE, { field: 'sessionId' });
  }
  return { orgId, sessionId };
}

/** 404 org_not_found: the organization has no stored settings. */
export function orgNotFound(orgId: string): ApiError {
  return new ApiError(404, 'org_not_found', `Organization ${orgId} has no Creatio integration`);
}

/** 503 temporal_unavailable: this instance runs no conversations. */
export function conversationsDisabled(): ApiError {
  return new ApiError(503, 'temporal_unavailable', 'Conversations are not enabled on this instance');
}
