/**
 * The admin console in a real headless Chromium (Debian's `chromium`, driven by puppeteer-core):
 * sign in, Test & Save with a wrong secret and then the right one, the webhook URL, the
 * conversation inspector resuming a parked step, the Attention tab (a parked conversation and a
 * closure that did not reach OpenCX, linked to the inspector and the Temporal UI), and the OpenCX
 * events tab (a refused event listed and replayed, an OpenCX organization not connected), with
 * screenshots of each state.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { SANDBOX_CLIENT } from '../../src/sandbox/emulators/creatio';
import { IDS } from '../../src/sandbox/emulators/creatio-schema';
import { Bridge, ev, nextTimestamp, waitFor, WEBHOOK_SECRET } from '../bridge-harness';
import { readsMessageUuid } from '../fixtures/later-release';
import { ADMIN_TOKEN, startApi, type RunningApi } from '../helpers';

const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
const executablePath = CANDIDATES.find((p): p is string => !!p && existsSync(p));
/** `npm run screenshots` writes them to docs/screenshots (the README shows them); else a temp dir. */
const SHOTS = process.env.SCREENSHOTS_DIR
  ? path.resolve(process.env.SCREENSHOTS_DIR)
  : path.join(os.tmpdir(), 'bridge-console-screenshots');
const POISON = (set: string, v: Record<string, unknown>) =>
  set === 'Activity' && String(v.Title).includes('POISON')
    ? 'Column "Title" holds a value Creatio will not take'
    : null;

