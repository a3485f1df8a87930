/**
 * The layering rules of eslint.config.mjs, each shown failing on a deliberate violation (and the
 * allowed form passing): workflow code imports no I/O, only the entry point imports the sandbox,
 * the API reaches Temporal through the workflow client only, and no file of the API imports app.ts.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ESLint } from 'eslint';

const ROOT = path.join(__dirname, '..', '..');

/** The project's own configuration, only its import rule (the type-aware rules need files on disk). */
const eslint = new ESLint({
  cwd: ROOT,
  ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports',
  overrideConfig: { languageOptions: { parserOptions: { projectService: false, project: null } } },
});

async function restricted(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

describe('lint: the layers of the code', () => {
  it('workflow code imports no Node built-in, no I/O library, and activities as types only', async () => {
    const file = 'src/workflows/conversation/fixture.ts';
    assert.match((await restricted(file, "import { readFile } from 'node:fs';\n")).join(), /deterministic/);
    assert.match((await restricted(file, "import { Client } from 'pg';\n")).join(), /deterministic/);
    assert.match(
      (await restricted(file, "import { createActivities } from '../../activities';\n")).join(),
      /as types only/,
    );
    assert.deepEqual(
      await restricted(file, "import type { BridgeActivities } from '../../activities';\n"),
      [],
    );
  });

  it('only the entry point imports the sandbox', async () => {
    const code = "import { startSandbox } from '../sandbox';\n";
    assert.match((await restricted('src/api/fixture.ts', code)).join(), /Only the entry point/);
    assert.match((await restricted('src/store/fixture.ts', code)).join(), /Only the entry point/);
    assert.match(
      (await restricted('src/workflows/fixture.ts', "import { x } from '../sandbox/demo';\n")).join(),
      /Only the entry point/,
    );
    assert.deepEqual(await restricted('src/main.ts', "import { startSandbox } from './sandbox';\n"), []);
  });

  it('the API reaches Temporal through the workflow client only', async () => {
    const file = 'src/api/fixture.ts';
    assert.match(
      (await restricted(file, "import { WorkflowNotFoundError } from '@temporalio/client';\n")).join(),
      /through the workflow client/,
    );
    assert.deepEqual(await restricted(file, "import type { Client } from '@temporalio/client';\n"), []);
    assert.deepEqual(
      await restricted(file, "import { withTemporal } from '../workflow-client/client';\n"),
      [],
    );
  });

  it('no file of the API imports app.ts (it imports them)', async () => {
    const viaApp = "import type { AppDeps } from './app';\n";
    assert.match((await restricted('src/api/fixture-routes.ts', viaApp)).join(), /never \.\/app/);
    assert.match(
      (await restricted('src/api/admin/fixture.ts', "import type { AppDeps } from '../app';\n")).join(),
      /never \.\/app/,
    );
    assert.deepEqual(
      await restricted('src/api/fixture-routes.ts', "import type { AppDeps } from './deps';\n"),
      [],
    );
    assert.deepEqual(await restricted('src/api/fixture-routes.ts', "import { x } from './applied';\n"), []);
  });
});
