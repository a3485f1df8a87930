/**
 * The service and its scripts as a user runs them (`npm start`, `npm run demo`): child processes
 * on the project's own entry points, with only what must differ on a shared test machine set.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort } from '../src/temporal/launcher';
import { waitFor } from './bridge-harness';

const ROOT = path.join(__dirname, '..');

/** Settings a user's shell would not have: the defaults apply instead, unless a test sets them. */
const NOT_SET = [
  'ADMIN_API_TOKEN',
  'DATABASE_URL',
  'BRIDGE_URL',
  'TEMPORAL_METRICS_ADDRESS',
  'ENCRYPTION_KEY',
  // npm test's bundle built ahead: `npm start` bundles the workflows at start, as a user's does.
  'WORKFLOW_BUNDLE',
];

/**
 * Runs a project script (`src/main.ts`, `src/sandbox/demo.ts` through tsx, or a compiled
 * `dist/src/main.js` with plain Node) with `env` over this process's.
 */
export function runScript(script: string, env: NodeJS.ProcessEnv, unset: string[] = []): ChildProcess {
  const inherited = { ...process.env };
  for (const k of [...NOT_SET, ...unset]) delete inherited[k];
  const merged = { ...inherited, ...env };
  const file = path.join(ROOT, script);
  return spawn(process.execPath, script.endsWith('.ts') ? ['--import', 'tsx', file] : [file], {
    cwd: ROOT,
    env: merged,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Two free ports in a row (the sandbox's Creatio and OpenCX emulators). */
export async function freePair(): Promise<number> {
  for (;;) {
    const p = await freePort();
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer().once('error', () => resolve(false));
      s.listen(p + 1, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return p;
  }
}

export interface Service {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** `npm start` (or another entry point, `script`) with `env`, once /readyz answers on env.PORT. */
export async function startService(
  env: NodeJS.ProcessEnv,
  unset: string[] = [],
  script = 'src/main.ts',
): Promise<Service> {
  const child = runScript(script, env, unset);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const service: Service = {
    child,
    output: () => out,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
  try {
    await waitFor(
      'the service ready',
      async () => {
        if (child.exitCode !== null) throw new Error(`the service exited: ${out.slice(-2000)}`);
        const res = await fetch(`http://127.0.0.1:${env.PORT}/readyz`).catch(() => undefined);
        return res?.ok;
      },
      90_000,
    );
  } catch (err) {
    await service.stop();
    throw err;
  }
  return service;
}

/** Runs a script to its end: its exit code and everything it printed. */
export async function runToEnd(
  script: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string }> {
  const child = runScript(script, env);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, out };
}

/** Debian's chromium (or CHROMIUM_PATH), for the browser tests. */
export const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p): p is string => !!p && existsSync(p),
);
