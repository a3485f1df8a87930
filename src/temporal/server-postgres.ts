/**
 * `npm run temporal:server`: the production topology on one machine, a real Temporal server
 * (v1.29.1, built with Go) on the local PostgreSQL, its schema set up by temporal-sql-tool.
 *
 *   npm run temporal:server              # build if needed, set up, run in the foreground
 *   npm run temporal:server -- --detach  # the same, returns once the server answers (CI, tests)
 *   npm run temporal:server -- --stop    # stops a detached server
 *   --for-tests                          # small histories (continue-as-new at 300 events)
 *
 * Then run the bridge, the tests or the benchmark with TEMPORAL_ADDRESS=127.0.0.1:7333.
 * Settings: TEMPORAL_SERVER_PORT (7333; the other services use the next ports, see `ports`),
 * TEMPORAL_SERVER_PG (postgres://postgres@127.0.0.1:5432), TEMPORAL_SERVER_DIR (.cache/temporal-server).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { overlayDynamicConfig } from './dynamic-config';
import { PROJECT_ROOT } from './launcher';
import { SEARCH_ATTRIBUTE_TYPES } from './search-attributes';

const run = promisify(execFile);
const VERSION = 'v1.29.1';
const DIR = path.resolve(
  process.env.TEMPORAL_SERVER_DIR ?? path.join(PROJECT_ROOT, '.cache', 'temporal-server'),
);
const PORT = Number(process.env.TEMPORAL_SERVER_PORT ?? 7333);
const PG = new URL(process.env.TEMPORAL_SERVER_PG ?? 'postgres://postgres@127.0.0.1:5432');
const GO = process.env.GO ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go');

/** Every port the server listens on, from the frontend's. */
export function ports(base: number) {
  return {
    frontend: base,
    frontendHttp: base + 10,
    history: base + 1,
    matching: base + 2,
    worker: base + 6,
    frontendMembership: base + 100,
    historyMembership: base + 101,
    matchingMembership: base + 102,
    workerMembership: base + 106,
    pprof: base + 200,
    metrics: base + 201,
  };
}

const log = (msg: string) => process.stderr.write(`temporal:server ${msg}\n`);

async function build(): Promise<{ server: string; sql: string }> {
  const bin = path.join(DIR, 'bin');
  const server = path.join(bin, 'server');
  const sql = path.join(bin, 'sql');
  const env = { ...process.env, GOBIN: bin, GOTOOLCHAIN: 'local' };
  for (const [file, pkg] of [
    [server, `go.temporal.io/server/cmd/server@${VERSION}`],
    [sql, `go.temporal.io/server/cmd/tools/sql@${VERSION}`],
  ] as const) {
    if (existsSync(file)) continue;
    log(`building ${pkg} with Go (a few minutes the first time)`);
    await run(GO, ['install', pkg], { env, maxBuffer: 64 * 1024 * 1024 });
  }
  return { server, sql };
}

async function moduleDir(): Promise<string> {
  const { stdout } = await run(GO, ['env', 'GOMODCACHE']);
  return path.join(stdout.trim(), `go.temporal.io/server@${VERSION}`);
}

/** Creates (or brings up to date) the two databases and their schemas. */
async function setUpSchema(sql: string, mod: string): Promise<void> {
  const base = [
    '--plugin',
    'postgres12',
    '--ep',
    PG.hostname,
    '-p',
    PG.port || '5432',
    '-u',
    decodeURIComponent(PG.username || 'postgres'),
    ...(PG.password ? ['--pw', decodeURIComponent(PG.password)] : []),
  ];
  for (const [db, schema] of [
    ['temporal', 'temporal'],
    ['temporal_visibility', 'visibility'],
  ] as const) {
    const versioned = path.join(mod, 'schema', 'postgresql', 'v12', schema, 'versioned');
    const tool = (...args: string[]) => run(sql, [...base, '--db', db, ...args]);
    const created = await tool('create-database').then(
      () => true,
      (err: { stderr?: string }) => {
        if (/already exists/.test(err.stderr ?? '')) return false;
        throw err;
      },
    );
    if (created) await tool('setup-schema', '-v', '0.0');
    await tool('update-schema', '-d', versioned);
    log(`schema of ${db} ${created ? 'created' : 'up to date'}`);
  }
}

