import { randomUUID } from 'node:crypto';
import express, { type RequestHandler } from 'express';
import { pinoHttp } from 'pino-http';
import type { Config } from '../config';
import { secretEquals } from '../crypto';
import { ApiError } from '../errors';
import { redactUrl, type Logger } from '../logger';
import type { TestOptions } from '../settings/test-and-save';
import type { Client } from '@temporalio/client';
import type { CreatioInbox } from './creatio-inbox';
import type { ConversationOptions } from '../workflows/conversation';
import type { Store } from '../store';
import { errorHandler } from './errors';
import type { Metrics } from './metrics';
import { creatioWebhookRouter } from './creatio-webhook';
import { opencxWebhookRouter } from './opencx-webhook';
import { sessionsRouter } from './sessions-routes';
import { settingsRouter } from './settings-routes';

export interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

export interface AppDeps {
  config: Pick<Config, 'publicBaseUrl' | 'adminApiToken' | 'creatioRequestTimeoutMs'>;
  store: Store;
  log: Logger;
  metrics: Metrics;
  readiness: () => Promise<Readiness>;
  testOptions?: Partial<TestOptions>;
  /** Temporal client and the options new conversations start with; absent → conversation routes answer 503. */
  conversations?: {
    client: Client;
    taskQueue: string;
    options: ConversationOptions;
    creatioInbox?: CreatioInbox;
  };
}

function adminAuth(token: string | undefined): RequestHandler {
  return (req, _res, next) => {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) {
      throw new ApiError(401, 'unauthorized', 'Missing "Authorization: Bearer <ADMIN_API_TOKEN>"');
    }
    if (!token || !secretEquals(m[1]!, token)) {
      throw new ApiError(401, 'invalid_admin_token', 'The admin API token is not valid');
    }
    next();
  };
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback');

  app.use(
    pinoHttp({
      logger: deps.log,
      genReqId: (req, res) => {
        const incoming = req.headers['x-request-id'];
        const id = typeof incoming === 'string' && /^[\w.-]{1,128}$/.test(incoming) ? incoming : randomUUID();
        res.setHeader('x-request-id', id);
        return id;
      },
      serializers: {
        req: (req: { id: string; method: string; url: string }) => ({
          id: req.id,
          method: req.method,
          url: redactUrl(req.url),
        }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
      autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/metrics' },
    }),
  );
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const route = (req.route as { path?: string } | undefined)?.path ?? 'unmatched';
      const labels = { method: req.method, route, status: String(res.statusCode) };
      deps.metrics.httpRequests.inc(labels);
      deps.metrics.httpDuration.observe({ route }, Number(process.hrtime.bigint() - started) / 1e9);
    });
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const r = await deps.readiness();
    res.status(r.ready ? 200 : 503).json(r);
  });
  app.get('/metrics', (_req, res) => {
    res.type('text/plain; version=0.0.4').send(deps.metrics.render());
  });

  app.use(opencxWebhookRouter(deps));
  app.use(creatioWebhookRouter(deps));
  app.use('/v1', adminAuth(deps.config.adminApiToken), express.json({ limit: '1mb' }));
  app.use(settingsRouter(deps));
  app.use(sessionsRouter(deps));

  app.use((req) => {
    throw new ApiError(404, 'route_not_found', `No route for ${req.method} ${redactUrl(req.path)}`);
  });
  app.use(errorHandler);
  return app;
}
