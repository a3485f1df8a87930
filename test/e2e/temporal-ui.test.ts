/**
 * The Temporal UI of the embedded default reads conversations: `npm start` with its own dev server
 * and Web UI (no TEMPORAL_ADDRESS), `npm run demo`, then the demo's link opened in headless
 * Chromium shows a customer message decoded through the bridge's codec endpoint (open to
 * loopback in development), not ciphertext.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import puppeteer, { type Browser } from 'puppeteer-core';
import { freePort } from '../../src/temporal/launcher';
import { waitFor } from '../bridge-harness';
import { CHROMIUM, freePair, runToEnd, startService, type Service } from '../processes';

const SHOTS = process.env.SCREENSHOTS_DIR
  ? path.resolve(process.env.SCREENSHOTS_DIR)
  : path.join(os.tmpdir(), 'bridge-console-screenshots');

describe(
  'the Temporal UI of the embedded default decodes conversations',
  { skip: !CHROMIUM && !process.env.CI && 'no chromium: apt-get install chromium, or set CHROMIUM_PATH' },
  () => {
    let service: Service | undefined;
    let browser: Browser | undefined;
    let dataDir: string;
    let env: NodeJS.ProcessEnv;

    before(async () => {
      assert.ok(CHROMIUM, 'chromium is needed: apt-get install chromium, or set CHROMIUM_PATH');
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'bridge-temporal-ui-'));
      const uiPort = await freePort();
      env = {
        PORT: String(await freePort()),
        SANDBOX_PORT: String(await freePair()),
        TEMPORAL_PORT: String(await freePort()),
        TEMPORAL_UI_PORT: String(uiPort),
        TEMPORAL_UI_ORIGIN: `http://localhost:${uiPort}`,
        DATA_DIR: dataDir,
        NODE_ENV: 'development',
        LOG_LEVEL: 'warn',
        LOG_FORMAT: 'json',
      };
      // Its own dev server and UI, as `npm start` brings up on a user's machine.
      service = await startService(env, ['TEMPORAL_ADDRESS']);
      browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
      });
      mkdirSync(SHOTS, { recursive: true });
    });
    after(async () => {
      await browser?.close();
      await service?.stop();
      await rm(dataDir, { recursive: true, force: true });
    });

    it("the demo's conversation in the Temporal UI shows the customer's message in clear", async () => {
      const demo = await runToEnd('src/sandbox/demo.ts', env);
      assert.equal(demo.code, 0, `${demo.out}\n--- service:\n${service!.output().slice(-3000)}`);
      const link = /Temporal UI: +(\S+)/.exec(demo.out)?.[1];
      assert.ok(link, demo.out);
      const page = await browser!.newPage();
      await page.setViewport({ width: 1300, height: 1000 });
      await page.goto(link, { waitUntil: 'networkidle0' });
      // The event list ("All"), each signal opened: its input is what the codec endpoint decoded.
      // (Page code as strings: the tests are compiled without the DOM's types.)
      const showAll = await page.evaluate(
        `(() => { const b = [...document.querySelectorAll('button')].find((x) => x.textContent.trim() === 'All'); b?.click(); return !!b; })()`,
      );
      assert.ok(showAll, 'the event history has its "All" view');
      const customerText = 'Hi, I cannot log in since the password reset.';
      const pageText = () => page.evaluate('document.body.innerText') as Promise<string>;
      // Each signal row is clicked once: a second click would fold it again, and the codec
      // endpoint's answer can take longer than one poll (a row the UI re-renders is a new element,
      // so it is opened again).
      try {
        await waitFor(
          'a signal opened in the Temporal UI shows the customer message decoded',
          async () => {
            if ((await pageText()).includes(customerText)) return true;
            await page.evaluate(
              `for (const r of document.querySelectorAll('tr')) if (!r.dataset.opened && r.innerText.includes('Signal Name')) { r.dataset.opened = '1'; r.click(); }`,
            );
            return false;
          },
          30_000,
        );
      } catch (err) {
        await page.screenshot({ path: path.join(SHOTS, 'temporal-ui-not-decoded.png'), fullPage: true });
        throw new Error(`${(err as Error).message}\n--- page:\n${(await pageText()).slice(-3000)}`);
      }
      const shown = await pageText();
      assert.ok(!shown.includes('AES-256-GCM'), 'no payload is left encrypted on the page');
      await page.screenshot({ path: path.join(SHOTS, 'temporal-ui-decoded.png'), fullPage: true });
    });
  },
);
