/**
 * The dashboard's views and actions in headless Chromium over made-up data (no engine): live
 * updates from the event stream alone, a revision's plan from the history, the branch head against
 * the live cluster, a replica's logs followed, retrying a failed revision (refused without a
 * session or its CSRF token), and the page's landmarks, labels and keyboard use.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { openBrowser, type TestBrowser } from '../helpers/browser.js';
import { BAD, FAKE_TOKEN, GOOD, startFakeDashboard, type FakeDashboard } from '../helpers/fake-dashboard.js';

const SHOTS = process.env['BERTH_SCREENSHOT_DIR'];

async function signIn(page: Page, base: string): Promise<void> {
  await page.goto(`${base}/`);
  // The browser's profile keeps the session cookie between the tests' pages.
  if ((await page.getByRole('button', { name: 'Reconcile now' }).count()) > 0) return;
  await page.getByLabel('Dashboard token').fill(FAKE_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Reconcile now' }).waitFor();
}

describe('the dashboard views over an operator of 10 services', () => {
  let fake: FakeDashboard;
  let browser: TestBrowser;

  before(async () => {
    fake = await startFakeDashboard(10);
    browser = await openBrowser();
  });
  after(async () => {
    await browser?.close();
    await fake?.close();
  });

  test('has landmarks and labelled regions, and works from the keyboard with a visible focus', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${fake.base}/`);
    await page.getByRole('banner').waitFor();
    assert.equal(await page.getByRole('main').count(), 1);
    assert.equal(await page.getByRole('navigation', { name: 'Sections' }).count(), 1);
    for (const name of [
      'Status',
      'Rollout',
      'Services',
      'Nodes',
      'History',
      'Branch head against the live cluster',
    ]) {
      assert.equal(await page.getByRole('region', { name, exact: true }).count(), 1, name);
    }
    assert.equal(await page.getByRole('table', { name: 'History, newest first' }).count(), 1);
    assert.equal(await page.getByRole('textbox', { name: 'Dashboard token' }).count(), 1);
    // The first Tab reaches the skip link, which moves the focus into the page.
    const focused = (expression: string): Promise<unknown> =>
      page.evaluate(`document.activeElement.${expression}`);
    await page.keyboard.press('Tab');
    assert.equal(await focused('textContent'), 'Skip to the dashboard');
    // Tab on until the head-plan button has the focus, then Enter: the plan appears.
    for (let i = 0; i < 200 && (await focused('id')) !== 'show-head-plan'; i++)
      await page.keyboard.press('Tab');
    assert.equal(await focused('id'), 'show-head-plan', 'Tab reaches the head-plan button');
    assert.notEqual(await page.evaluate('getComputedStyle(document.activeElement).outlineStyle'), 'none');
    await page.keyboard.press('Enter');
    await page.locator(`#head-plan-summary[data-revision="${BAD}"]`).waitFor();
    await page.close();
  });

  test('follows the event stream: a rollout shows live, step by step', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${fake.base}/`);
    await page.locator('body[data-events="live"]').waitFor();
    const revision = 'c'.repeat(40);
    fake.bus.publish('rollout-started', { revision, kind: 'rollout', message: 'rolling out cccccccccccc' });
    await page.locator(`#rollout-summary[data-revision="${revision}"][data-state="running"]`).waitFor();
    fake.bus.publish('replica-starting', { service: 'team-0/service-1', name: 'r-1', node: 'n1' });
    fake.bus.publish('replica-healthy', { service: 'team-0/service-1', name: 'r-1', node: 'n1', ms: 800 });
    await page.locator('#rollout li[data-type="replica-healthy"]').waitFor();
    fake.bus.publish('replica-failed', {
      service: 'team-0/service-1',
      name: 'r-2',
      node: 'n2',
      reason: 'exit 1',
    });
    await page
      .locator('#rollout li[data-type="replica-failed"]', { hasText: 'FAILED on n2: exit 1' })
      .waitFor();
    fake.bus.publish('reconcile-finished', { outcome: 'rolled back', reason: 'r-2 failed' });
    await page.locator(`#rollout-summary[data-revision="${revision}"][data-state="rolled back"]`).waitFor();
    // An event type the page has no words for still shows, with its fields.
    fake.bus.publish('replica-health', { name: 'r-1', health: 'unhealthy' });
    await page.locator('#rollout li[data-type="replica-health"]', { hasText: 'health=unhealthy' }).waitFor();
    await page.close();
  });

  test('history lists revisions with author and message, and opens the plan applied at one', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${fake.base}/`);
    const row = page.locator(`#history tr[data-revision="${BAD}"]`);
    await row.waitFor();
    const text = (await row.textContent()) ?? '';
    assert.match(text, /Ada <ada@example.com>/);
    assert.match(text, /web v2: a broken health check/);
    assert.match(text, /rolled back/);
    await page.getByRole('button', { name: `Plan of ${GOOD.slice(0, 12)}` }).click();
    await page
      .locator(`#revision-plan[data-revision="${GOOD}"] pre`, { hasText: 'Plan for aaaaaaaaaaaa' })
      .waitFor();
    // Read-only: no retry without signing in.
    assert.equal(await page.locator('button[data-retry]').count(), 0);
    await page.close();
  });

  test('shows the branch head against the live cluster and why it is not deployed', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${fake.base}/`);
    await page.getByRole('button', { name: 'Show the plan of the branch head' }).click();
    await page.locator('#head-plan-text', { hasText: '~ team-0/service-1: update' }).waitFor();
    assert.match((await page.locator('#head-plan-why').textContent()) ?? '', /failed and is not tried again/);
    assert.match((await page.locator('#head-differs').textContent()) ?? '', /does not run the branch head/);
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/head-plan.png`, fullPage: true });
    await page.close();
  });

  test("a replica's logs: refused without a session; signed in, its last lines and then new ones", async () => {
    const anonymous = await fetch(`${fake.base}/v1/dashboard/logs/n1/team-0-service-1-1`);
    assert.equal(anonymous.status, 401);
    const page = await browser.context.newPage();
    await page.goto(`${fake.base}/`);
    assert.equal(await page.locator('button[data-logs-node]').count(), 0);
    await signIn(page, fake.base);
    const row = page.locator('tr[data-service="team-1/service-1"]');
    await row.locator('summary').click();
    await row.getByRole('button', { name: 'Logs of service-1.2@n2' }).click();
    const logs = page.getByLabel('Log lines');
    await logs.filter({ hasText: 'listening on :8080' }).waitFor();
    fake.log('a line written after the page opened the logs');
    await logs.filter({ hasText: 'a line written after the page opened the logs' }).waitFor();
    assert.equal(await page.getByRole('heading', { name: 'Logs of service-1.2@n2' }).count(), 1);
    await page.getByRole('button', { name: 'Close logs' }).click();
    assert.equal(await page.locator('#logs-section').isHidden(), true);
    await page.close();
  });

  test('retry a failed revision: refused without a session or its CSRF token, done when signed in', async () => {
    const retry = `${fake.base}/v1/dashboard/revisions/${BAD}/retry`;
    assert.equal((await fetch(retry, { method: 'POST', headers: { origin: fake.base } })).status, 401);
    const login = await fetch(`${fake.base}/dashboard/login`, {
      method: 'POST',
      headers: { origin: fake.base, 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${FAKE_TOKEN}`,
      redirect: 'manual',
    });
    const session = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    const noCsrf = await fetch(retry, { method: 'POST', headers: { cookie: session, origin: fake.base } });
    assert.equal(noCsrf.status, 403);
    assert.ok(fake.failed.has(BAD));
    assert.ok(!fake.triggers.includes('dashboard retry'));

    const page = await browser.context.newPage();
    await signIn(page, fake.base);
    const button = page.getByRole('button', { name: `Retry ${BAD.slice(0, 12)}` }).first();
    await button.focus();
    await page.keyboard.press('Enter');
    await page.locator('#action-result', { hasText: `Retry ${BAD.slice(0, 12)}: done.` }).waitFor();
    assert.ok(!fake.failed.has(BAD));
    assert.ok(fake.triggers.includes('dashboard retry'));
    // Once retried it is no longer held as failed: the button goes, and a second retry is refused.
    await page.locator('button[data-retry]').first().waitFor({ state: 'detached' });
    const csrf = await page.locator('meta[name="csrf-token"]').getAttribute('content');
    const again = await page.evaluate(
      async ([url, token]) =>
        (await fetch(url!, { method: 'POST', headers: { 'x-csrf-token': token! } })).status,
      [retry, csrf],
    );
    assert.equal(again, 404);
    await page.close();
  });
});
