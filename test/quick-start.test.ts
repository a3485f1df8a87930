/**
 * The README's quick start, as a user runs it: the service (src/main.ts) on its embedded defaults
 * (PGlite store, the sandbox), then `npm run demo` playing a whole conversation through it. Only
 * what must differ on a shared test machine is set: the test's Temporal server, free ports, a
 * temporary data directory and task queue.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../src/temporal/launcher';
import { waitFor } from './bridge-harness';

const ROOT = path.join(__dirname, '..');

/** Settings a user's shell would not have: the defaults apply instead. */
const NOT_SET = [
  'ADMIN_API_TOKEN',
  'DATABASE_URL',
  'BRIDGE_URL',
  'TEMPORAL_METRICS_ADDRESS',
  'ENCRYPTION_KEY',
];

function run(script: string, env: NodeJS.ProcessEnv): ChildProcess {
  const merged = { ...process.env, ...env };
  for (const k of NOT_SET) delete merged[k];
  return spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, script)], {
    cwd: ROOT,
    env: merged,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Two free ports in a row (the sandbox's Creatio and OpenCX emulators). */
async function freePair(): Promise<number> {
  for (;;) {
    const p = await freePort();
    const net = await import('node:net');
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer().once('error', () => resolve(false));
      s.listen(p + 1, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return p;
  }
}

describe('quick start: npm start on embedded defaults, then npm run demo', () => {
  let service: ChildProcess | undefined;
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  let serviceOutput = '';

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'bridge-quick-start-'));
    env = {
      PORT: String(await freePort()),
      SANDBOX_PORT: String(await freePair()),
      DATA_DIR: dataDir,
      TEMPORAL_TASK_QUEUE: `quick-start-${randomUUID().slice(0, 8)}`,
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'json',
    };
    service = run('src/main.ts', env);
    service.stdout!.on('data', (d: Buffer) => (serviceOutput += d.toString()));
    service.stderr!.on('data', (d: Buffer) => (serviceOutput += d.toString()));
    await waitFor(
      'the service ready',
      async () => {
        if (service!.exitCode !== null) throw new Error(`the service exited: ${serviceOutput.slice(-2000)}`);
        const res = await fetch(`http://127.0.0.1:${env.PORT}/readyz`).catch(() => undefined);
        return res?.ok;
      },
      90_000,
    );
  });
  after(async () => {
    if (service && service.exitCode === null) {
      const exited = new Promise((r) => service!.once('exit', r));
      service.kill('SIGTERM');
      await exited;
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  it('plays a conversation from the first message to the resolved session, and prints the links', async () => {
    const demo = run('src/sandbox/demo.ts', env);
    let out = '';
    demo.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    demo.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => demo.once('exit', resolve));
    assert.equal(code, 0, `${out}\n--- service:\n${serviceOutput.slice(-3000)}`);
    assert.match(out, /Case SR\d+ created in Creatio/);
    assert.match(out, /3 messages logged/);
    assert.match(out, /the reply reached the customer through OpenCX/);
    assert.match(out, /OpenCX session closed_resolved/);
    assert.match(out, new RegExp(`Admin console: +http://127\\.0\\.0\\.1:${env.PORT}/admin/`));
    assert.match(
      out,
      /Temporal UI: +http:\/\/localhost:\d+\/namespaces\/default\/workflows\/conversation%3Asandbox%3Ademo-/,
    );
  });

  it('answers the admin console and the OpenAPI document on the same port', async () => {
    const page = await fetch(`http://127.0.0.1:${env.PORT}/admin/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Settings → Integrations → Creatio/);
    const doc = (await (await fetch(`http://127.0.0.1:${env.PORT}/openapi.json`)).json()) as {
      openapi: string;
    };
    assert.equal(doc.openapi, '3.1.0');
  });
});
