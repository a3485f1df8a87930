/**
 * The production build as the Dockerfile makes and runs it: `npm run build` compiles to dist/ and
 * bundles the workflows into dist/workflow-bundle.js; `node dist/src/main.js`, with WORKFLOW_BUNDLE
 * naming that file, loads it instead of bundling at start, and serves the quick start's
 * conversation. A file that is not a bundle stops the service at start with a named error.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../src/temporal/launcher';
import { freePair, runScript, runToEnd, startService, type Service } from '../processes';

const ROOT = path.join(__dirname, '..', '..');
const BUNDLE = path.join(ROOT, 'dist', 'workflow-bundle.js');

function npmRunBuild(): Promise<{ code: number | null; out: string }> {
  const child = spawn('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, out })));
}

describe('the production build: npm run build, then node dist/src/main.js on its workflow bundle', () => {
  let service: Service | undefined;
  let dataDir: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    const build = await npmRunBuild();
    assert.equal(build.code, 0, build.out);
    assert.match(build.out, /workflow bundle written to dist\/workflow-bundle\.js/);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'bridge-production-build-'));
    env = {
      PORT: String(await freePort()),
      SANDBOX_PORT: String(await freePair()),
      DATA_DIR: dataDir,
      TEMPORAL_TASK_QUEUE: `production-build-${randomUUID().slice(0, 8)}`,
      NODE_ENV: 'development',
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      WORKFLOW_BUNDLE: BUNDLE,
    };
  });
  after(async () => {
    await service?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('the service built into dist/ loads the bundle and plays a conversation to the resolved session', async () => {
    service = await startService(env, [], 'dist/src/main.js');
    const running = service
      .output()
      .split('\n')
      .filter((l) => l.includes('"msg":"worker running"'))
      .map((l) => JSON.parse(l) as { workflowBundle?: string });
    assert.deepEqual(
      running.map((l) => l.workflowBundle),
      [BUNDLE],
      'the worker runs on the bundle built ahead',
    );
    const { code, out } = await runToEnd('src/sandbox/demo.ts', env);
    assert.equal(code, 0, `${out}\n--- service:\n${service.output().slice(-3000)}`);
    assert.match(out, /Case SR\d+ created in Creatio/);
    assert.match(out, /3 messages logged/);
    assert.match(out, /the reply reached the customer through OpenCX/);
    assert.match(out, /OpenCX session closed_resolved/);
    const page = await fetch(`http://127.0.0.1:${env.PORT}/admin/`);
    assert.equal(page.status, 200, 'the admin console is in the build');
  });

  /** `node dist/src/main.js` on `bundle`, to its exit: its code and everything it printed. */
  async function startOn(bundle: string, dir: string): Promise<{ code: number | null; out: string }> {
    const child = runScript('dist/src/main.js', {
      ...env,
      PORT: String(await freePort()),
      SANDBOX_PORT: String(await freePair()),
      DATA_DIR: path.join(dataDir, dir),
      WORKFLOW_BUNDLE: bundle,
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    return { code, out };
  }

  it('the compiled service finds the project, and the Temporal CLI that npm run temporal:install built', async () => {
    const printed = spawnSync(
      process.execPath,
      ['--eval', "process.stdout.write(require('./dist/src/temporal/launcher.js').DEFAULT_CACHE_DIR)"],
      { cwd: ROOT, encoding: 'utf8' },
    );
    assert.equal(printed.status, 0, printed.stderr);
    assert.equal(printed.stdout, path.join(ROOT, '.cache', 'temporal'));
  });

  it('a WORKFLOW_BUNDLE that is not a bundle stops the service at start, named', async () => {
    const notABundle = path.join(dataDir, 'main.js');
    await writeFile(notABundle, await readFile(path.join(ROOT, 'dist', 'src', 'main.js')));
    const { code, out } = await startOn(notABundle, 'second');
    assert.notEqual(code, 0);
    assert.match(out, /WORKFLOW_BUNDLE \S+main\.js is not a workflow bundle of this service/);
  });

  it('the compiled worker module, which holds the mark as a string, is not taken for a bundle', async () => {
    const { code, out } = await startOn(path.join(ROOT, 'dist', 'src', 'worker.js'), 'third');
    assert.notEqual(code, 0);
    assert.match(out, /WORKFLOW_BUNDLE \S+worker\.js is not a workflow bundle of this service/);
  });
});
