/**
 * Every way a Creatio call can fail, reduced to the few kinds the bridge acts on differently.
 * The kind decides the Temporal retry behaviour (src/activities/retry.ts) and the Test & Save
 * diagnosis (src/settings/test-and-save.ts).
 */
export type CreatioErrorKind =
  | 'bad_credentials' // token endpoint: invalid_client (wrong id/secret, app inactive)
  | 'grant_type' // token endpoint: unsupported_grant_type / unauthorized_client
  | 'unauthorized' // OData 401 even with a fresh token
  | 'forbidden' // OData 403: no OData access or no permission on the object
  | 'not_found' // OData 404 for a key
  | 'validation' // OData 400: the request itself is wrong
  | 'rate_limited' // 429 (with Retry-After when given)
  | 'transient' // 5xx, timeouts, connection resets
  | 'unreachable' // DNS failure, connection refused
  | 'unexpected_response' // an answer that is not Creatio's (HTML page, wrong shape)
  | 'too_large' // an answer larger than the caller accepts
  | 'address_refused'; // the host resolves to an address the outbound policy refuses

const NAMES: Record<CreatioErrorKind, string> = {
  bad_credentials: 'CreatioBadCredentialsError',
  grant_type: 'CreatioGrantTypeError',
  unauthorized: 'CreatioUnauthorizedError',
  forbidden: 'CreatioForbiddenError',
  not_found: 'CreatioNotFoundError',
  validation: 'CreatioValidationError',
  rate_limited: 'CreatioRateLimitedError',
  transient: 'CreatioTransientError',
  unreachable: 'CreatioUnreachableError',
  unexpected_response: 'CreatioUnexpectedResponseError',
  too_large: 'CreatioResponseTooLargeError',
  address_refused: 'CreatioAddressRefusedError',
};

export const CREATIO_ERROR_NAMES = NAMES;

/** Kinds that retrying cannot fix: configuration, permissions, or a request Creatio rejects. */
export const NON_RETRYABLE_KINDS: readonly CreatioErrorKind[] = [
  'bad_credentials',
  'grant_type',
  'unauthorized',
  'forbidden',
  'not_found',
  'validation',
  'too_large',
  'address_refused',
];

export class CreatioError extends Error {
  readonly status: number | undefined;
  readonly entity: string | undefined;
  readonly retryAfterMs: number | undefined;
  /** A write whose outcome is not known (timeout, 5xx, garbled answer): read before writing again. */
  readonly outcomeUnknown: boolean;
  readonly endpoint: 'token' | 'odata';

  constructor(
    readonly kind: CreatioErrorKind,
    message: string,
    opts: {
      status?: number;
      entity?: string;
      retryAfterMs?: number;
      outcomeUnknown?: boolean;
      endpoint?: 'token' | 'odata';
      cause?: unknown;
    } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = NAMES[kind];
    this.status = opts.status;
    this.entity = opts.entity;
    this.retryAfterMs = opts.retryAfterMs;
    this.outcomeUnknown = opts.outcomeUnknown ?? false;
    this.endpoint = opts.endpoint ?? 'odata';
  }

  get retryable(): boolean {
    return !NON_RETRYABLE_KINDS.includes(this.kind);
  }
}

/** Retry-After is either delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
