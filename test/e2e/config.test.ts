import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, ENV_VARIABLES, loadConfig } from '../../src/config';
import { readFileSync } from 'node:fs';

describe('configuration', () => {
  it('has working defaults for development', () => {
    const c = loadConfig({});
    assert.equal(c.port, 8080);
    assert.equal(c.sandbox, true);
    assert.equal(c.temporal.uiPort, 8233);
    assert.equal(c.databaseUrl, undefined);
  });

  it('lists every bad variable at once, without echoing values', () => {
    try {
      loadConfig({
        PORT: 'eighty',
        DATABASE_URL: 'mysql://x',
        ENCRYPTION_KEY: 'c2hvcnQ=',
        LOG_LEVEL: 'loud',
        SANDBOX: 'maybe',
      });
      assert.fail('expected a ConfigError');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      const vars = err.problems.map((p) => p.split(':')[0]);
      assert.deepEqual(vars.sort(), ['DATABASE_URL', 'ENCRYPTION_KEY', 'LOG_LEVEL', 'PORT', 'SANDBOX']);
      assert.ok(!err.message.includes('c2hvcnQ='));
    }
  });

  it('refuses a history check interval under a second (each check reads OpenCX)', () => {
    for (const v of ['0s', '500ms', '0m']) {
      assert.throws(() => loadConfig({ HISTORY_CHECK_AFTER: v }), /HISTORY_CHECK_AFTER/);
    }
    assert.equal(loadConfig({ HISTORY_CHECK_AFTER: '1s' }).historyCheckAfter, '1s');
  });

  it('the activation timeout: off by default, or a duration Node takes as a vm timeout', () => {
    assert.equal(loadConfig({}).workerActivationTimeout, 'off');
    assert.equal(loadConfig({ WORKER_ACTIVATION_TIMEOUT: '5s' }).workerActivationTimeout, '5s');
    for (const v of ['0s', '0ms', '50d', 'none', '5']) {
      assert.throws(() => loadConfig({ WORKER_ACTIVATION_TIMEOUT: v }), /WORKER_ACTIVATION_TIMEOUT/);
    }
  });

  it('requires the production essentials', () => {
    assert.throws(
      () => loadConfig({ NODE_ENV: 'production' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        ['ENCRYPTION_KEY', 'ADMIN_API_TOKEN', 'DATABASE_URL', 'TEMPORAL_ADDRESS', 'PUBLIC_BASE_URL'].every(
          (v) => err.problems.some((p) => p.startsWith(v)),
        ),
    );
  });

  it('documents every variable in .env.example', () => {
    const example = readFileSync(path.join(__dirname, '..', '..', '.env.example'), 'utf8');
    for (const v of ENV_VARIABLES)
      assert.match(example, new RegExp(`^#?\\s*${v}=`, 'm'), `${v} is not in .env.example`);
  });

  it('makes the service exit non-zero listing every problem', () => {
    const res = spawnSync(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, '..', '..', 'src', 'main.ts')],
      {
        env: { PATH: process.env.PATH, PORT: '0x', NODE_ENV: 'production', TEMPORAL_ADDRESS: 'nope' },
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    assert.equal(res.status, 2, res.stderr);
    for (const v of ['PORT', 'TEMPORAL_ADDRESS', 'ENCRYPTION_KEY', 'ADMIN_API_TOKEN', 'DATABASE_URL'])
      assert.match(res.stderr, new RegExp(`${v}:`));
  });
});

describe('docker-compose.yml', () => {
  it('gives the bridge only variables the service reads', () => {
    const compose = readFileSync(path.join(__dirname, '..', '..', 'docker-compose.yml'), 'utf8');
    const block = /x-bridge-env: &bridge-env\n((?: {2}.*\n)+)/.exec(compose)?.[1] ?? '';
    const keys = [...block.matchAll(/^ {2}([A-Z_]+):/gm), ...compose.matchAll(/^ {6}(RUN_[A-Z]+):/gm)].map(
      (m) => m[1]!,
    );
    assert.ok(keys.length > 10);
    for (const k of keys) assert.ok(ENV_VARIABLES.includes(k), `${k} is not read by the service`);
  });
});
