/**
 * `npm test`: brings up one Temporal dev server through the service's own launcher (or uses
 * TEMPORAL_ADDRESS), then runs every test file with Node's test runner against it.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { createLogger } from '../src/logger';
import { startTemporal } from '../src/temporal/launcher';

async function testFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.test.ts'))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

async function main(): Promise<number> {
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'info');
  const root = path.resolve(__dirname);
  const only = process.argv.slice(2);
  const files = only.length > 0 ? only.map((f) => path.resolve(f)) : await testFiles(root);
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
    TEST_DATABASE_URL: process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
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
