/* Installs the Temporal CLI used by `npm start` and the tests (CI runs this before `npm test`). */
import { createLogger } from '../logger';
import { resolveTemporalCli } from './launcher';

async function main(): Promise<void> {
  const log = createLogger(process.env.LOG_LEVEL ?? 'info');
  const started = Date.now();
  const cli = await resolveTemporalCli({ cliPath: process.env.TEMPORAL_CLI_PATH, log });
  if (!cli) {
    log.warn(
      'no Temporal CLI found and no Go toolchain to build it: the SDK will try to download one at start',
    );
    return;
  }
  log.info({ cli, seconds: Math.round((Date.now() - started) / 100) / 10 }, 'Temporal CLI ready');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
