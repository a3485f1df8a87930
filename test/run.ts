/**
 * `npm test`: brings up one Temporal dev server through the service's own launcher (or uses
 * TEMPORAL_ADDRESS), then runs every test file with Node's test runner against it.
 *
 * The layers, fastest first (`npm run test:unit`, `npm run test:workflow`), each a folder:
 * - test/unit/: no Temporal server. Activities (MockActivityEnvironment) against the emulators, the
 *   API routes that need no workflow, the store, the clients, the call limiter, the replay corpus.
 * - test/workflow/: the conversation workflow with its activities faked in memory.
 * - test/e2e/: end to end (real workers, emulators, store).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { createLogger } from '../src/logger';
import { TEST_SCHEMA_PREFIX } from './helpers';
import { startTemporal } from '../src/temporal/launcher';
import { writeWorkflowBundle } from '../src/worker';

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

/**
 * A test file's layer is its top folder under test/: unit/ (no Temporal server), workflow/ (the
 * workflow with its activities faked in memory), e2e/ (everything else).
 */
function layerOf(root: string, file: string): 'unit' | 'workflow' | 'e2e' {
  const top = path.relative(root, file).split(path.sep)[0];
  if (top === 'unit' || top === 'workflow' || top === 'e2e') return top;
  throw new Error(
    `${path.relative(root, file)}: a test file belongs in test/unit/, test/workflow/ or test/e2e/`,
  );
}

async function main(): Promise<number> {
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'info');
  const root = path.resolve(__dirname);
  const args = process.argv.slice(2);
  const layer = args.find((a) => a.startsWith('--layer='))?.slice('--layer='.length);
  const only = args.filter((a) => !a.startsWith('--layer='));
  let files = only.length > 0 ? only.map((f) => path.resolve(f)) : await testFiles(root);
  if (layer) files = files.filter((f) => layerOf(root, f) === layer);
  const needsTemporal = files.some((f) => layerOf(root, f) !== 'unit');
  const databaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  await dropTestSchemas(databaseUrl);
  const started = Date.now();
  // The workflow code, bundled once for every test process and worker child process (as the
  // Dockerfile's build does for production), instead of once in each. Always from src/workflows:
  // a WORKFLOW_BUNDLE in the shell (dist/, built before an edit) would test older code.
  const bundling = mkdtemp(path.join(tmpdir(), 'workflow-bundle-')).then(async (dir) => {
    const file = path.join(dir, 'workflow-bundle.js');
    await writeWorkflowBundle(file);
    log.info({ file, ms: Date.now() - started }, 'workflow bundle built');
    return file;
  });
  const temporal = needsTemporal
    ? await startTemporal({
        address: process.env.TEMPORAL_ADDRESS,
        cliPath: process.env.TEMPORAL_CLI_PATH,
        log,
        // Small histories in tests so that continue-as-new happens for real.
        extraArgs: ['--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=300'],
      })
    : undefined;
  if (temporal) {
    log.info(
      { address: temporal.address, source: temporal.source, ms: Date.now() - started },
      'test Temporal server ready',
    );
  }
  const bundle = await bundling.catch(async (err: unknown) => {
    await temporal?.stop();
    throw err;
  });
  // Every OData request any test's Creatio emulator receives is checked against Creatio's own
  // configuration (src/sandbox/emulators/creatio-conformance.ts); what fails is written here.
  const conformanceLog = path.join(await mkdtemp(path.join(tmpdir(), 'creatio-conformance-')), 'log.jsonl');
  const env = {
    ...process.env,
    ...(temporal && { TEMPORAL_ADDRESS: temporal.address }),
    TEST_DATABASE_URL: databaseUrl,
    CREATIO_CONFORMANCE_LOG: conformanceLog,
    WORKFLOW_BUNDLE: bundle,
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
  await temporal?.stop();
  await rm(path.dirname(bundle), { recursive: true, force: true });
  const unknown = await readFile(conformanceLog, 'utf8').catch(() => '');
  if (unknown.trim()) {
    const lines = [...new Set(unknown.trim().split('\n'))];
    console.error(
      `\nCreatio conformance: ${lines.length} request(s) name what Creatio's configuration does not have:\n${lines.join('\n')}`,
    );
    return code || 1;
  }
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
