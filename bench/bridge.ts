import { createLogger } from '../src/logger';
import { startTemporal } from '../src/temporal/launcher';
import { Bridge, type BridgeOptions } from '../test/bridge-harness';

/** A whole bridge for a benchmark: its own Temporal dev server (or TEMPORAL_ADDRESS), quiet logs. */
export async function startBenchBridge(
  o: Omit<BridgeOptions, 'temporalAddress' | 'log'> = {},
): Promise<{ bridge: Bridge; stop: () => Promise<void> }> {
  const log = createLogger('error');
  const temporal = await startTemporal({
    address: process.env.TEMPORAL_ADDRESS,
    cliPath: process.env.TEMPORAL_CLI_PATH,
    log,
  });
  const bridge = await new Bridge({
    temporalAddress: temporal.address,
    log,
    store: process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite',
    ...o,
  }).start();
  return {
    bridge,
    stop: async () => {
      await bridge.close();
      await temporal.stop();
    },
  };
}
