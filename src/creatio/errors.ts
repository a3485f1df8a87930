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
  | 'schema' // 404 for an entity set / 400 for a property this Creatio does not have (creatio_schema_missing)
  | 'route_not_found' // 404 from something that is not an OData key lookup (a proxy, a wrong base path)
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
  schema: 'CreatioSchemaError',
  route_not_found: 'CreatioRouteNotFoundError',
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
  'schema',
  'route_not_found',
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
  /** For `schema`: what this Creatio lacks (entity set, and the column when a property is unknown). */
  readonly missing: { entity: string; column?: string } | undefined;
  /** The request that failed, without its query values (they can carry customer data). */
  readonly request: string | undefined;

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
      missing?: { entity: string; column?: string };
      request?: string;
    } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = NAMES[kind];
    this.status = opts.status;
    this.entity = opts.entity;
    this.retryAfterMs = opts.retryAfterMs;
    this.outcomeUnknown = opts.outcomeUnknown ?? false;
    this.endpoint = opts.endpoint ?? 'odata';
    this.missing = opts.missing;
    this.request = opts.request;
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

const ODATA_TYPE = /Terrasoft\.Configuration\.OData\.(\w+)/;

/**
 * What a Creatio error text says is missing. Wordings (reference/creatio-api.md §2.1, §2.8):
 * - unknown entity set: ASP.NET routing 404 `{"Message":"No HTTP resource was found that matches the
 *   request URI '…/0/odata/X'.","MessageDetail":"No type was found that matches the controller named 'X'."}`;
 * - unknown property in a query option: 400 "Could not find a property named 'Foo' on type
 *   'Terrasoft.Configuration.OData.Case'.";
 * - unknown property in a body: 400 "The property 'X' does not exist on type 'Terrasoft.Configuration.OData.Contact'".
 */
export function missingFromMessage(
  text: string,
  fallbackEntity?: string,
): { entity: string; column?: string } | undefined {
  const controller = /No type was found that matches the controller named '([^']+)'/.exec(text)?.[1];
  if (controller) return { entity: controller };
  if (/No HTTP resource was found/.test(text)) {
    const set = /\/odata\/([A-Za-z_]\w*)/.exec(text)?.[1] ?? fallbackEntity;
    return set ? { entity: set } : undefined;
  }
  const prop =
    /Could not find a property named '([^']+)' on type '([^']+)'/.exec(text) ??
    /The property '([^']+)' does not exist on type '([^']+)'/.exec(text);
  if (prop) {
    const entity = ODATA_TYPE.exec(prop[2]!)?.[1] ?? fallbackEntity ?? prop[2]!;
    return { entity, column: prop[1]! };
  }
  return undefined;
}
