/**
 * How long one workflow activation may run (WORKER_ACTIVATION_TIMEOUT; docs/decisions/0031).
 *
 * The TypeScript SDK runs each activation in a V8 context with a timeout (`isolateExecutionTimeout`,
 * 5 s by default): a workflow that never yields fails its task instead of holding the workflow
 * thread. Node enforces a `vm` timeout with a watchdog thread that it creates and joins on every
 * call (nodejs/node#47739; bench/vm-timeout.ts: about 0.23 ms a call here), and the SDK makes several calls per
 * activation: a quarter of the worker's CPU per message under load. `off` runs activations without
 * the timeout. The SDK has no option for that (every duration it takes becomes a timeout), so its
 * compiled worker options are adjusted once, for the workers asked to (isolateExecutionTimeout 0,
 * which the SDK alone would pass to Node as an invalid timeout, failing every activation).
 */
import type { Duration } from '@temporalio/common';

type Compile = (
  opts: { isolateExecutionTimeout?: unknown },
  ...rest: unknown[]
) => { isolateExecutionTimeoutMs?: number };

let installed = false;

function install(): void {
  if (installed) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const options = require('@temporalio/worker/lib/worker-options') as { compileWorkerOptions?: Compile };
  const compile = options.compileWorkerOptions;
  if (typeof compile !== 'function') {
    throw new Error(
      "WORKER_ACTIVATION_TIMEOUT=off: this Temporal SDK's worker options are not where they were; set a duration (e.g. 5s)",
    );
  }
  options.compileWorkerOptions = (opts, ...rest) => {
    const off = opts.isolateExecutionTimeout === 0;
    const compiled = compile(off ? { ...opts, isolateExecutionTimeout: '5s' } : opts, ...rest);
    if (off) compiled.isolateExecutionTimeoutMs = undefined;
    return compiled;
  };
  installed = true;
}

/**
 * The worker option for a WORKER_ACTIVATION_TIMEOUT setting: a duration, or `off`. The SDK reads
 * `isolateExecutionTimeout` from the options it is given, though its WorkerOptions type does not
 * list it (test/e2e/activation-timeout.test.ts checks both settings reach the workflow's context).
 */
export function activationTimeoutOption(setting: string): { isolateExecutionTimeout: Duration } {
  if (setting !== 'off') return { isolateExecutionTimeout: setting as Duration };
  install();
  return { isolateExecutionTimeout: 0 };
}
