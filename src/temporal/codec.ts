/**
 * Encryption of everything the bridge puts in Temporal history (message texts, contact details,
 * summaries): a payload codec used by the client, the workers and the codec endpoint of the
 * Temporal UI. AES-256-GCM, one key id in each payload's metadata, several keys for rotation
 * (the first encrypts, all decrypt). Search attributes are IDs only and stay in clear.
 *
 * A payload of a conversation also names its organization (`encryption-org`, taken from the
 * workflow id Temporal passes as the serialization context), bound to that ciphertext by a MAC
 * (`encryption-org-mac`, over the organization and the payload's IV): the codec endpoint decodes
 * for an organization's token only the payloads of that organization, and a payload relabelled
 * with another organization is refused. The label is extra metadata, so a worker of an earlier
 * release still decrypts these payloads during a rolling deploy.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import type { Payload, PayloadCodec, SerializationContext } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { orgOfWorkflowId } from '../workflows/contract';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
const KEY_ID = 'encryption-key-id';
const CIPHER = 'encryption-cipher';
const ORG = 'encryption-org';
const ORG_MAC = 'encryption-org-mac';
const IV_BYTES = 12;
const TAG_BYTES = 16;

const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null | undefined) => (b ? new TextDecoder().decode(b) : undefined);

/**
 * IVs from the system's CSPRNG, fetched 256 at a time: one call into OpenSSL per 256 payloads
 * instead of one per payload (in the API's profile under load, a cold `randomBytes(12)` cost as
 * much as the encryption). Each IV is used once: the pool hands out copies and moves on.
 */
class IvPool {
  private pool = Buffer.alloc(0);
  private at = 0;
  next(): Buffer {
    if (this.at + IV_BYTES > this.pool.length) {
      this.pool = randomBytes(IV_BYTES * 256);
      this.at = 0;
    }
    const iv = Buffer.from(this.pool.subarray(this.at, this.at + IV_BYTES));
    this.at += IV_BYTES;
    return iv;
  }
}

export class PayloadKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadKeyError';
  }
}

export interface PayloadKey {
  id: string;
  key: Buffer;
}

/**
 * `TEMPORAL_PAYLOAD_KEYS`: `id:base64key,id:base64key`, the first the current one. Without it one
 * key is derived from each store key (HKDF, its own label), with the store key's id and in its
 * order: the current store key encrypts, every one decrypts. A single key (a Buffer, i.e.
 * ENCRYPTION_KEY) is id `k0`, so histories written before key lists existed still decode.
 */
export function parsePayloadKeys(
  spec: string | undefined,
  encryptionKeys: Buffer | readonly PayloadKey[],
): PayloadKey[] {
  if (!spec) {
    const storeKeys = Buffer.isBuffer(encryptionKeys) ? [{ id: 'k0', key: encryptionKeys }] : encryptionKeys;
    if (storeKeys.length === 0) throw new PayloadKeyError('at least one encryption key is needed');
    return storeKeys.map(({ id, key }) => ({
      id,
      key: Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'temporal-payloads', 32)),
    }));
  }
  return spec.split(',').map((part) => {
    const [id, b64] = part.trim().split(':');
    const key = Buffer.from(b64 ?? '', 'base64');
    if (!id || !/^[\w.-]{1,64}$/.test(id) || key.length !== 32) {
      throw new PayloadKeyError(
        'TEMPORAL_PAYLOAD_KEYS must be id:base64 pairs of 32-byte keys, separated by commas',
      );
    }
    return { id, key };
  });
}

export class EncryptionCodec implements PayloadCodec {
  private readonly keys: Map<string, Buffer>;
  private readonly current: PayloadKey;
  private readonly macKeys = new Map<string, Buffer>();
  private readonly ivs = new IvPool();

  /** The MAC that binds an organization to one payload (its key is derived from the payload key). */
  private orgMac(keyId: string, key: Buffer, orgId: string, iv: Uint8Array): Buffer {
    let macKey = this.macKeys.get(keyId);
    if (!macKey) {
      macKey = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'temporal-payload-org', 32));
      this.macKeys.set(keyId, macKey);
    }
    return createHmac('sha256', macKey).update(`org:${orgId}\0`).update(iv).digest().subarray(0, 16);
  }

  constructor(keys: PayloadKey[]) {
    if (keys.length === 0) throw new PayloadKeyError('at least one payload key is needed');
    this.current = keys[0]!;
    this.keys = new Map(keys.map((k) => [k.id, k.key]));
  }

  /**
   * Encrypts; a payload of a conversation's workflow (or of its activities) names the
   * organization. `orgId` stands in for the context where none is given (the codec endpoint).
   */
  // eslint-disable-next-line @typescript-eslint/require-await -- the interface is async; failures reject
  async encode(payloads: Payload[], context?: SerializationContext, orgId?: string): Promise<Payload[]> {
    const org = orgOfWorkflowId(context?.workflowId) ?? orgId;
    return payloads.map((p) => {
      const plain = temporal.api.common.v1.Payload.encode(p).finish();
      const iv = this.ivs.next();
      const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
      const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: {
          encoding: utf8(ENCRYPTED_ENCODING),
          [KEY_ID]: utf8(this.current.id),
          [CIPHER]: utf8('AES-256-GCM'),
          ...(org && {
            [ORG]: utf8(org),
            [ORG_MAC]: this.orgMac(this.current.id, this.current.key, org, iv),
          }),
        },
        data: sealed,
      };
    });
  }

  /**
   * The organization a payload names, once its label is verified; `undefined` for a payload that
   * names none (not encrypted, written before payloads named their organization, outside a
   * conversation) or whose label does not verify (relabelled).
   */
  orgOf(p: Payload): string | undefined {
    const org = text(p.metadata?.[ORG]);
    const mac = p.metadata?.[ORG_MAC];
    const key = this.keys.get(text(p.metadata?.[KEY_ID]) ?? '');
    if (org === undefined || !mac || !key || !p.data || p.data.length < IV_BYTES) return undefined;
    const id = text(p.metadata?.[KEY_ID])!;
    const want = this.orgMac(id, key, org, p.data.subarray(0, IV_BYTES));
    return mac.length === want.length && timingSafeEqual(mac, want) ? org : undefined;
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- the interface is async; failures reject
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      // Written before encryption was on (or by another client): passed through as it is.
      if (text(p.metadata?.encoding) !== ENCRYPTED_ENCODING) return p;
      const id = text(p.metadata?.[KEY_ID]) ?? '';
      const key = this.keys.get(id);
      if (!key) throw new PayloadKeyError(`no payload key with id "${id}" is configured`);
      const data = Buffer.from(p.data ?? new Uint8Array());
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      const plain = Buffer.concat([
        decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)),
        decipher.final(),
      ]);
      return temporal.api.common.v1.Payload.decode(plain);
    });
  }
}
