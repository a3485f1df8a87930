import type { Logger } from '../logger';
import { settingsInputSchema } from '../settings/fields';
import { testSettings } from '../settings/test-and-save';
import type { Store } from '../store';

export const SANDBOX_ORG_ID = 'sandbox';
/** The sandbox organization's OpenCX API key (the OpenCX emulator asks for it). Sandbox only. */
export const SANDBOX_OPENCX_API_KEY = 'ocx_sandbox_key';
/** The sandbox organization's OpenCX webhook secret (Standard Webhooks form). Not a secret: sandbox only. */
export const SANDBOX_WEBHOOK_SECRET = `whsec_${Buffer.from('opencx-creatio-bridge-sandbox').toString('base64')}`;

/**
 * The sandbox for trying the bridge without accounts: the Creatio emulator (port `port`) and the
 * OpenCX emulator (port `port + 1`) from src/sandbox/emulators, an organization "sandbox" connected to
 * them through the same Test & Save an admin would use, and Creatio's two business processes
 * calling this bridge's webhook. The emulators keep their records in memory only.
 */
export async function startSandbox(opts: {
  port: number;
  bridgeUrl: string;
  store: Store;
  log: Logger;
  timeoutMs: number;
}) {
  const { startCreatioEmulator, SANDBOX_CLIENT } = await import('./emulators/creatio');
  const { startOpenCXEmulator } = await import('./emulators/opencx');
  const creatio = await startCreatioEmulator(opts.port);
  const opencx = await startOpenCXEmulator(opts.port + 1);
  const existing = await opts.store.getOrg(SANDBOX_ORG_ID);
  const input = settingsInputSchema.parse({
    instanceUrl: creatio.url,
    ...SANDBOX_CLIENT,
    opencx: { apiBaseUrl: opencx.url, apiKey: SANDBOX_OPENCX_API_KEY, webhookSecret: SANDBOX_WEBHOOK_SECRET },
  });
  const result = await testSettings(input, existing?.settings, { timeoutMs: opts.timeoutMs });
  if (!result.ok || !result.settings) {
    throw new Error(`sandbox Test & Save failed: ${JSON.stringify(result.checks.filter((c) => !c.ok))}`);
  }
  const saved = await opts.store.saveOrg(SANDBOX_ORG_ID, result.settings);
  const webhook = `${opts.bridgeUrl}/webhooks/creatio/${saved.webhookToken}`;
  creatio.processes.push(
    { kind: 'agent_reply', url: webhook, activityTypes: ['Email'], retries: 2 },
    { kind: 'case_closure', url: webhook, statusNames: ['Resolved', 'Closed'], retries: 2 },
  );
  opts.log.info(
    { creatio: creatio.url, opencx: opencx.url, orgId: SANDBOX_ORG_ID },
    'sandbox running: Creatio and OpenCX emulators, organization "sandbox" connected, business processes calling the bridge',
  );
  return {
    creatio,
    opencx,
    close: async () => {
      await creatio.processesIdle();
      await creatio.close();
      await opencx.close();
    },
  };
}
