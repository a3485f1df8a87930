// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import { builtinModules } from 'node:module';

// Workflow code runs in Temporal's deterministic sandbox: no Node built-ins, no I/O libraries,
// and activities may only be imported as types.
const forbiddenInWorkflows = [
  ...builtinModules,
  ...builtinModules.map((m) => `node:${m}`),
  'express',
  'pg',
  'pino',
  'pino-http',
  'zod',
  '@electric-sql/pglite',
  '@temporalio/client',
  '@temporalio/worker',
  '@temporalio/activity',
  '@temporalio/testing',
].filter((m) => m !== 'assert');

// Only the entry point starts the sandbox (emulators, demo data): the bridge itself never depends on it.
const sandboxFromMainOnly = {
  group: ['**/sandbox', '**/sandbox/*'],
  message: 'Only the entry point (src/main.ts) starts the sandbox.',
};

// src/api/app.ts assembles the routes: a route file takes what it needs from deps.ts and params.ts,
// never from app.ts (which imports every route file).
const nothingImportsApp = {
  regex: '^(\\.\\.?/)+(api/)?app$',
  message: 'Route files import AppDeps from ./deps and shared parameters from ./params, never ./app.',
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.data/**', '.cache/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true },
      ],
    },
  },
  {
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: forbiddenInWorkflows.map((name) => ({
            name,
            message: 'Workflow code must be deterministic: do I/O in an activity.',
          })),
          patterns: [
            {
              group: ['**/activities', '**/activities/*', '!**/activities/types'],
              allowTypeImports: true,
              message: 'Import activities as types only (import type).',
            },
            sandboxFromMainOnly,
          ],
        },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/main.ts', 'src/sandbox/**', 'src/workflows/**', 'src/api/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [sandboxFromMainOnly] }] },
  },
  {
    // The API reaches Temporal through the workflow client (src/workflow-client/client.ts) only.
    files: ['src/api/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: '@temporalio/client',
              allowTypeImports: true,
              message:
                'The API reaches Temporal through the workflow client (src/workflow-client/client.ts).',
            },
          ],
          patterns: [sandboxFromMainOnly, nothingImportsApp],
        },
      ],
    },
  },
  {
    // Tests and the emulators read arbitrary JSON loosely; the strict rules stay on for the bridge.
    files: ['test/**/*.ts', 'bench/**/*.ts', 'src/sandbox/emulators/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
  { files: ['**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  {
    // The admin console's script runs in the browser, untyped.
    files: ['src/api/admin/static/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      sourceType: 'script',
      globals: { ...globals.browser },
    },
  },
  prettier,
);
