import pino, { type DestinationStream, type Logger } from 'pino';

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

/** The Creatio webhook URL carries its secret token in the path; never log it. */
export function redactUrl(url: string): string {
  return url.replace(/(\/webhooks\/creatio\/)[^/?#]+/, '$1[REDACTED]');
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'opencx-creatio-bridge' },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export type { Logger };
