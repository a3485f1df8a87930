/**
 * The README's quick start, as a user runs it: the service (src/main.ts) on its embedded defaults
 * (PGlite store, the sandbox), then `npm run demo` playing a whole conversation through it. Only
 * what must differ on a shared test machine is set: the test's Temporal server, free ports, a
 * temporary data directory and task queue.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../src/temporal/launcher';
import { freePair, runToEnd, startService, type Service } from '../processes';

describe('quick start: npm start on embedded defaults, then npm run demo', () => {
  let service: Service | undefined;
  let dataDir: string;
  let env: NodeJS.ProcessEnv;

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
    service = await startService(env);
  });
  after(async () => {
    await service?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('plays a conversation from the first message to the resolved session, and prints the links', async () => {
    const { code, out } = await runToEnd('src/sandbox/demo.ts', env);
    assert.equal(code, 0, `${out}\n--- service:\n${service!.output().slice(-3000)}`);
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
