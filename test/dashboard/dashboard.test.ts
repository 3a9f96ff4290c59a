/**
 * The web dashboard of `berth run --listen`, opened in headless Chromium against a real operator
 * and engine: a service and its replicas, a commit rolling out live, actions refused without
 * signing in, and reconcile / drain / activate by clicking once signed in. Screenshots go to
 * BERTH_SCREENSHOT_DIR (default: a folder of the test's temp dir); with
 * BERTH_UPDATE_SCREENSHOTS=1 the overview is also copied to docs/img/dashboard.png.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import {
  eventually,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { openBrowser, type TestBrowser } from '../helpers/browser.js';
import { TEST_IMAGES } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import { removeNamespace } from '../operator/cluster-probe.js';

const ns = `dash${Date.now().toString(36)}`;
const node = `test-${ns}`;
const README_SCREENSHOT = fileURLToPath(new URL('../../docs/img/dashboard.png', import.meta.url));

function manifests(image: string): Record<string, string> {
  return {
    'deploy/all.yaml': manifestFile(
      namespaceManifest(ns),
      webService({ namespace: ns, image, replicas: 2, update: { parallelism: 1, monitor: '1s' } }),
    ),
  };
}

/** The text of the first element matching `selector` once `expected` holds for it (no sleeps). */
async function waitForText(page: Page, selector: string, expected: string | RegExp): Promise<string> {
  const locator = page.locator(selector).first();
  await locator.waitFor({ timeout: 120_000 });
  await eventually(
    `${selector} to read ${String(expected)}`,
    async () => {
      const text = (await locator.textContent()) ?? '';
      return typeof expected === 'string' ? text.trim() === expected : expected.test(text);
    },
    120_000,
  );
  return (await locator.textContent()) ?? '';
}

