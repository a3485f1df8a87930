import type { Logger } from './logger';
import { settingsInputSchema } from './settings/schema';
import { testSettings } from './settings/test-and-save';
import type { Store } from './store';

export const SANDBOX_ORG_ID = 'sandbox';

/**
 * The sandbox for trying the bridge without accounts: the Creatio emulator from test/emulators on
 * a fixed port, and an organization "sandbox" connected to it through the same Test & Save an
 * admin would use. The emulator keeps its records in memory only.
 */
export async function startSandbox(opts: { port: number; store: Store; log: Logger; timeoutMs: number }) {
  const { startCreatioEmulator, SANDBOX_CLIENT } = await import('../test/emulators/creatio');
  const creatio = await startCreatioEmulator(opts.port);
  const existing = await opts.store.getOrg(SANDBOX_ORG_ID);
  if (!existing || existing.settings.instanceUrl !== creatio.url) {
    const input = settingsInputSchema.parse({ instanceUrl: creatio.url, ...SANDBOX_CLIENT });
    const result = await testSettings(input, existing?.settings, { timeoutMs: opts.timeoutMs });
    if (!result.ok || !result.settings) {
      throw new Error(`sandbox Test & Save failed: ${JSON.stringify(result.checks.filter((c) => !c.ok))}`);
    }
    await opts.store.saveOrg(SANDBOX_ORG_ID, result.settings);
  }
  opts.log.info(
    { creatio: creatio.url, orgId: SANDBOX_ORG_ID },
    'sandbox Creatio emulator running; organization "sandbox" is connected to it',
  );
  return { creatio, close: () => creatio.close() };
}
