import type { ErrorRequestHandler } from 'express';
import type { z } from 'zod';
import { TemporalUnavailableError } from '../workflow-client/client';
import { ApiError } from '../errors';
import { StoreUnavailableError } from '../store';

/** Parses with a zod schema; the first problem becomes a 400 that names the field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown, prefix = ''): z.infer<S> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(400, 'invalid_body', 'The request body must be a JSON object', {
      fix: 'Send Content-Type: application/json with a JSON object',
    });
  }
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues;
  const first = issues[0]!;
  let field = [prefix, ...first.path].filter((p) => p !== '').join('.');
  let code = 'invalid_field';
  let message = `${field}: ${first.message}`;
  if (first.code === 'unrecognized_keys') {
    const k = first.keys[0] ?? '';
    field = field ? `${field}.${k}` : k;
    code = 'unknown_field';
    message = `${field} is not a known field`;
  } else if (first.code === 'invalid_type' && /received undefined/.test(first.message)) {
    code = 'missing_field';
    message = `${field} is required`;
  }
  throw new ApiError(400, code, message, {
    field,
    details:
      issues.length > 1 ? issues.map((i) => ({ field: i.path.join('.'), message: i.message })) : undefined,
  });
}

export const errorHandler: ErrorRequestHandler = (err, req, res, _next) => {
  const e = err as { type?: string; status?: number };
  let apiError: ApiError;
  if (err instanceof ApiError) apiError = err;
  else if (err instanceof TemporalUnavailableError) {
    req.log.warn({ err }, 'Temporal unavailable');
    apiError = new ApiError(503, 'temporal_unavailable', 'Temporal is not reachable right now; retry later');
  } else if (err instanceof StoreUnavailableError) {
    req.log.warn({ err }, 'store unavailable');
    apiError = new ApiError(503, 'store_unavailable', 'The database is not reachable right now; retry later');
  } else if (e.type === 'entity.parse.failed') {
    apiError = new ApiError(400, 'invalid_json', 'The request body is not valid JSON', {
      fix: 'Send a JSON object with Content-Type: application/json',
    });
  } else if (e.type === 'entity.too.large') {
    apiError = new ApiError(413, 'payload_too_large', 'The request body is too large');
  } else if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') {
    apiError = new ApiError(415, 'unsupported_encoding', 'The request body encoding is not supported');
  } else {
    req.log.error({ err }, 'unhandled error');
    apiError = new ApiError(500, 'internal_error', 'Something went wrong on our side; the error was logged');
  }
  if (apiError.status >= 500) res.setHeader('retry-after', '5');
  res.status(apiError.status).json(apiError.toBody());
};
