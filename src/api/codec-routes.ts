import express, { Router, type Request, type RequestHandler } from 'express';
import type { Payload, PayloadCodec, SerializationContext } from '@temporalio/common';
import { z } from 'zod';
import { ApiError } from '../errors';
import { parseBody } from './errors';

/** The bridge's codec: encoding at the endpoint names the caller's organization (see EncryptionCodec). */
export interface OrgPayloadCodec extends PayloadCodec {
  encode(payloads: Payload[], context?: SerializationContext, orgId?: string): Promise<Payload[]>;
  /** The organization a payload proves it belongs to (a codec without labels: none). */
  orgOf?(payload: Payload): string | undefined;
}

/** Temporal's codec-server body: payloads in proto3 JSON (bytes as base64). */
export const payloadsSchema = z.strictObject({
  payloads: z
    .array(
      z.object({
        metadata: z.record(z.string(), z.base64()).optional(),
        data: z.base64().optional(),
      }),
    )
    .max(1_000),
});

type JsonPayload = { metadata?: Record<string, string>; data?: string };

const fromJson = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]),
  ),
  data: Buffer.from(p.data ?? '', 'base64'),
});

const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [
      k,
      Buffer.from(v ?? new Uint8Array()).toString('base64'),
    ]),
  ),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

/**
 * An organization's token decodes only payloads that name its organization: a payload of another
 * organization, or one that names none (written before payloads named it, or outside a
 * conversation), is the operator's to read.
 */
function checkScope(req: Request, codec: OrgPayloadCodec, payloads: Payload[]): void {
  const a = req.access;
  if (a?.kind !== 'org') return;
  const orgs = payloads.map((p) => codec.orgOf?.(p));
  if (orgs.every((o) => o === a.orgId)) return;
  throw new ApiError(
    403,
    'forbidden_organization',
    orgs.includes(undefined)
      ? `This token decodes payloads of organization ${a.orgId} only; ${orgs.filter((o) => o === undefined).length} of these name no organization (history written before payloads named it), which needs the operator token`
      : `This token decodes payloads of organization ${a.orgId} only`,
  );
}

const LOOPBACK_HOST = /^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/;
const LOOPBACK_PEER = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/**
 * A call made on this machine, to this machine: the peer is loopback, nothing forwarded it (a
 * local proxy would bring others' calls), and the Host is loopback (a page whose name was
 * rebound to 127.0.0.1 names its own host).
 */
function localCall(req: Request): boolean {
  return (
    LOOPBACK_PEER.test(req.socket.remoteAddress ?? '') &&
    req.headers['x-forwarded-for'] === undefined &&
    req.headers.forwarded === undefined &&
    LOOPBACK_HOST.test(req.headers.host ?? '')
  );
}

/** `http://127.0.0.1:8233` for a UI origin of `http://localhost:8233` (and the other way round). */
function sameUiOnLoopback(origin: string, uiOrigin: string): boolean {
  try {
    const a = new URL(origin);
    const b = new URL(uiOrigin);
    return (
      a.protocol === b.protocol &&
      a.port === b.port &&
      LOOPBACK_HOST.test(a.host) &&
      LOOPBACK_HOST.test(b.host)
    );
  } catch {
    return false;
  }
}

/**
 * POST /codec/encode and /codec/decode, the codec server of the Temporal UI and CLI: the operator
 * token reads every conversation, an organization's token its own organization's. CORS admits
 * the configured UI origin only. With `openOnLoopback` (development), a call from this machine
 * needs no token, so the embedded dev server's UI decodes the history as it shows it.
 */
export function codecRouter(deps: {
  codec: OrgPayloadCodec;
  uiOrigin: string;
  auth: RequestHandler;
  openOnLoopback?: boolean;
}): Router {
  const r = Router();
  const gate: RequestHandler = (req, res, next) => {
    if (deps.openOnLoopback && !req.headers.authorization && localCall(req)) {
      req.access = { kind: 'operator' };
      next();
      return;
    }
    deps.auth(req, res, next);
  };
  r.use('/codec', (req, res, next) => {
    const origin = req.headers.origin;
    if (
      origin &&
      (origin === deps.uiOrigin || (deps.openOnLoopback && sameUiOnLoopback(origin, deps.uiOrigin)))
    ) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('access-control-allow-credentials', 'true');
      res.setHeader('access-control-allow-headers', 'authorization, content-type, x-namespace');
      res.setHeader('access-control-allow-methods', 'POST, OPTIONS');
      res.setHeader('vary', 'origin');
    }
    if (req.method === 'OPTIONS') {
      res.status(204).end();
      return;
    }
    next();
  });
  for (const op of ['encode', 'decode'] as const) {
    r.post(`/codec/${op}`, gate, express.json({ limit: '4mb', type: () => true }), async (req, res) => {
      const body = parseBody(payloadsSchema, req.body);
      const payloads = body.payloads.map(fromJson);
      const orgId = req.access?.kind === 'org' ? req.access.orgId : undefined;
      if (op === 'decode') checkScope(req, deps.codec, payloads);
      let out: Payload[];
      try {
        out =
          op === 'decode'
            ? await deps.codec.decode(payloads)
            : await deps.codec.encode(payloads, undefined, orgId);
      } catch (err) {
        throw new ApiError(
          400,
          'payload_not_decodable',
          `The payloads could not be ${op}d: ${(err as Error).message}`,
          {
            fix: 'Check that ENCRYPTION_KEYS (the payload keys derive from it) or TEMPORAL_PAYLOAD_KEYS still lists the key id these payloads were written with.',
          },
        );
      }
      res.json({ payloads: out.map(toJson) });
    });
  }
  return r;
}
