import { createHash } from 'node:crypto';

/** Namespace of the bridge's name-based UUIDs (RFC 4122 v5). */
const NAMESPACE = Buffer.from('6f1c3b7e9a2d4e5f8b0c1d2e3f4a5b6c', 'hex');

/** A UUID v5: the same name always gives the same id, so retried creates address the same record. */
export function uuidV5(name: string): string {
  const hash = createHash('sha1').update(NAMESPACE).update(name).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const h = hash.subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export const caseIdFor = (orgId: string, sessionId: string) => uuidV5(`case:${orgId}:${sessionId}`);
export const activityIdFor = (orgId: string, sessionId: string, key: string) =>
  uuidV5(`activity:${orgId}:${sessionId}:${key}`);
export const contactIdFor = (orgId: string, key: string) => uuidV5(`contact:${orgId}:${key.toLowerCase()}`);