/** The module's PostgreSQL development config, pointed at our database and ports. */
async function writeConfig(mod: string, forTests: boolean): Promise<string> {
  const p = ports(PORT);
  let yaml = await readFile(path.join(mod, 'config', 'development-postgres12.yaml'), 'utf8');
  const replace = (from: RegExp, to: string) => {
    if (!from.test(yaml)) throw new Error(`the server's config template changed: ${from.source}`);
    yaml = yaml.replace(from, to);
  };
  replace(/user: "temporal"/g, `user: "${decodeURIComponent(PG.username || 'postgres')}"`);
  replace(/password: "temporal"/g, `password: "${decodeURIComponent(PG.password)}"`);
  replace(/connectAddr: "127\.0\.0\.1:5432"/g, `connectAddr: "${PG.hostname}:${PG.port || '5432'}"`);
  replace(/level: info/, 'level: warn');
  for (const [service, grpc, membership] of [
    ['frontend', p.frontend, p.frontendMembership],
    ['matching', p.matching, p.matchingMembership],
    ['history', p.history, p.historyMembership],
    ['worker', p.worker, p.workerMembership],
  ] as const) {
    replace(
      new RegExp(`(  ${service}:\\n    rpc:\\n      grpcPort: )\\d+(\\n      membershipPort: )\\d+`),
      `$1${grpc}$2${membership}`,
    );
  }
  replace(/httpPort: 7243/, `httpPort: ${p.frontendHttp}`);
  replace(/rpcAddress: "localhost:7233"/, `rpcAddress: "127.0.0.1:${p.frontend}"`);
  replace(/port: 7936/, `port: ${p.pprof}`);
  replace(/listenAddress: "127\.0\.0\.1:8000"/, `listenAddress: "127.0.0.1:${p.metrics}"`);
  replace(
    /filepath: "config\/dynamicconfig\/development-sql\.yaml"/,
    'filepath: "config/dynamicconfig.yaml"',
  );
  const configDir = path.join(DIR, 'config');
  await mkdir(configDir, { recursive: true });
  await writeFile(path.join(configDir, 'development.yaml'), yaml);
  const dynamic = await readFile(path.join(mod, 'config', 'dynamicconfig', 'development-sql.yaml'), 'utf8');
  const bridge = await readFile(path.join(PROJECT_ROOT, 'deploy', 'temporal', 'dynamicconfig.yaml'), 'utf8');
  // The bridge's settings, then this server's own: laid over the module's config in one pass.
  const local = `frontend.enableServerVersionCheck:
  - value: false
${
  forTests
    ? `# Small histories in tests, so that continue-as-new happens for real (as test/run.ts asks of the dev server).
limit.historyCount.suggestContinueAsNew:
  - value: 300
`
    : ''
}`;
  await writeFile(
    path.join(configDir, 'dynamicconfig.yaml'),
    `${overlayDynamicConfig(dynamic.replace(/localhost:7243/g, `localhost:${p.frontendHttp}`), `${bridge.trimEnd()}\n${local}`)}\n`,
  );
  return configDir;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Waits until the frontend answers, then registers the namespace and the search attributes. */
async function prepareNamespace(): Promise<void> {
  const address = `127.0.0.1:${PORT}`;
  const deadline = Date.now() + 120_000;
  let connection: Connection | undefined;
  while (!connection) {
    try {
      connection = await Connection.connect({ address, connectTimeout: 2_000 });
      await connection.workflowService.getSystemInfo({});
    } catch (err) {
      await connection?.close();
      connection = undefined;
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
  try {
    const svc = connection.workflowService;
    for (;;) {
      try {
        await svc.registerNamespace({
          namespace: 'default',
          workflowExecutionRetentionPeriod: msToTs('3 days'),
        });
        break;
      } catch (err) {
        if (/already exists|AlreadyExists/i.test(String(err))) break;
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
    const { IndexedValueType } = temporal.api.enums.v1;
    const types: Record<string, number> = { Keyword: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD };
    const wanted = Object.fromEntries(
      Object.entries(SEARCH_ATTRIBUTE_TYPES).map(([name, type]) => [name, types[type]!]),
    );
    for (;;) {
      try {
        await connection.operatorService.addSearchAttributes({
          namespace: 'default',
          searchAttributes: wanted,
        });
        break;
      } catch (err) {
        if (/already exists|AlreadyExists/i.test(String(err))) break;
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
  } finally {
    await connection.close();
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const pidFile = path.join(DIR, 'server.pid');
  if (args.includes('--stop')) {
    const pid = Number(await readFile(pidFile, 'utf8').catch(() => ''));
    if (pid) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
      await rm(pidFile, { force: true });
      log(`stopped (pid ${pid})`);
    }
    return;
  }
  if (await listening(PORT)) {
    log(`a server already answers on 127.0.0.1:${PORT}`);
    await prepareNamespace();
    return;
  }
  const { server, sql } = await build();
  const mod = await moduleDir();
  await setUpSchema(sql, mod);
  await writeConfig(mod, args.includes('--for-tests'));
  const detach = args.includes('--detach');
  const child = spawn(
    server,
    ['--root', DIR, '--config', 'config', '--env', 'development', '--allow-no-auth', 'start'],
    { cwd: DIR, stdio: detach ? ['ignore', 'ignore', 'ignore'] : 'inherit', detached: detach },
  );
  await writeFile(pidFile, String(child.pid));
  await prepareNamespace();
  log(
    `ready: TEMPORAL_ADDRESS=127.0.0.1:${PORT} (PostgreSQL ${PG.host}, databases temporal, temporal_visibility)`,
  );
  if (detach) {
    child.unref();
    return;
  }
  const stop = () => child.kill('SIGTERM');
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await new Promise((r) => child.once('exit', r));
}

main().catch((err: unknown) => {
  log(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
