/**
 * The dashboard's page and client against a made-up overview of 100 services (no engine): the
 * first paint with every row, how long it took (a diagnostic, not an assertion), the actions'
 * guards, and the node buttons reaching the node control.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { dashboardRoutes } from '../../src/operator/dashboard-routes.js';
import type { ListedNode, Overview } from '../../src/operator/overview.js';
import { openBrowser, type TestBrowser } from '../helpers/browser.js';

const TOKEN = 'a-dashboard-token-for-tests';
const SERVICES = 100;

function overviewOf(nodes: ListedNode[]): Overview {
  const revision = 'a'.repeat(40);
  return {
    generatedAt: new Date().toISOString(),
    repository: { repo: '/srv/deploy', path: 'deploy', branch: 'main' },
    head: revision,
    target: revision,
    deployed: { revision, at: new Date().toISOString() },
    headDiffers: null,
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        reason: 'ReconciliationSucceeded',
        message: 'the cluster runs aaaaaaaaaaaa',
        lastTransitionTime: new Date().toISOString(),
      },
    ],
    lastReconcile: { id: 'r1', outcome: 'unchanged', reason: null },
    lastError: null,
    rollout: null,
    events: [],
    jobs: [],
    services: Array.from({ length: SERVICES }, (_, i) => ({
      namespace: `team-${i % 5}`,
      // Text that would be markup if the page parsed it as HTML.
      name: i === 0 ? '<img src=x onerror=alert(1)>' : `service-${i}`,
      desired: 3,
      running: 3,
      healthy: 3,
      revisions: [revision.slice(0, 12)],
      nodes: ['n1', 'n2'],
    })),
    nodes: nodes.map((n) => ({ ...n })),
    history: [],
    canDrain: true,
  };
}

describe('the dashboard page with 100 services', () => {
  let app: FastifyInstance;
  let base: string;
  let browser: TestBrowser;
  const triggers: string[] = [];
  const nodes: ListedNode[] = [
    { name: 'n1', status: 'ready', availability: 'active', kind: 'local', labels: {}, replicas: 150 },
    {
      name: 'n2',
      status: 'ready',
      availability: 'active',
      kind: 'joined',
      labels: { zone: 'b' },
      replicas: 150,
    },
  ];

  before(async () => {
    app = Fastify();
    await app.register(dashboardRoutes, {
      operator: {
        trigger: async (reason: string) => {
          triggers.push(reason);
          return null;
        },
      },
      overview: { read: async () => overviewOf(nodes) },
      nodes: {
        list: () => nodes,
        setAvailability: async (name, availability) => {
          const found = nodes.find((n) => n.name === name);
          if (!found) throw new Error(`no node ${name}`);
          found.availability = availability;
        },
      },
      token: TOKEN,
    });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    browser = await openBrowser();
  });
  after(async () => {
    await browser?.close();
    await app?.close();
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
      body: `token=${TOKEN}`,
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
    assert.deepEqual(triggers, []);
    assert.equal((await post({ origin: base, 'x-csrf-token': csrf })).status, 202);
    assert.deepEqual(triggers, ['dashboard']);
  });

  test('a signed-in browser drains and activates a node with the keyboard', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${base}/`);
    await page.getByLabel('Dashboard token').fill(TOKEN);
    await page.keyboard.press('Enter');
    const drain = page.getByRole('button', { name: 'Drain n2' });
    await drain.focus();
    await page.keyboard.press('Enter');
    await page.locator('tr[data-node="n2"] td.availability', { hasText: 'drain' }).waitFor();
    assert.equal(nodes[1]!.availability, 'drain');
    // Redrawn with the other button, which keeps the focus: Enter again undoes it.
    await page.getByRole('button', { name: 'Activate n2' }).waitFor();
    await page.getByRole('button', { name: 'Activate n2' }).focus();
    await page.keyboard.press('Enter');
    await page.locator('tr[data-node="n2"] td.availability', { hasText: 'active' }).waitFor();
    assert.equal(nodes[1]!.availability, 'active');
    await page.close();
  });
});
