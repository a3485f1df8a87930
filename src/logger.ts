import pino, { type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';

/**
 * Field names that may hold a secret anywhere in a logged object. pino replaces their values
 * before the line is written, so a careless `log.info({ settings })` cannot leak them.
 */
const SECRET_KEYS = [
  'clientSecret',
  'client_secret',
  'apiKey',
  'api_key',
  'webhookSecret',
  'webhookToken',
  'token',
  'accessToken',
  'access_token',
  'password',
  'authorization',
  'adminApiToken',
  'encryptionKey',
];

export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["webhook-signature"]',
  'res.headers["set-cookie"]',
];

/** The Creatio webhook URL carries its secret token in the path (in any letter case); never log it. */
export function redactUrl(url: string): string {
  return url.replace(/(\/webhooks\/creatio\/)[^/?#\s"']+/gi, '$1[REDACTED]');
}

const SECRET_KEY_SET = new Set(SECRET_KEYS.map((k) => k.toLowerCase()));

/**
 * The last line of defence, at any depth: a value under a secret's name (in any letter case) is
 * replaced, and webhook tokens are cut out of every string. Cycles and very deep values stop.
 */
export function redactDeep(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return redactUrl(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 12 || seen.has(value)) return '[…]';
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, depth + 1, seen));
  if (value instanceof Error) {
    // A copy of the same class (pino's serializer names it), its texts and fields redacted.
    const copy = Object.create(Object.getPrototypeOf(value) as object) as Error & Record<string, unknown>;
    Object.assign(copy, redactDeep({ ...value }, depth + 1, seen));
    copy.message = redactUrl(value.message);
    copy.stack = redactUrl(value.stack ?? '');
    if (value.cause !== undefined) copy.cause = redactDeep(value.cause, depth + 1, seen);
    return copy;
  }
  // Requests, responses and other class instances are left to pino's serializers and paths.
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY_SET.has(k.toLowerCase()) ? '[REDACTED]' : redactDeep(v, depth + 1, seen);
  }
  return out;
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'opencx-creatio-bridge' },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => redactDeep(object) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          method.apply(
            this,
            args.map((a) => (typeof a === 'string' ? redactUrl(a) : a)) as Parameters<typeof method>,
          );
        },
      },
    },
    destination,
  );
}

/**
 * Human-readable lines (pino-pretty, in this thread) when asked, or on a terminal outside
 * production; JSON lines otherwise. Redaction happens before either.
 */
export function prettyWanted(format: 'auto' | 'json' | 'pretty', env: string, isTTY: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && isTTY && env !== 'production');
}

export function prettyStream(destination?: NodeJS.WritableStream, colorize = true): DestinationStream {
  return pretty({
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service',
    sync: true,
    ...(destination && { destination }),
  });
}

export type { Logger };
