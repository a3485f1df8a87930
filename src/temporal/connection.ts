/**
 * How the bridge connects to a Temporal server other than its embedded dev server: plain (a private
 * network), TLS (server verified, optionally against a private CA), mTLS (a client certificate) or
 * an API key (Temporal Cloud, which also implies TLS).
 */
import { readFileSync } from 'node:fs';

export interface TemporalSecurity {
  tls: boolean;
  caPath?: string;
  certPath?: string;
  keyPath?: string;
  serverName?: string;
  apiKey?: string;
}

export interface ConnectionSecurityOptions {
  tls?: {
    serverNameOverride?: string;
    serverRootCACertificate?: Buffer;
    clientCertPair?: { crt: Buffer; key: Buffer };
  };
  apiKey?: string;
}

/** Options shared by the client's Connection and the workers' NativeConnection. */
export function connectionSecurity(
  s: TemporalSecurity,
  read: (path: string) => Buffer = (p) => readFileSync(p),
): ConnectionSecurityOptions {
  const useTls = s.tls || Boolean(s.apiKey) || Boolean(s.certPath);
  if (!useTls) return {};
  return {
    tls: {
      ...(s.serverName && { serverNameOverride: s.serverName }),
      ...(s.caPath && { serverRootCACertificate: read(s.caPath) }),
      ...(s.certPath && s.keyPath && { clientCertPair: { crt: read(s.certPath), key: read(s.keyPath) } }),
    },
    ...(s.apiKey && { apiKey: s.apiKey }),
  };
}
