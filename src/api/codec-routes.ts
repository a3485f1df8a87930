import express, { Router, type RequestHandler } from 'express';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { z } from 'zod';
import { ApiError } from '../errors';
import { parseBody } from './errors';

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
 * POST /codec/encode and /codec/decode, the codec server of the Temporal UI and CLI: operators
 * read encrypted conversations with the admin token. CORS admits the configured UI origin only.
 */
export function codecRouter(deps: { codec: PayloadCodec; uiOrigin: string; auth: RequestHandler[] }): Router {
  const r = Router();
  r.use('/codec', (req, res, next) => {
    if (req.headers.origin === deps.uiOrigin) {
      res.setHeader('access-control-allow-origin', deps.uiOrigin);
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
    r.post(
      `/codec/${op}`,
      ...deps.auth,
      express.json({ limit: '4mb', type: () => true }),
      async (req, res) => {
        const body = parseBody(payloadsSchema, req.body);
        let out: Payload[];
        try {
          out = await deps.codec[op](body.payloads.map(fromJson));
        } catch (err) {
          throw new ApiError(
            400,
            'payload_not_decodable',
            `The payloads could not be ${op}d: ${(err as Error).message}`,
            {
              fix: 'Check that TEMPORAL_PAYLOAD_KEYS still lists the key id these payloads were written with.',
            },
          );
        }
        res.json({ payloads: out.map(toJson) });
      },
    );
  }
  return r;
}
