import type { ConnectionSecurityOptions } from './connection';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { access, constants, mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Connection } from '@temporalio/client';
import type { Logger } from '../logger';
import { SEARCH_ATTRIBUTE_TYPES } from './search-attributes';

/** The only Temporal CLI version that `go install` can build (later tags carry a replace directive). */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

export interface TemporalServer {
  address: string;
  namespace: string;
  /** Web UI, when this process started the dev server with one. */
  uiUrl: string | undefined;
  /** How the server was found: an existing address, a binary we started, or the SDK's download. */
  source: 'address' | 'binary' | 'sdk-download';
  /** The server's process, when this process started it (CPU figures of the benchmark). */
  pid?: number;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** TLS / mTLS / API key for a configured server (TEMPORAL_ADDRESS). */
  security?: ConnectionSecurityOptions;
  /** Use this running server (TEMPORAL_ADDRESS) instead of starting one. */
  address?: string;
  namespace?: string;
  cliPath?: string;
  /** Where a built CLI is cached (default <project>/.cache/temporal). */
  cacheDir?: string;
  /** SQLite file for the dev server; omitted → in memory. */
  dbFile?: string;
  port?: number;
  /** Web UI port; omitted → headless. */
  uiPort?: number;
  /** The codec endpoint the Web UI decodes payloads with (the bridge's /codec, development only). */
  uiCodecEndpoint?: string;
  extraArgs?: string[];
  log: Logger;
  readyTimeoutMs?: number;
}

/**
 * The project's directory: the nearest one above `from` with a package.json. Run from `src/` or
 * compiled into `dist/src/`, the same directory (and so the same `.cache/temporal`).
 */
export function projectRoot(from: string = __dirname): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(from, '..', '..');
  }
}

export const PROJECT_ROOT = projectRoot();
export const DEFAULT_CACHE_DIR = path.join(PROJECT_ROOT, '.cache', 'temporal');

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function onPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && (await isExecutable(path.join(dir, name)))) return path.join(dir, name);
  }
  return undefined;
}

/** Where the SDK downloads the dev server from (its Rust core's default). */
const DOWNLOAD_HOST = 'https://temporal.download/';

/**
 * Whether the SDK's download of the dev server can reach its host: a short check, so that a machine
 * without internet goes on to the Go build at once instead of waiting for the download to fail.
 */
export async function downloadReachable(timeoutMs = 3_000): Promise<boolean> {
  try {
    const res = await fetch(DOWNLOAD_HOST, { method: 'HEAD', signal: AbortSignal.timeout(timeoutMs) });
    return res.status < 500;
  } catch {
    return false;
  }
}

/**
 * Finds the Temporal CLI: TEMPORAL_CLI_PATH, `temporal` on PATH, the project's cached build, or a
 * fresh build with the local Go toolchain. `undefined` when none of these is possible.
 */
export async function resolveTemporalCli(opts: {
  cliPath?: string;
  cacheDir?: string;
  log: Logger;
  build?: boolean;
}): Promise<string | undefined> {
  if (opts.cliPath) {
    if (await isExecutable(opts.cliPath)) return opts.cliPath;
    throw new Error(`TEMPORAL_CLI_PATH=${opts.cliPath} is not an executable file`);
  }
  const found = await onPath('temporal');
  if (found) return found;
  const cacheDir = opts.cacheDir ?? DEFAULT_CACHE_DIR;
  const cached = path.join(cacheDir, 'bin', 'temporal');
  if (await isExecutable(cached)) return cached;
  if (opts.build === false) return undefined;
  const go =
    (await onPath('go')) ??
    ((await isExecutable('/usr/local/go/bin/go')) ? '/usr/local/go/bin/go' : undefined);
  if (!go) return undefined;
  await buildTemporalCli(go, cacheDir, opts.log);
  return cached;
}

export async function buildTemporalCli(go: string, cacheDir: string, log: Logger): Promise<void> {
  await mkdir(path.join(cacheDir, 'bin'), { recursive: true });
  log.info(
    { module: TEMPORAL_CLI_MODULE, into: path.join(cacheDir, 'bin') },
    'building the Temporal CLI with Go (several minutes the first time, seconds once Go has cached it)',
  );
  const started = Date.now();
  const child = spawn(go, ['install', '-v', TEMPORAL_CLI_MODULE], {
    env: { ...process.env, GOBIN: path.join(cacheDir, 'bin'), GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let lines = 0;
  const tail: string[] = [];
  const progress = setInterval(() => {
    log.info(
      { packages: lines, seconds: Math.round((Date.now() - started) / 1000) },
      'still building the Temporal CLI',
    );
  }, 15_000);
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      lines++;
      tail.push(line);
      if (tail.length > 20) tail.shift();
    });
  }
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(progress);
  if (code !== 0) {
    throw new Error(`go install ${TEMPORAL_CLI_MODULE} failed (exit ${code}):\n${tail.join('\n')}`);
  }
  log.info({ seconds: Math.round((Date.now() - started) / 1000) }, 'Temporal CLI built');
}

