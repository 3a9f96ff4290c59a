/**
 * The dashboard's page and client against a made-up overview of 100 services (no engine): the
 * first paint with every row, how long it took (a diagnostic, not an assertion), the actions'
 * guards, and the node buttons reaching the node control.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openBrowser, type TestBrowser } from '../helpers/browser.js';
import { FAKE_TOKEN, startFakeDashboard, type FakeDashboard } from '../helpers/fake-dashboard.js';

const SERVICES = 100;

describe('the dashboard page with 100 services', () => {
  let fake: FakeDashboard;
  let base: string;
  let browser: TestBrowser;

  before(async () => {
    fake = await startFakeDashboard(SERVICES);
    base = fake.base;
    browser = await openBrowser();
  });
  after(async () => {
    await browser?.close();
    await fake?.close();
  });

  test('paints every service at once, as text', async (t) => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    await page.goto(`${base}/`, { waitUntil: 'load' });
    assert.equal(await page.locator('tr[data-service]').count(), SERVICES);
    assert.equal(await page.locator('#services h3').count(), 5);
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
