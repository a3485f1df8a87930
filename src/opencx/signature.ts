import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';

/** Standard Webhooks: tolerance for `webhook-timestamp`, in seconds, both ways. */
export const TOLERANCE_SECONDS = 5 * 60;

/** `whsec_<base64>` secrets carry their key in base64; any other string is used as it is. */
function keyOf(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
}

export function sign(secret: string, id: string, timestamp: number | string, body: string | Buffer): string {
  const mac = createHmac('sha256', keyOf(secret));
  mac.update(`${id}.${timestamp}.`);
  mac.update(body);
  return `v1,${mac.digest('base64')}`;
}

/** The headers of a Standard Webhooks delivery of `body` (what OpenCX sends, and what the sandbox and tests send). */
export function signedHeaders(
  secret: string,
  body: string,
  id = `msg_${randomUUID()}`,
  timestamp = Math.floor(Date.now() / 1000),
): Record<string, string> {
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': sign(secret, id, timestamp, body),
  };
}

export type VerifyResult =
  | { ok: true }
  | { ok: false; code: 'stale_timestamp' | 'invalid_timestamp' | 'invalid_signature'; message: string };

/** The timestamp part alone: checked before anything is looked up for the sender. */
export function checkTimestamp(timestamp: string, now = Date.now()): VerifyResult {
  if (!/^\d{1,12}$/.test(timestamp)) {
    return { ok: false, code: 'invalid_timestamp', message: 'webhook-timestamp must be Unix seconds' };
  }
  const skew = Math.abs(now / 1000 - Number(timestamp));
  if (skew > TOLERANCE_SECONDS) {
    return {
      ok: false,
      code: 'stale_timestamp',
      message: `webhook-timestamp is ${Math.round(skew)} s away from now (tolerance ${TOLERANCE_SECONDS} s)`,
    };
  }
  return { ok: true };
}

/**
 * Verifies a Standard Webhooks signature: HMAC-SHA256 over `id.timestamp.body`. The header may
 * hold several space-separated signatures (the secret is being rotated): one match is enough.
 * Several secrets may be configured for the same reason.
 */
export function verify(
  secrets: string[],
  headers: { id: string; timestamp: string; signature: string },
  body: Buffer,
  now = Date.now(),
): VerifyResult {
  const fresh = checkTimestamp(headers.timestamp, now);
  if (!fresh.ok) return fresh;
  const offered = headers.signature
    .split(' ')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('v1,'))
    .map((s) => Buffer.from(s.slice(3), 'base64'));
  for (const secret of secrets) {
    const expected = Buffer.from(sign(secret, headers.id, headers.timestamp, body).slice(3), 'base64');
    if (offered.some((o) => o.length === expected.length && timingSafeEqual(o, expected)))
      return { ok: true };
  }
  return INVALID_SIGNATURE;
}

/** The one answer for a wrong signature, an unknown organization and an organization with no secret. */
export const INVALID_SIGNATURE = {
  ok: false,
  code: 'invalid_signature',
  message: "webhook-signature does not match the organization's webhook secret",
} as const;
