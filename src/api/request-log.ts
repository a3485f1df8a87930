import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Express, NextFunction, Request, Response } from 'express';
import type { Level, Logger } from 'pino';
import { redactUrl } from '../logger';

declare module 'http' {
  interface IncomingMessage {
    /** The request's id: its `x-request-id` when it sent a usable one, else a new UUID. */
    id: string;
    /** A logger whose lines carry the request (`req.id`, method, URL without secrets). */
    readonly log: Logger;
  }
}

const REQUEST_ID = /^[\w.-]{1,128}$/;
const CHILD = Symbol('request logger');

export interface RequestLogOptions {
  /** Requests that write no line when they complete (probes, metrics scrapes). */
  ignore: (req: Request) => boolean;
  /** The level of a completed request's line, or `silent` for none. */
  level: (req: Request, res: Response) => Level | 'silent';
}

/**
 * Request ids and request logging for an app: every answer carries `x-request-id`; a completed
 * request writes one line ("request completed", "request errored" for a 5xx, "request aborted"
 * when the client left first) at the level `options.level` gives.
 *
 * `req.log` is made the first time something logs (a getter on the app's request prototype): an
 * accepted webhook logs nothing at info, and a child logger per request (its bindings serialized
 * and redacted) is work on the webhook's path for nothing
 * (docs/decisions/0032-the-webhook-path-measured-alone.md).
 */
export function useRequestLog(app: Express, log: Logger, options: RequestLogOptions): void {
  Object.defineProperty(app.request, 'log', {
    configurable: true,
    get(this: Request & { [CHILD]?: Logger }): Logger {
      // The URL as received: routers mounted on a prefix shorten req.url, not req.originalUrl.
      return (this[CHILD] ??= log.child({
        req: { id: this.id, method: this.method, url: redactUrl(this.originalUrl || this.url || '') },
      }));
    },
  });
  app.use((req: Request, res: Response, next: NextFunction): void => {
    const incoming = req.headers['x-request-id'];
    const id = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader('x-request-id', id);
    req.id = id;
    if (!options.ignore(req)) {
      const started = performance.now();
      const done = () => {
        res.off('finish', done);
        res.off('close', done);
        const level = options.level(req, res);
        if (level === 'silent' || !log.isLevelEnabled(level)) return;
        const line = {
          res: { statusCode: res.statusCode },
          responseTime: Math.round(performance.now() - started),
        };
        if (!res.writableFinished) req.log[level](line, 'request aborted');
        else if (res.statusCode >= 500) req.log[level](line, 'request errored');
        else req.log[level](line, 'request completed');
      };
      res.on('finish', done);
      res.on('close', done);
    }
    next();
  });
}
