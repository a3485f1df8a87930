import http from 'node:http';
import type { Config } from '../config';

/**
 * The HTTP server of the API and of a worker-only process: a slow or idle client cannot hold a
 * connection past the timeouts, and at most `maxConnections` are served at once (more are closed
 * as they arrive).
 */
export function createHttpServer(listener: http.RequestListener, limits: Config['http']): http.Server {
  const server = http.createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // How often the two timeouts above are checked (Node's default, 30 s, would let them run over).
      connectionsCheckingInterval: Math.min(5_000, Math.ceil(limits.headersTimeoutMs / 2)),
    },
    listener,
  );
  server.maxConnections = limits.maxConnections;
  return server;
}
