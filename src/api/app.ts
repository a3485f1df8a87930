import express from 'express';
import { secretEquals } from '../crypto';
import { ApiError } from '../errors';
import { redactUrl } from '../logger';
import { errorHandler } from './errors';
import { AdminAccess, scoped } from './access';
import { attentionRouter } from './attention-routes';
import { adminRouter } from './admin';
import { adminTokensRouter } from './admin-tokens-routes';
import { codecRouter } from './codec-routes';
import { creatioWebhookRouter } from './creatio-webhook';
import type { AppDeps } from './deps';
import { diagnoseRouter } from './diagnose-routes';
import { failureCounter, FailureLimiter } from './failure-limiter';
import { opencxEventsRouter } from './opencx-events-routes';
import { OpencxIngress } from './opencx-ingress';
import { opencxWebhookRouter } from './opencx-webhook';
import { useRequestLog, type RequestLogOptions } from './request-log';
import { openApiDocument } from './openapi';
import { sessionsRouter } from './sessions-routes';
import { settingsRouter } from './settings-routes';

/** Liveness, readiness and metrics: the part of the app every process serves. */
function opsRoutes(app: express.Express, deps: OpsDeps): void {
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  // Ready or not for anyone (probes); what is not, and why, for the operator token only.
  app.get('/readyz', async (req, res) => {
    const header = req.headers.authorization;
    const token = header ? /^Bearer\s+(\S+)$/i.exec(header)?.[1] : undefined;
    const operator = deps.config?.adminApiToken;
    if (header && !(token && operator && secretEquals(token, operator))) {
      throw new ApiError(401, 'invalid_admin_token', 'The details of /readyz need the operator token');
    }
    const r = await deps.readiness();
    res.status(r.ready ? 200 : 503).json(header ? r : { ready: r.ready });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.contentType).send(await deps.metrics.render());
  });
}

type OpsDeps = Pick<AppDeps, 'metrics' | 'readiness' | 'log'> & {
  config?: Pick<AppDeps['config'], 'adminApiToken' | 'trustProxy'>;
};

/** A request's path as received (routers mounted on a prefix shorten req.url and req.path). */
const pathOf = (req: express.Request) => req.originalUrl.split('?', 1)[0]!;

/** What every request logs (src/api/request-log.ts), in the API and in a worker-only process. */
const REQUEST_LOG: RequestLogOptions = {
  ignore: (req) => pathOf(req) === '/healthz' || pathOf(req) === '/metrics',
  // An accepted webhook is one line per customer message: at debug, like the success of any
  // hot path (counted in bridge_http_requests_total). So is a ready answer to a readiness probe,
  // which an orchestrator sends every few seconds. Refusals, failures and 503s stay at info.
  level: (req, res) =>
    res.statusCode < 300 &&
    ((req.method === 'POST' && pathOf(req).startsWith('/webhooks/')) ||
      (req.method === 'GET' && pathOf(req) === '/readyz'))
      ? 'debug'
      : 'info',
};

/** What a worker-only process (RUN_API=false) serves: /healthz, /readyz and /metrics. */
export function createOpsApp(deps: OpsDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.config?.trustProxy ?? 'loopback');
  useRequestLog(app, deps.log, REQUEST_LOG);
  opsRoutes(app, deps);
  app.use((req) => {
    throw new ApiError(404, 'route_not_found', `No route for ${req.method} ${redactUrl(req.path)}`);
  });
  app.use(failureCounter(new FailureLimiter()));
  app.use(errorHandler);
  return app;
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // No ETag on JSON answers: nothing revalidates them, and hashing every webhook's answer was a
  // cost on its path (docs/decisions/0032-the-webhook-path-measured-alone.md). Static files keep
  // theirs.
  app.set('etag', false);
  app.set('trust proxy', deps.config.trustProxy ?? 'loopback');

  useRequestLog(app, deps.log, REQUEST_LOG);
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

  opsRoutes(app, deps);
  const openapi = openApiDocument(deps.config.publicBaseUrl);
  app.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });

  app.use(adminRouter(deps));

  const limiter = deps.authFailures ?? new FailureLimiter();
  const access = new AdminAccess(deps.config.adminApiToken, deps.store);
  const admin = access.authenticate();
  const opencx = new OpencxIngress(deps);
  app.use(opencxWebhookRouter(deps, opencx));
  app.use(creatioWebhookRouter(deps));
  if (deps.codec) {
    app.use(
      codecRouter({
        codec: deps.codec,
        uiOrigin: deps.config.temporalUiOrigin ?? 'http://localhost:8233',
        auth: admin,
        // Only for the embedded dev server's own UI: development, no TEMPORAL_ADDRESS.
        openOnLoopback:
          deps.config.env === 'development' && !!deps.config.temporal && !deps.config.temporal.address,
      }),
    );
  }
  app.use('/v1', admin, scoped, express.json({ limit: '1mb' }));
  app.use(adminTokensRouter(deps, access));
  app.use(settingsRouter(deps));
  app.use(sessionsRouter(deps));
  app.use(diagnoseRouter(deps));
  app.use(attentionRouter(deps));
  app.use(opencxEventsRouter(deps, opencx));

  app.use((req) => {
    throw new ApiError(404, 'route_not_found', `No route for ${req.method} ${redactUrl(req.path)}`);
  });
  app.use(failureCounter(limiter));
  app.use(errorHandler);
  return app;
}
