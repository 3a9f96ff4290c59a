/**
 * The web dashboard of `berth run --listen`, opened in headless Chromium against a real operator
 * and engine: a service and its replicas, a commit rolling out live, the plan it was rolled out
 * with and the head against the live cluster, actions refused without signing in, reconcile /
 * drain / activate by clicking once signed in, a replica's logs followed, and a refused revision
 * retried. Screenshots go to
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
/** Screenshots that docs/ shows, by the name the test saves them under. */
const DOCS_SCREENSHOTS: Record<string, string> = {
  'rolled-out.png': 'dashboard.png',
  'history-plan.png': 'dashboard-plan.png',
  'logs.png': 'dashboard-logs.png',
};

function manifests(image: string): Record<string, string> {
  return {
    'deploy/all.yaml': manifestFile(
      namespaceManifest(ns),
      webService({
        namespace: ns,
        image,
        replicas: 2,
        update: { parallelism: 1, monitor: '1s' },
        // Says hello, then logs each request (the health checks: a line a second to follow).
        command: ['sh', '-c', 'echo "hello from $(hostname)" && exec httpd -f -vv -p 8080 -h /www'],
      }),
    ),
  };
}

/** A revision the operator refuses as invalid (held as failed until a newer commit or a retry). */
const BROKEN = {
  'deploy/all.yaml': manifestFile(namespaceManifest(ns), webService({ namespace: ns, replicas: -1 })),
};

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
  /** Saved to the screenshot dir; with BERTH_UPDATE_SCREENSHOTS=1 also to docs/img when docs show it. */
  const screenshot = async (target: Page, name: string): Promise<void> => {
    await target.screenshot({ path: join(shots, name), fullPage: true });
    const docs = DOCS_SCREENSHOTS[name];
    if (docs !== undefined && process.env['BERTH_UPDATE_SCREENSHOTS'] === '1') {
      await copyFile(join(shots, name), fileURLToPath(new URL(`../../docs/img/${docs}`, import.meta.url)));
    }
  };

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
    await screenshot(page, 'rolled-out.png');
  });

  test('history opens the plan a revision was rolled out with; the head matches the live cluster', async () => {
    const head = await repo.head();
    await page.getByRole('button', { name: `Plan of ${head.slice(0, 12)}` }).click();
    const plan = page.locator(`#revision-plan[data-revision="${head}"] pre`);
    await plan.waitFor();
    assert.match((await plan.textContent()) ?? '', new RegExp(`Plan for ${head.slice(0, 12)}: 1 to update`));
    assert.match((await plan.textContent()) ?? '', new RegExp(`~ ${ns}/web: update`));
    await page.getByRole('button', { name: 'Show the plan of the branch head' }).click();
    await page.locator(`#head-plan-summary[data-revision="${head}"][data-changes="false"]`).waitFor();
    assert.match(
      (await page.locator('#head-plan-text').textContent()) ?? '',
      /No changes: the cluster matches/,
    );
    await screenshot(page, 'history-plan.png');
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

  test("signed in: a replica's logs, its first line and then the lines it writes", async () => {
    await page.locator(`${row} summary`).click();
    const logsButton = page.locator(`${row} button[data-logs-node="${node}"]`).first();
    const replica = await logsButton.getAttribute('data-logs-replica');
    await logsButton.click();
    const logs = page.getByLabel('Log lines');
    await logs.filter({ hasText: `hello from ` }).waitFor({ timeout: 60_000 });
    // Followed: the health checks' requests keep adding lines.
    const count = Number(await logs.getAttribute('data-lines'));
    await eventually('more log lines', async () => Number(await logs.getAttribute('data-lines')) > count);
    assert.equal(await page.locator('#logs-section').getAttribute('data-replica'), replica);
    await screenshot(page, 'logs.png');
    await page.getByRole('button', { name: 'Close logs' }).click();
  });

  test('a failed revision: retry refused without the token, tried again with it', async () => {
    const broken = await repo.commit(BROKEN, 'web: replicas -1');
    await page.locator(`#history tr[data-revision="${broken}"]`).waitFor({ timeout: 120_000 });
    const retry = `${base}/v1/dashboard/revisions/${broken}/retry`;
    assert.equal((await fetch(retry, { method: 'POST', headers: { origin: base } })).status, 401);
    const entries = async (): Promise<number> =>
      (await readHistory(join(temp, 'state'))).filter((h) => h.revision === broken).length;
    assert.equal(await entries(), 1);
    await page
      .getByRole('button', { name: `Retry ${broken.slice(0, 12)}` })
      .first()
      .click();
    await waitForText(page, '#action-result', `Retry ${broken.slice(0, 12)}: done.`);
    // Tried again (and refused again): a second entry in the audit log.
    await eventually('the broken revision tried again', async () => (await entries()) === 2);
    await page.screenshot({ path: join(shots, 'retried.png'), fullPage: true });
  });
});

async function readHistory(stateDir: string): Promise<{ revision: string }[]> {
  const text = await readFile(join(stateDir, 'history.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { revision: string });
}

async function lastReconcileId(base: string): Promise<string | null> {
  const body = (await (await fetch(`${base}/healthz`)).json()) as { lastReconcile: { id: string } | null };
  return body.lastReconcile?.id ?? null;
}
