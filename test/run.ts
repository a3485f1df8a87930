/**
 * `npm test`: brings up one Temporal dev server through the service's own launcher (or uses
 * TEMPORAL_ADDRESS), then runs every test file with Node's test runner against it.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { Client } from 'pg';
import { createLogger } from '../src/logger';
import { TEST_SCHEMA_PREFIX } from './helpers';
import { startTemporal } from '../src/temporal/launcher';

async function testFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.test.ts'))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

/** Each test store lives in its own schema; the previous run's are dropped here. */
async function dropTestSchemas(url: string): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ nspname: string }>(
      `SELECT nspname FROM pg_namespace WHERE nspname LIKE '${TEST_SCHEMA_PREFIX}%'`,
    );
    for (const r of rows) await client.query(`DROP SCHEMA ${r.nspname} CASCADE`);
  } finally {
    await client.end();
  }
}

async function main(): Promise<number> {
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'info');
  const root = path.resolve(__dirname);
  const only = process.argv.slice(2);
  const files = only.length > 0 ? only.map((f) => path.resolve(f)) : await testFiles(root);
  const databaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  await dropTestSchemas(databaseUrl);
  const started = Date.now();
  const temporal = await startTemporal({
    address: process.env.TEMPORAL_ADDRESS,
    cliPath: process.env.TEMPORAL_CLI_PATH,
    log,
    // Small histories in tests so that continue-as-new happens for real.
    extraArgs: ['--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=300'],
  });
  log.info(
    { address: temporal.address, source: temporal.source, ms: Date.now() - started },
    'test Temporal server ready',
  );
  const env = {
    ...process.env,
    TEMPORAL_ADDRESS: temporal.address,
    TEST_DATABASE_URL: databaseUrl,
  };
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      '--test-reporter=spec',
      `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`,
      ...files,
    ],
    { stdio: 'inherit', env },
  );
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.once('SIGINT', forward).once('SIGTERM', forward);
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  await temporal.stop();
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
