/**
 * What one call into a `vm` context costs with and without a timeout (Node makes a watchdog thread
 * for every call with one; docs/decisions/0031-activations-without-a-watchdog.md). The SDK makes
 * several such calls per workflow activation.
 *
 *   npx tsx bench/vm-timeout.ts
 */
import vm from 'node:vm';

const CALLS = 20_000;
const context = vm.createContext({ x: 0 }, { microtaskMode: 'afterEvaluate' });
const script = new vm.Script('x++');
for (const timeout of [undefined, 5_000]) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < CALLS; i++) script.runInContext(context, timeout ? { timeout } : {});
  const wallUs = ((performance.now() - t0) * 1000) / CALLS;
  const cpu = process.cpuUsage(cpu0);
  const cpuUs = (cpu.user + cpu.system) / CALLS;
  console.log(
    `${timeout ? `timeout ${timeout} ms` : 'no timeout'}: ${wallUs.toFixed(1)} µs wall, ${cpuUs.toFixed(1)} µs CPU per call (${CALLS} calls, node ${process.version})`,
  );
}