async function portInUse(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Waits until the frontend answers GetSystemInfo. */
export async function waitForTemporal(
  address: string,
  timeoutMs: number,
  exited?: () => string | undefined,
  security: ConnectionSecurityOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    const why = exited?.();
    if (why) throw new Error(why);
    try {
      const conn = await Connection.connect({ address, connectTimeout: 2_000, ...security });
      try {
        await conn.workflowService.getSystemInfo({});
        return;
      } finally {
        await conn.close();
      }
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`Temporal at ${address} was not ready after ${timeoutMs} ms: ${String(lastError)}`);
}

/**
 * The dev server re-reads search attributes from its database on every visibility read and write,
 * so that one created at run time is seen at once. The bridge's are all registered at start: the
 * cache is right, and the reads cost the server a database query per workflow start.
 */
const SEARCH_ATTRIBUTE_CACHE_ARGS = [
  '--dynamic-config-value',
  'system.forceSearchAttributesCacheRefreshOnRead=false',
];

/**
 * The embedded server's database file: WAL with synchronous=NORMAL, so a commit is not synced to
 * disk on its own, only at checkpoints. A crash of the process (kill -9 included) loses nothing; a
 * power loss or OS crash can lose the last commits before a checkpoint
 * (docs/decisions/0028-load-and-the-floor.md). Production runs a Temporal server on PostgreSQL.
 */
const SQLITE_ARGS = ['--sqlite-pragma', 'journal_mode=WAL', '--sqlite-pragma', 'synchronous=NORMAL'];

/**
 * Brings up the Temporal server the service uses: the one at `address` if given; else the CLI dev
 * server (SQLite file, Web UI, the bridge's search attributes); else the SDK's downloaded one.
 */
export async function startTemporal(opts: StartOptions): Promise<TemporalServer> {
  const namespace = opts.namespace ?? 'default';
  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;
  if (opts.address) {
    await waitForTemporal(opts.address, readyTimeoutMs, undefined, opts.security);
    return {
      address: opts.address,
      namespace,
      uiUrl: undefined,
      source: 'address',
      stop: () => Promise.resolve(),
    };
  }
  const port = opts.port ?? (await freePort());
  if (await portInUse(port)) {
    throw new Error(
      `port ${port} is already in use: another Temporal server? Set TEMPORAL_ADDRESS=127.0.0.1:${port} to use it, or TEMPORAL_PORT to start ours elsewhere`,
    );
  }
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--namespace',
    namespace,
    '--log-format',
    'json',
    '--log-level',
    'warn',
    '--dynamic-config-value',
    'frontend.enableServerVersionCheck=false',
    ...SEARCH_ATTRIBUTE_CACHE_ARGS,
    ...Object.entries(SEARCH_ATTRIBUTE_TYPES).flatMap(([name, type]) => [
      '--search-attribute',
      `${name}=${type}`,
    ]),
    ...(opts.uiPort ? ['--ui-port', String(opts.uiPort)] : ['--headless']),
    ...(opts.uiPort && opts.uiCodecEndpoint ? ['--ui-codec-endpoint', opts.uiCodecEndpoint] : []),
    ...(opts.extraArgs ?? []),
  ];
  if (opts.dbFile) {
    await mkdir(path.dirname(opts.dbFile), { recursive: true });
    args.push('--db-filename', opts.dbFile, ...SQLITE_ARGS);
  }
  const address = `127.0.0.1:${port}`;
  // First start: a CLI already here (TEMPORAL_CLI_PATH, PATH, the cache); else the SDK's download
  // when its host answers (a minute); else a build with Go (minutes, and works offline).
  let cli = await resolveTemporalCli({
    cliPath: opts.cliPath,
    cacheDir: opts.cacheDir,
    log: opts.log,
    build: false,
  });
  if (!cli && (await downloadReachable())) return startWithSdkDownload(opts, port, namespace);
  cli ??= await resolveTemporalCli({ cliPath: opts.cliPath, cacheDir: opts.cacheDir, log: opts.log });
  if (!cli) return startWithSdkDownload(opts, port, namespace);

  const child: ChildProcess = spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => {
      tail.push(line);
      if (tail.length > 30) tail.shift();
      if (/"level":"(error|fatal)"/.test(line))
        opts.log.warn({ temporal: line.slice(0, 2000) }, 'temporal dev server');
    });
  }
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolve();
    }),
  );
  try {
    await waitForTemporal(address, readyTimeoutMs, () =>
      exitCode !== undefined ? `temporal dev server exited with ${exitCode}:\n${tail.join('\n')}` : undefined,
    );
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  opts.log.info(
    { address, cli, db: opts.dbFile ?? 'in-memory', ui: opts.uiPort ?? 'headless' },
    'temporal dev server ready',
  );
  return {
    address,
    namespace,
    uiUrl: opts.uiPort ? `http://localhost:${opts.uiPort}` : undefined,
    source: 'binary',
    ...(child.pid !== undefined && { pid: child.pid }),
    async stop() {
      if (exitCode !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function startWithSdkDownload(
  opts: StartOptions,
  port: number,
  namespace: string,
): Promise<TemporalServer> {
  opts.log.warn('no Temporal CLI here: letting @temporalio/testing download the dev server');
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const { SEARCH_ATTRIBUTE_KEYS } = await import('./search-attributes');
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      port,
      namespace,
      ...(opts.dbFile && { dbFilename: opts.dbFile }),
      ...(opts.uiPort && { uiPort: opts.uiPort }),
      searchAttributes: Object.values(SEARCH_ATTRIBUTE_KEYS),
      extraArgs: [
        ...(opts.extraArgs ?? []),
        ...SEARCH_ATTRIBUTE_CACHE_ARGS,
        ...(opts.dbFile ? SQLITE_ARGS : []),
        ...(opts.uiPort && opts.uiCodecEndpoint ? ['--ui-codec-endpoint', opts.uiCodecEndpoint] : []),
      ],
    },
  });
  return {
    address: env.address,
    namespace,
    uiUrl: opts.uiPort ? `http://localhost:${opts.uiPort}` : undefined,
    source: 'sdk-download',
    stop: () => env.teardown(),
  };
}
