/**
 * `npm run build`, after the compiler: bundles the workflows into one file, which the workers load
 * from WORKFLOW_BUNDLE instead of bundling at every start (the Dockerfile sets it).
 *
 *   node dist/src/temporal/bundle-workflows.js dist/workflow-bundle.js
 */
import path from 'node:path';
import { writeWorkflowBundle } from '../worker';

async function main(): Promise<void> {
  const out = process.argv[2];
  if (!out) throw new Error('usage: bundle-workflows <output file>');
  const started = Date.now();
  await writeWorkflowBundle(path.resolve(out));
  console.log(`workflow bundle written to ${out} in ${Date.now() - started} ms`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
