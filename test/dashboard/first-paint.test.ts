/**
 * The dashboard's page and client against a made-up overview of 100 services (no engine), with
 * markup in the values users write (HOSTILE_TEXT): the first response carrying every row, escaped,
 * and painting them without the script; the client drawing the regions exactly as the server did;
 * how long the first paint took (a diagnostic, not an assertion); the actions' guards; and the
 * node buttons reaching the node control.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CHROMIUM, CHROMIUM_ARGS, openBrowser, type TestBrowser } from '../helpers/browser.js';
import { chromium, type Page } from 'playwright-core';
import { FIRST_SCREEN_ROWS } from '../../src/operator/dashboard-page.js';
import {
  FAKE_TOKEN,
  HOSTILE_TEXT,
  startFakeDashboard,
  type FakeDashboard,
} from '../helpers/fake-dashboard.js';

const SERVICES = 100;

describe('the dashboard page with 100 services', () => {
  let fake: FakeDashboard;
  let base: string;
  let browser: TestBrowser;

  before(async () => {
    fake = await startFakeDashboard(SERVICES, { hostile: true });
    base = fake.base;
    browser = await openBrowser();
  });
  after(async () => {
    await browser?.close();
    await fake?.close();
  });

  test('the first response carries every service, its values escaped', async () => {
    const html = await (await fetch(`${base}/`)).text();
    assert.equal(html.match(/<tr data-service=/g)?.length, SERVICES);
    // One screen of rows is drawn in the first frame, the rest held back for the next one.
    assert.equal(
      html.match(/<tr data-service="[^"]*" data-later="">/g)?.length,
      SERVICES - FIRST_SCREEN_ROWS,
    );
    // The client's file, the reveal script and the overview's data block; nothing from the cluster
    // became an element.
    assert.equal(html.match(/<script/gi)?.length, 3);
    assert.equal(html.match(/<img|<b /gi), null);
    assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;'));
  });

  test('without its script the page shows every service, and user values as text', async () => {
    const page = await browser.context.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    await page.route('**/dashboard/app.js*', (route) => route.abort());
    await page.goto(`${base}/`, { waitUntil: 'load' });
    // The rows held back from the first frame are displayed by the page's own inline script.
    await page.waitForFunction("document.querySelectorAll('[data-later]').length === 0");
    assert.equal(await displayedRows(page), SERVICES);
    assert.equal(await page.locator('main img, main b, main script').count(), 0);
    const text = (await page.locator('main').textContent()) ?? '';
    for (const value of [HOSTILE_TEXT.author, HOSTILE_TEXT.message, HOSTILE_TEXT.reason, HOSTILE_TEXT.event])
      assert.ok(text.includes(value), value);
    assert.ok(text.includes(`note=${HOSTILE_TEXT.label}`));
    assert.ok(text.includes(`(${HOSTILE_TEXT.path})`));
    assert.deepEqual(dialogs, []);
    await page.close();
  });

  test('without JavaScript every service is displayed at once', async () => {
    const bare = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    try {
      const page = await (await bare.newContext({ javaScriptEnabled: false })).newPage();
      await page.goto(`${base}/`, { waitUntil: 'load' });
      assert.equal(await page.locator('tr[data-later]').count(), SERVICES - FIRST_SCREEN_ROWS);
      assert.equal(await page.locator('tr[data-service]:visible').count(), SERVICES);
      assert.equal(await page.locator('#services h3:visible').count(), 5);
    } finally {
      await bare.close();
    }
  });

  test('the client draws every region exactly as the server did, signed out and signed in', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${base}/`, { waitUntil: 'load' });
    await sameRegions(page);
    await page.getByLabel('Dashboard token').fill(FAKE_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Reconcile now' }).waitFor();
    await sameRegions(page);
    assert.ok((await page.locator('#nodes button').count()) > 0, 'signed in, the nodes have buttons');
    // The next tests start signed out.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Dashboard token').waitFor();
    await page.close();
  });

  test('paints every service at once, as text', async (t) => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('dialog', (dialog) => {
      errors.push(`dialog: ${dialog.message()}`);
      void dialog.dismiss();
    });
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    await page.goto(`${base}/`, { waitUntil: 'load' });
    await page.waitForFunction("document.querySelectorAll('[data-later]').length === 0");
    assert.equal(await displayedRows(page), SERVICES);
    assert.equal(await page.locator('#services h3:visible').count(), 5);
    assert.equal(await page.locator('#services img').count(), 0);
    assert.equal(
      await page.locator('tr[data-service] th').first().textContent(),
      '<img src=x onerror=alert(1)>',
    );
    const paint = (): Promise<string> =>
      page.evaluate(() => {
        const entry = performance.getEntriesByName('first-contentful-paint')[0];
        return entry ? entry.startTime.toFixed(0) : '?';
      });
    const cold = await paint();
    // The first load also starts the renderer process; a reload is what a person sees next.
    await page.reload({ waitUntil: 'load' });
    assert.equal(await page.locator('tr[data-service]').count(), SERVICES);
    t.diagnostic(
      `first contentful paint with ${SERVICES} services: ${cold} ms cold, ${await paint()} ms on reload`,
    );
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('serves its files with nosniff and a CSP; actions need a session, its origin and its CSRF token', async () => {
    const script = await fetch(`${base}/dashboard/app.js`);
    assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(script.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(script.headers.get('cache-control'), 'no-store');
    // The page names the client by its content's version: that one a browser may keep.
    const front = await fetch(`${base}/`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(front.headers.get('content-encoding'), 'gzip');
    const html = await front.text();
    const scriptPath = /<script src="([^"]+)" defer><\/script>/.exec(html)?.[1];
    assert.match(scriptPath ?? '', /^\/dashboard\/app\.js\?v=[0-9a-f]{16}$/);
    const versioned = await fetch(`${base}${scriptPath}`);
    assert.equal(versioned.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(await versioned.text(), await script.text());
    // Its inline styles and its one inline script are allowed by their hashes; nothing else inline is.
    const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
    const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => hash(m[1]!));
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => hash(m[1]!));
    assert.equal(styles.length, 2);
    assert.equal(scripts.length, 1);
    const policy = front.headers.get('content-security-policy') ?? '';
    assert.ok(policy.includes(`style-src ${styles.join(' ')};`), policy);
    assert.ok(policy.includes(`script-src 'self' ${scripts[0]};`), policy);
    assert.doesNotMatch(policy, /unsafe-inline/);
    const anonymous = await fetch(`${base}/v1/dashboard/nodes/n1/drain`, {
      method: 'POST',
      headers: { origin: base },
    });
    assert.equal(anonymous.status, 401);
    const login = await fetch(`${base}/dashboard/login`, {
      method: 'POST',
      headers: { origin: base, 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${FAKE_TOKEN}`,
      redirect: 'manual',
    });
    assert.equal(login.status, 303);
    const session = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    const page = await (await fetch(`${base}/`, { headers: { cookie: session } })).text();
    const csrf = /name="csrf-token" content="([^"]+)"/.exec(page)?.[1];
    assert.ok(csrf);
    const post = (headers: Record<string, string>): Promise<Response> =>
      fetch(`${base}/v1/dashboard/reconcile`, { method: 'POST', headers: { cookie: session, ...headers } });
    assert.equal((await post({ origin: 'http://evil.example', 'x-csrf-token': csrf })).status, 403);
    assert.equal((await post({ 'x-csrf-token': csrf })).status, 403);
    assert.equal((await post({ origin: base, 'x-csrf-token': 'forged' })).status, 403);
    assert.deepEqual(fake.triggers, []);
    assert.equal((await post({ origin: base, 'x-csrf-token': csrf })).status, 202);
    assert.deepEqual(fake.triggers, ['dashboard']);
  });

  test('a signed-in browser drains and activates a node with the keyboard', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${base}/`);
    await page.getByLabel('Dashboard token').fill(FAKE_TOKEN);
    await page.keyboard.press('Enter');
    const drain = page.getByRole('button', { name: 'Drain n2' });
    await drain.focus();
    await page.keyboard.press('Enter');
    await page.locator('tr[data-node="n2"] td.availability', { hasText: 'drain' }).waitFor();
    assert.equal(fake.nodes[1]!.availability, 'drain');
    // Redrawn with the other button, which keeps the focus: Enter again undoes it.
    await page.getByRole('button', { name: 'Activate n2' }).waitFor();
    await page.getByRole('button', { name: 'Activate n2' }).focus();
    await page.keyboard.press('Enter');
    await page.locator('tr[data-node="n2"] td.availability', { hasText: 'active' }).waitFor();
    assert.equal(fake.nodes[1]!.availability, 'active');
    await page.close();
  });
});

const REGIONS = ['status', 'actions', 'rollout', 'services', 'nodes', 'history'];

/**
 * The regions as the server wrote them (the page fetched again and parsed: the open page's own
 * may have been redrawn by then) against the same regions drawn by the client from its overview.
 */
async function sameRegions(page: Page): Promise<void> {
  const { server, client } = await page.evaluate<{ server: string[]; client: string[] }>(`(async () => {
    const ids = ${JSON.stringify(REGIONS)};
    const html = await (await fetch('/')).text();
    const parsed = new DOMParser().parseFromString(html, 'text/html');
    // As the page's reveal script does after the first frame.
    for (const e of parsed.querySelectorAll('[data-later]')) e.removeAttribute('data-later');
    const server = ids.map((id) => parsed.getElementById(id)?.innerHTML ?? 'missing');
    // The client's own state (script-level bindings of app.js): forget what it drew, draw it all.
    for (const id of Object.keys(rendered)) delete rendered[id];
    render();
    document.getElementById('actions').replaceChildren();
    renderActions();
    return { server, client: ids.map((id) => document.getElementById(id)?.innerHTML ?? 'missing') };
  })()`);
  for (const [i, id] of REGIONS.entries()) assert.equal(client[i], server[i], `region ${id}`);
}

/** Service rows the page displays (laid out with a size), held-back ones not counted. */
function displayedRows(page: Page): Promise<number> {
  return page.evaluate<number>(
    "[...document.querySelectorAll('tr[data-service]')].filter((row) => row.getClientRects().length > 0).length",
  );
}