describe(
  'admin console in headless Chromium',
  {
    skip: !executablePath && !process.env.CI && 'no chromium: apt-get install chromium, or set CHROMIUM_PATH',
  },
  () => {
    const bridge = new Bridge();
    let browser: Browser;
    let page: Page;
    let later: RunningApi | undefined;

    before(async () => {
      assert.ok(executablePath, 'chromium is needed: apt-get install chromium, or set CHROMIUM_PATH');
      await bridge.start();
      browser = await puppeteer.launch({
        executablePath,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
      });
      page = await browser.newPage();
      await page.setViewport({ width: 1100, height: 900 });
      mkdirSync(SHOTS, { recursive: true });
    });
    after(async () => {
      await browser?.close();
      await later?.close();
      await bridge.close();
    });

    const text = (sel: string) => page.$eval(sel, (e) => e.textContent ?? '');
    const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
    async function type(sel: string, value: string) {
      await page.$eval(sel, (e) => ((e as unknown as { value: string }).value = ''));
      await page.type(sel, value);
    }

    const orgId = `console-${randomUUID().slice(0, 8)}`;

    it('refuses a wrong admin token, and says so', async () => {
      await page.goto(`${bridge.api.url}/admin/`);
      await type('[name=token]', 'not-the-token-0123456789abcdef');
      await type('[name=orgId]', orgId);
      await page.click('#sign-in-form button[type=submit]');
      await page.waitForSelector('#sign-in-error:not([hidden])');
      assert.match(await text('#sign-in-error'), /admin API token is not valid/);
      assert.equal(await page.$eval('#signed-in', (e) => (e as unknown as { hidden: boolean }).hidden), true);
    });

    it('Test & Save with a wrong secret names the error and its fix; nothing is stored; the right secret saves', async () => {
      await type('[name=token]', ADMIN_TOKEN);
      await page.click('#sign-in-form button[type=submit]');
      await page.waitForSelector('#signed-in:not([hidden])');

      await type('[name=instanceUrl]', bridge.emu.url);
      await type('[name=clientId]', SANDBOX_CLIENT.clientId);
      await type('[name=clientSecret]', 'wrong-secret');
      await type('[name=apiBaseUrl]', bridge.opencx.url);
      await type('[name=apiKey]', 'ocx_test_key');
      await type('[name=webhookSecret]', WEBHOOK_SECRET);
      await page.click('#add-ai-field');
      await type('#ai-fields tbody tr:last-child [name=column]', 'UsrProductName');
      await type('#ai-fields tbody tr:last-child [name=title]', 'Product');
      await type(
        '#ai-fields tbody tr:last-child [name=description]',
        'The product the customer asks about, as named in the conversation',
      );
      await page.click('#save');
      await page.waitForSelector('#error-banner');
      assert.equal(await text('#error-code'), 'invalid_client_credentials');
      assert.match(await text('#error-fix'), /secret/i);
      assert.ok((await page.$$('.checks li.failed')).length >= 1, 'the failed check is listed');
      await shot('console-save-wrong-secret');
      assert.equal(await bridge.store.getOrg(orgId), undefined, 'nothing stored');

      await type('[name=clientSecret]', SANDBOX_CLIENT.clientSecret);
      await page.click('#save');
      await page.waitForFunction(
        `document.querySelector('#result').textContent.includes('Connected and saved.') || document.querySelector('#result .banner.bad')`,
      );
      assert.equal(await text('#result .banner'), 'Connected and saved.');
      const url = await text('#webhook-url');
      assert.match(url, /\/webhooks\/creatio\/\S+$/);
      const stored = await bridge.store.getOrg(orgId);
      assert.equal(stored?.settings.aiFields[0]?.column, 'UsrProductName');
      // Secrets never come back to the page: the field is empty, the placeholder says it is set.
      assert.equal(
        await page.$eval('[name=clientSecret]', (e) => (e as unknown as { value: string }).value),
        '',
      );
      assert.doesNotMatch(await page.content(), new RegExp(SANDBOX_CLIENT.clientSecret));
      await shot('console-saved');

      // Rotate: a new URL; the old one works for the overlap only, and the page says until when.
      page.once('dialog', (d) => void d.accept());
      await page.click('#rotate-webhook');
      await page.waitForFunction(
        `document.querySelector('#webhook-url').textContent !== ${JSON.stringify(url)}`,
      );
      const token = url.split('/').pop()!;
      assert.match(await text('#webhook-hint'), /The old URL works until \d{4}-/);
      assert.equal(await bridge.store.findOrgByWebhookToken(token), orgId, 'within the overlap');
      const overlap = bridge.store.rotation.overlapMs;
      bridge.store.rotation.overlapMs = 0;
      try {
        assert.equal(await bridge.store.findOrgByWebhookToken(token), undefined, 'past it');
      } finally {
        bridge.store.rotation.overlapMs = overlap;
      }
    });

    it('finds a conversation by session ID, shows the parked step with diagnose, and resumes it', async () => {
      const s = `c-${randomUUID().slice(0, 10)}`;
      await bridge.send(orgId, 'conversation.started', ev.started(s));
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hello'));
      const caseId = await bridge.caseOf(orgId, s);
      bridge.emu.setFaults({ rejectWrite: POISON });
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm2', 'POISON'));
      await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm3', 'after'));
      await waitFor('parked', async () => (await bridge.session(orgId, s)).body?.lastError?.parked);

      await page.click('nav button[data-tab=inspector]');
      await type('#find-form [name=query]', s);
      await page.click('#find-form button[type=submit]');
      await page.waitForSelector('#parked');
      assert.match(await text('#parked'), /Parked: log message m2/);
      assert.match(await text('[data-finding=step_parked]'), /Fix:/);
      const log = await page.$$eval('#message-log tbody tr', (rows) =>
        rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)),
      );
      assert.deepEqual(log, [
        ['m1', 'logged'],
        ['m2', 'pending'],
        ['m3', 'pending'],
      ]);
      const link = await page.$eval('#temporal-link', (a) => (a as unknown as { href: string }).href);
      assert.ok(link.endsWith(`/workflows/${encodeURIComponent(`conversation:${orgId}:${s}`)}`), link);
      await shot('console-parked-step');

      bridge.emu.setFaults({ rejectWrite: null });
      await page.click('#resume');
      await page.waitForSelector('#command-result');
      assert.equal(await text('#command-result'), 'resumed: log message m2');
      await waitFor('all logged', async () => (await bridge.session(orgId, s)).body?.messages.logged === 3);

      // By case ID, after the fix: nothing is wrong.
      await type('#find-form [name=query]', caseId);
      await page.click('#find-form button[type=submit]');
      await page.waitForFunction(
        `document.querySelector('#findings')?.textContent.includes('nothing is wrong')`,
      );
      assert.deepEqual(
        await page.$$eval('#message-log tbody tr td:last-child', (tds) => tds.map((t) => t.textContent)),
        ['logged', 'logged', 'logged'],
      );
      await shot('console-inspector');
    });

    it('lists the conversations that need attention (a parked step, a closure mismatch) with links to the inspector and the Temporal UI', async () => {
      const url = await bridge.creatioWebhookUrl(orgId);
      bridge.emu.processes.push({
        kind: 'case_closure',
        url,
        retries: 2,
        statusNames: ['Resolved', 'Closed'],
      });
      const parked = `a-${randomUUID().slice(0, 10)}`;
      const closing = `z-${randomUUID().slice(0, 10)}`;
      const items = async () =>
        (await bridge.api.request('GET', `/v1/orgs/${orgId}/attention`)).body.items as any[];
      try {
        // A conversation that closes in Creatio while OpenCX refuses the session's resolution.
        await bridge.send(orgId, 'conversation.started', ev.started(closing));
        await bridge.send(orgId, 'conversation.contact_response', ev.message(closing, 'm1', 'hello'));
        const caseId = await bridge.caseOf(orgId, closing);
        await waitFor(
          'logged',
          async () => (await bridge.session(orgId, closing)).body?.messages.logged === 1,
        );
        bridge.opencx.faults.writeErrorStatus = 403;
        bridge.emu.modify('Case', caseId, { StatusId: IDS.caseStatus.Resolved });
        await waitFor('closure_mismatch', async () =>
          (await items()).some((i) => i.sessionId === closing && i.kind === 'closure_mismatch'),
        );
        // A conversation whose message Creatio refuses: parked.
        bridge.emu.setFaults({ rejectWrite: POISON });
        await bridge.send(orgId, 'conversation.started', ev.started(parked));
        await bridge.send(orgId, 'conversation.contact_response', ev.message(parked, 'm1', 'POISON'));
        await waitFor('step_parked', async () =>
          (await items()).some((i) => i.sessionId === parked && i.kind === 'step_parked'),
        );

        await page.click('nav button[data-tab=attention]');
        const row = (s: string, kind: string) =>
          `#attention-items tr[data-session-id="${s}"][data-kind="${kind}"]`;
        await page.waitForSelector(row(parked, 'step_parked'));
        await page.waitForSelector(row(closing, 'closure_mismatch'));
        assert.match(await text(`${row(parked, 'step_parked')} td:nth-child(4)`), /parked.*log message m1/);
        assert.match(
          await text(`${row(closing, 'closure_mismatch')} td:nth-child(4)`),
          /closed in Creatio but the OpenCX session could not be resolved/,
        );
        const hrefs = await page.$eval(`${row(closing, 'closure_mismatch')} td.links`, (td) =>
          [...td.querySelectorAll('a')].map((a) => a.getAttribute('href')),
        );
        assert.deepEqual(hrefs, [
          `#inspector?orgId=${orgId}&sessionId=${closing}`,
          `http://localhost:8233/namespaces/default/workflows/${encodeURIComponent(`conversation:${orgId}:${closing}`)}`,
        ]);
        await shot('console-attention');

        // The inspector link opens the parked conversation in the inspector.
        await page.click(`${row(parked, 'step_parked')} a.inspector-link`);
        await page.waitForSelector('#parked');
        assert.match(await text('#parked'), /Parked: log message m1/);
        assert.equal(
          await page.$eval('#inspector', (e) => (e as unknown as { hidden: boolean }).hidden),
          false,
        );
      } finally {
        bridge.emu.setFaults({ rejectWrite: null });
        bridge.opencx.faults.writeErrorStatus = 0;
        bridge.emu.processes.length = 0;
      }
    });

    it('shows the OpenCX organization mapping, lists refused events and unmapped OpenCX organizations, and replays', async () => {
      await page.click('nav button[data-tab=settings]');
      assert.equal(
        await text('#opencx-mapping'),
        `OpenCX organization ${orgId} → bridge organization ${orgId}`,
      );
      // What the agent-reply filter sends and never sends, in words.
      assert.match(await text('#reply-rules'), /Never sent:.*Drafts/s);
      const s = `r-${randomUUID().slice(0, 10)}`;
      const odd = { conversation_id: s, message: { uuid: 'm-1', text: 'hello' }, timestamp: nextTimestamp() };
      assert.equal((await bridge.send(orgId, 'conversation.contact_response', odd)).status, 400);
      const stray = `stray-${randomUUID().slice(0, 8)}`;
      assert.equal((await bridge.send(stray, 'conversation.contact_response', odd)).status, 401);

      await page.click('nav button[data-tab=opencx-events]');
      await page.waitForSelector('#kept-events tbody tr');
      const rows = await page.$$eval('#kept-events tbody tr', (trs) =>
        trs.map((r) => [...r.querySelectorAll('td')].slice(1, 5).map((td) => td.textContent)),
      );
      assert.deepEqual(rows, [['conversation.contact_response', 'data.message.id', 'invalid_field', '1']]);
      assert.match(
        await text(`[data-opencx-org="${stray}"]`),
        /1 event from OpenCX organization stray-\S+, not connected/,
      );
      assert.doesNotMatch(await page.content(), /hello/, 'never the content');
      await shot('console-opencx-events');

      // This release still cannot read it: the field is named, the event stays.
      await page.click('#kept-events .replay');
      await page.waitForSelector('#error-banner');
      assert.match(await text('#error-banner'), /data\.message\.id/);
      assert.equal((await page.$$('#kept-events tbody tr')).length, 1);

      // The release that reads it (same store and Temporal), signed in on its own address.
      later = await startApi({
        store: bridge.store,
        log: bridge.log,
        metrics: bridge.metrics,
        conversations: { client: bridge.client, taskQueue: bridge.taskQueue, options: bridge.options },
        readOpencxEvent: readsMessageUuid,
      });
      await page.goto(`${later.url}/admin/`);
      await type('[name=token]', ADMIN_TOKEN);
      await type('[name=orgId]', orgId);
      await page.click('#sign-in-form button[type=submit]');
      await page.waitForSelector('#signed-in:not([hidden])');
      await page.click('nav button[data-tab=opencx-events]');
      await page.waitForSelector('#replay-all');
      await page.click('#replay-all');
      await page.waitForSelector('#replay-result');
      assert.equal(await text('#replay-result'), 'Replayed 1, still refused 0.');
      await page.waitForSelector('#no-kept-events');
      await waitFor(
        'the replayed message',
        async () => (await bridge.session(orgId, s)).body?.messages.received === 1,
      );
    });

    it("signs in with an organization's own token: that organization only", async () => {
      const made = await bridge.api.request('POST', `/v1/orgs/${orgId}/admin-tokens`, { label: 'console' });
      assert.equal(made.status, 201, made.text);
      const own = await browser.newPage();
      try {
        await own.goto(`${bridge.api.url}/admin/`);
        const typeIn = async (sel: string, value: string) => {
          await own.$eval(sel, (e) => ((e as unknown as { value: string }).value = ''));
          await own.type(sel, value);
        };
        // Another organization: refused, named.
        await typeIn('[name=token]', made.body.token as string);
        await typeIn('[name=orgId]', `other-${randomUUID().slice(0, 8)}`);
        await own.click('#sign-in-form button[type=submit]');
        await own.waitForSelector('#sign-in-error:not([hidden])');
        assert.match(await own.$eval('#sign-in-error', (e) => e.textContent ?? ''), /opens organization/);
        // Its own: the settings, and the refused events without the bridge-wide list.
        await typeIn('[name=orgId]', orgId);
        await own.click('#sign-in-form button[type=submit]');
        await own.waitForSelector('#signed-in:not([hidden])');
        assert.equal(
          await own.$eval('[name=instanceUrl]', (e) => (e as unknown as { value: string }).value),
          bridge.emu.url,
        );
        await own.click('nav button[data-tab=opencx-events]');
        await own.waitForSelector('#no-kept-events');
        assert.equal(await own.$('#unmapped'), null);
      } finally {
        await own.close();
      }
    });
  },
);
