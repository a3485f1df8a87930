/**
 * The Temporal server's dynamic config: `npm run temporal:server` (the tests on PostgreSQL) runs
 * with the file Compose mounts, laid over the server module's development config.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { overlayDynamicConfig } from '../../src/temporal/dynamic-config';

const DEPLOYED = readFileSync(
  path.resolve(__dirname, '..', '..', 'deploy', 'temporal', 'dynamicconfig.yaml'),
  'utf8',
);

/** Each top-level key and the lines under it. */
function blocks(yaml: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of yaml.split('\n')) {
    const key = /^([A-Za-z][\w.]*):\s*$/.exec(line)?.[1];
    if (key !== undefined) {
      assert.ok(!out.has(key), `${key} is set twice`);
      current = [];
      out.set(key, current);
    } else if (/^[ \t-]/.test(line)) current?.push(line.trim());
    else current = undefined;
  }
  return out;
}

describe('Temporal dynamic config', () => {
  it('Compose turns on task-queue fairness, which the shared task queues rely on', () => {
    assert.deepEqual(blocks(DEPLOYED).get('matching.enableFairness'), ['- value: true']);
  });

  it('lays the deployed settings over the base: each key once, the deployed value wins', () => {
    const base = [
      '#frontend.persistenceMaxQPS:',
      '#- value: 3000',
      'limit.maxIDLength:',
      '  - value: 1000',
      '    constraints: {}',
      'system.enableNexus:',
      '  - value: true',
      'matching.enableFairness:',
      '  - value: false',
      'history.enableTransitionHistory:',
      '  - value: true',
      '',
    ].join('\n');
    const merged = blocks(overlayDynamicConfig(base, DEPLOYED));
    assert.deepEqual(merged.get('limit.maxIDLength'), ['- value: 255', 'constraints: {}']);
    assert.deepEqual(merged.get('matching.enableFairness'), ['- value: true']);
    assert.deepEqual(merged.get('system.enableNexus'), ['- value: true']);
    assert.deepEqual(merged.get('history.enableTransitionHistory'), ['- value: true']);
    for (const key of blocks(DEPLOYED).keys()) assert.ok(merged.has(key), key);
  });
});