describe('the web dashboard in a real browser', () => {
  let repo: TestRepo;
  let temp: string;
  let shots: string;
  let operator: BerthProcess | null = null;
  let browser: TestBrowser | null = null;
  let page: Page;
  let base: string;
  const row = `tr[data-service="${ns}/web"]`;

  before(async () => {
    repo = await createTestRepo(manifests(TEST_IMAGES.webV1));
    temp = await mkdtemp(join(tmpdir(), 'berth-dashboard-'));
    shots = process.env['BERTH_SCREENSHOT_DIR'] ?? join(temp, 'screenshots');
    await mkdir(shots, { recursive: true });
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir: join(temp, 'state'), node }),
      ...SCHEDULE_NEVER,
      ...['--listen', '127.0.0.1:0'],
      // A node registry: the embedded node can then be drained and activated.
      ...['--cluster-listen', '127.0.0.1:0'],
    ]);
    assert.ok(operator.url, operator.output());
    base = operator.url;
    browser = await openBrowser();
    page = await browser.context.newPage();
  });
  after(async () => {
    await browser?.close();
    await operator?.stop('SIGKILL');
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(temp, { recursive: true, force: true });
  });

  test('shows the service with its replicas, with a strict CSP and no framing', async () => {
    const response = await page.goto(`${base}/`);
    assert.ok(response);
    const headers = response.headers();
    assert.match(headers['content-security-policy'] ?? '', /script-src 'self'/);
    assert.doesNotMatch(headers['content-security-policy'] ?? '', /unsafe-inline/);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.equal(headers['x-frame-options'], 'DENY');
    await waitForText(page, `${row} td.healthy`, '2');
    // Desired comes from the plan of the last reconcile, which ends after the monitor window.
    await waitForText(page, `${row} td.desired`, '2');
    const head = await repo.head();
    await waitForText(page, `${row} td.revision`, head.slice(0, 12));
    await waitForText(page, '#deployed-revision', head.slice(0, 12));
    await waitForText(page, `tr[data-node="${node}"] td.availability`, 'active');
    // Read-only: no action is offered before signing in.
    assert.equal(await page.locator('#reconcile-now').count(), 0);
    assert.equal(await page.locator('button[data-node]').count(), 0);
    await page.screenshot({ path: join(shots, 'overview.png'), fullPage: true });
  });

  test('a new commit rolls out live on the open page', async () => {
    const commit = await repo.commit(manifests(TEST_IMAGES.webV2), 'web v2');
    // The page is not reloaded: it follows the rollout by itself.
    await page.locator(`#rollout-summary[data-revision="${commit}"]`).waitFor({ timeout: 120_000 });
    await page.screenshot({ path: join(shots, 'rollout.png'), fullPage: true });
    await page
      .locator(`#rollout-summary[data-revision="${commit}"][data-state="succeeded"]`)
      .waitFor({ timeout: 120_000 });
    await waitForText(page, `${row} td.revision`, commit.slice(0, 12));
    await waitForText(page, `${row} td.healthy`, '2');
    await waitForText(page, '#deployed-revision', commit.slice(0, 12));
    assert.ok((await page.locator('#rollout li[data-type="replica-healthy"]').count()) > 0);
    assert.match((await page.locator('#history').textContent()) ?? '', /web v2/);
    await page.screenshot({ path: join(shots, 'rolled-out.png'), fullPage: true });
    if (process.env['BERTH_UPDATE_SCREENSHOTS'] === '1') {
      await copyFile(join(shots, 'rolled-out.png'), README_SCREENSHOT);
    }
  });

  test('an action without signing in, or from another origin, is refused', async () => {
    const reconcile = `${base}/v1/dashboard/reconcile`;
    const anonymous = await fetch(reconcile, { method: 'POST', headers: { origin: base } });
    assert.equal(anonymous.status, 401);
    const token = (await readFile(join(temp, 'state', 'dashboard-token'), 'utf8')).trim();
    const wrong = await fetch(`${base}/dashboard/login`, {
      method: 'POST',
      headers: { origin: base, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'token=not-the-token',
      redirect: 'manual',
    });
    assert.equal(wrong.headers.get('location'), '/?login=failed');
    assert.equal(wrong.headers.get('set-cookie'), null);
    const login = await fetch(`${base}/dashboard/login`, {
      method: 'POST',
      headers: { origin: base, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token }).toString(),
      redirect: 'manual',
    });
    const cookie = login.headers.get('set-cookie') ?? '';
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const session = cookie.split(';')[0]!;
    // A forged request from another site: right cookie (were it sent), wrong origin.
    const forged = await fetch(reconcile, {
      method: 'POST',
      headers: { cookie: session, origin: 'http://evil.example' },
    });
    assert.equal(forged.status, 403);
    // Same origin but without the session's CSRF token.
    const noCsrf = await fetch(reconcile, { method: 'POST', headers: { cookie: session, origin: base } });
    assert.equal(noCsrf.status, 403);
    const crossLogin = await fetch(`${base}/dashboard/login`, {
      method: 'POST',
      headers: { origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token }).toString(),
      redirect: 'manual',
    });
    assert.equal(crossLogin.status, 403);
  });

  test('signed in: reconcile now, drain and activate the node by clicking and by keyboard', async () => {
    const token = (await readFile(join(temp, 'state', 'dashboard-token'), 'utf8')).trim();
    await page.getByLabel('Dashboard token').fill('wrong-token-wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    await page.getByLabel('Dashboard token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const reconcileNow = page.getByRole('button', { name: 'Reconcile now' });
    await reconcileNow.waitFor();

    const before = await lastReconcileId(base);
    await reconcileNow.click();
    await waitForText(page, '#action-result', 'Reconcile: done.');
    await eventually('a reconcile after the click', async () => (await lastReconcileId(base)) !== before);

    await page.getByRole('button', { name: `Drain ${node}` }).click();
    await waitForText(page, `tr[data-node="${node}"] td.availability`, 'drain');
    await page.screenshot({ path: join(shots, 'drained.png'), fullPage: true });
    // The keyboard alone: focus the button and press Enter.
    const activate = page.getByRole('button', { name: `Activate ${node}` });
    await activate.focus();
    await page.keyboard.press('Enter');
    await waitForText(page, `tr[data-node="${node}"] td.availability`, 'active');
  });
});

async function lastReconcileId(base: string): Promise<string | null> {
  const body = (await (await fetch(`${base}/healthz`)).json()) as { lastReconcile: { id: string } | null };
  return body.lastReconcile?.id ?? null;
}
