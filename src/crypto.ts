import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';

/** Written by the current key when its id is LEGACY_KEY_ID: `v1:iv:tag:ct`, no key id. */
const V1 = 'v1';
/** `v2:<keyId>:iv:tag:ct`. */
const V2 = 'v2';

/**
 * The id of the key that ENCRYPTION_KEY (a single key) stands for. A `v1` value, sealed before
 * values carried a key id, is read with it first; the Temporal payload key derived from it keeps
 * this id too, so histories written before key ids existed still decode.
 */
export const LEGACY_KEY_ID = 'k0';

/** What a key id may be: it is written into every sealed value and payload, never a secret. */
export const KEY_ID_PATTERN = /^[\w.-]{1,64}$/;

/**
 * One named 32-byte key. The key material is not enumerable and is left out of JSON and of
 * `util.inspect`, so a logged configuration shows the id only.
 */
export class EncryptionKey {
  declare readonly key: Buffer;

  constructor(
    readonly id: string,
    key: Buffer,
  ) {
    if (!KEY_ID_PATTERN.test(id)) throw new KeyConfigError('a key id must be 1-64 letters, digits, _ . or -');
    if (key.length !== 32) throw new KeyConfigError(`key "${id}" must be 32 bytes`);
    Object.defineProperty(this, 'key', { value: key, enumerable: false });
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  [inspect.custom](): string {
    return `EncryptionKey(${this.id})`;
  }
}

/** The key settings are wrong; the message names ids and positions, never key material. */
export class KeyConfigError extends Error {
  override readonly name = 'KeyConfigError';
}

/** A sealed value names a key id that is not configured. */
export class UnknownKeyError extends Error {
  override readonly name = 'UnknownKeyError';
  constructor(readonly keyId: string) {
    super(
      `the sealed value was written with key id "${keyId}", which is not configured` +
        (keyId === LEGACY_KEY_ID
          ? ` (k0 is the key that was ENCRYPTION_KEY: list it in ENCRYPTION_KEYS as k0:<key>)`
          : ' (list it in ENCRYPTION_KEYS)'),
    );
  }
}

/**
 * Parses `id:base64key,id:base64key,…` (32-byte keys; the first is the current one). Every problem
 * is named by its position and id; no part of a key is ever put in a message.
 */
export function parseKeyList(spec: string, name = 'ENCRYPTION_KEYS'): EncryptionKey[] {
  const problems: string[] = [];
  const keys: EncryptionKey[] = [];
  const ids = new Set<string>();
  const materials = new Set<string>();
  spec.split(',').forEach((raw, i) => {
    const part = raw.trim();
    const at = `entry ${i + 1}`;
    const colon = part.indexOf(':');
    if (colon < 0) {
      problems.push(`${at} is not id:base64key`);
      return;
    }
    const id = part.slice(0, colon);
    const b64 = part.slice(colon + 1);
    if (!KEY_ID_PATTERN.test(id)) {
      problems.push(`${at}: the id must be 1-64 letters, digits, _ . or -`);
      return;
    }
    const key = Buffer.from(b64, 'base64');
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(b64) || key.length !== 32) {
      problems.push(`${at} (id "${id}"): the key must be 32 bytes, base64-encoded`);
      return;
    }
    if (ids.has(id)) problems.push(`${at}: the id "${id}" is listed twice`);
    else if (materials.has(key.toString('hex')))
      problems.push(`${at} (id "${id}"): the same key is listed twice`);
    ids.add(id);
    materials.add(key.toString('hex'));
    keys.push(new EncryptionKey(id, key));
  });
  if (problems.length > 0) throw new KeyConfigError(`${name}: ${problems.join('; ')}`);
  if (keys.length === 0) throw new KeyConfigError(`${name}: no key is listed`);
  return keys;
}

/**
 * AES-256-GCM envelope for secrets at rest. The associated data binds a ciphertext to its owner
 * and field, so a value copied from one organization or column to another fails to decrypt.
 *
 * Several keys for rotation: the first seals, every one opens. A value names the key it was
 * sealed with (`v2:<keyId>:…`); the legacy key (`k0`, a single ENCRYPTION_KEY) still writes `v1`
 * without an id, which every earlier version of the bridge reads.
 */
export class SecretBox {
  private readonly keys: Map<string, Buffer>;
  private readonly current: EncryptionKey;

  constructor(keys: Buffer | readonly EncryptionKey[]) {
    const list = Buffer.isBuffer(keys) ? [new EncryptionKey(LEGACY_KEY_ID, keys)] : keys;
    if (list.length === 0) throw new KeyConfigError('at least one encryption key is needed');
    this.current = list[0]!;
    this.keys = new Map(list.map((k) => [k.id, k.key]));
  }

  /** The id new values are sealed with. */
  get currentKeyId(): string {
    return this.current.id;
  }

  seal(plaintext: string, context: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    cipher.setAAD(Buffer.from(context));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    const head = this.current.id === LEGACY_KEY_ID ? [V1] : [V2, this.current.id];
    return [...head, iv.toString('base64'), tag.toString('base64'), ct.toString('base64')].join(':');
  }

  open(sealed: string, context: string): string {
    const { keyId, iv, tag, ct } = parseSealed(sealed);
    const key = this.keys.get(keyId);
    if (!key) throw new UnknownKeyError(keyId);
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64')), decipher.final()]).toString('utf8');
  }

  /** True when the value is sealed with the current key (re-sealing it would change nothing). */
  isCurrent(sealed: string): boolean {
    return sealedKeyId(sealed) === this.current.id;
  }

  /** SQL LIKE patterns of the values sealed with the current key (`_` escaped). */
  currentPrefixes(): string[] {
    const id = this.current.id.replace(/[\\%_]/g, (c) => `\\${c}`);
    return this.current.id === LEGACY_KEY_ID ? [`${V1}:%`, `${V2}:${id}:%`] : [`${V2}:${id}:%`];
  }
}

/** The id of the key a value was sealed with (`k0` for a `v1` value). */
export function sealedKeyId(sealed: string): string {
  return parseSealed(sealed).keyId;
}

function parseSealed(sealed: string): { keyId: string; iv: string; tag: string; ct: string } {
  const parts = sealed.split(':');
  if (parts[0] === V1 && parts.length === 4) {
    const [, iv, tag, ct] = parts as [string, string, string, string];
    if (iv && tag) return { keyId: LEGACY_KEY_ID, iv, tag, ct };
  }
  if (parts[0] === V2 && parts.length === 5) {
    const [, keyId, iv, tag, ct] = parts as [string, string, string, string, string];
    if (KEY_ID_PATTERN.test(keyId) && iv && tag) return { keyId, iv, tag, ct };
  }
  throw new Error('sealed value has an unknown format');
}

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** Compares two secrets in time independent of where they differ (hashing equalises lengths). */
export function secretEquals(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}
