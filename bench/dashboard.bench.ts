/**
 * npm run bench:dashboard — the dashboard's first paint with 100 services, in headless Chromium.
 *
 * Serves the dashboard's real routes, page and client over an overview of 100 services (3
 * replicas each, 2 nodes, a history; made-up data, as test/dashboard does: a real 100-service
 * deploy would measure the engine, not the page). For each load it reads, from navigation start:
 *
 * - first contentful paint: the browser's first paint of any text;
 * - services painted: when the first service's row was painted (Element Timing, on the row's name
 *   cell, marked as the page builds it): the figure a person waits for, and the one held against
 *   the target (issue 17: under 200 ms). The first paint may show only the header before it.
 *   The page draws one screen of rows in its first frame and displays the rest in the next;
 * - every service displayed: when the frame after the last held-back row was let in had run (so
 *   what scrolling down finds is there).
 *
 * Cold: a new browser context each time (no cache, no cookies, a new renderer), as a first visit.
 * Warm: reloads in one context, as the next look at an open tab. The browser is started before
 * either; its own start is not the page's. Beside them, the cold first paint of a one-line page
 * from a bare HTTP server, loaded in turn with the dashboard: what this browser on this machine
 * costs any page (on a loaded machine, most of the figure).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type BrowserContext } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from '../test/helpers/browser.js';
import { startFakeDashboard } from '../test/helpers/fake-dashboard.js';

const SERVICES = Number(process.env['BENCH_SERVICES'] ?? 100);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 10);
const TARGET_MS = 200;
const VIEWPORT = { width: 1280, height: 900 };

interface Timing {
  firstPaint: number;
  servicesPaint: number;
  allDisplayed: number;
  rows: number;
  /** When the page's last byte had come, and when it was parsed (domInteractive). */
  responseEnd: number;
  parsed: number;
  /** The page's HTML as sent (compressed or not), and as parsed. */
  encodedBytes: number;
  decodedBytes: number;
}

/**
 * Runs before the page's own code: marks the first service's name cell for Element Timing as soon
 * as it exists (a mutation observer runs before the next paint), and keeps its paint time.
 */
const MARK_FIRST_SERVICE = `(() => {
  window.__servicesPaint = -1;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries())
      if (entry.identifier === 'first-service') window.__servicesPaint = entry.renderTime || entry.loadTime;
  }).observe({ type: 'element', buffered: true });
  const marker = new MutationObserver(() => {
    const cell = document.querySelector('tr[data-service] th');
    if (cell === null) return;
    cell.setAttribute('elementtiming', 'first-service');
    marker.disconnect();
  });
  marker.observe(document, { childList: true, subtree: true });
})()`;

const MARK_ALL_DISPLAYED = `(() => {
  window.__allDisplayed = -1;
  const check = () => {
    if (document.readyState !== 'loading' && document.querySelector('[data-later]') === null)
      requestAnimationFrame(() => setTimeout(() => (window.__allDisplayed = performance.now())));
    else requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})()`;

const READ_TIMING = `(async () => {
  for (let i = 0; i < 100 && (window.__servicesPaint < 0 || window.__allDisplayed < 0); i++)
    await new Promise((r) => setTimeout(r, 20));
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  const navigation = performance.getEntriesByType('navigation')[0];
  return {
    firstPaint: paint ? paint.startTime : -1,
    servicesPaint: window.__servicesPaint,
    allDisplayed: window.__allDisplayed,
    rows: document.querySelectorAll('tr[data-service]').length,
    responseEnd: navigation ? navigation.responseEnd : -1,
    parsed: navigation ? navigation.domInteractive : -1,
    encodedBytes: navigation ? navigation.encodedBodySize : -1,
    decodedBytes: navigation ? navigation.decodedBodySize : -1,
  };
})()`;

/** The first contentful paint of a one-line page in a new context. */
async function floorPaint(url: string): Promise<number> {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  await page.goto(url, { waitUntil: 'load' });
  const paint = await page.evaluate<number>(`(async () => {
    for (let i = 0; i < 100 && performance.getEntriesByName('first-contentful-paint').length === 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    const paint = performance.getEntriesByName('first-contentful-paint')[0];
    return paint ? paint.startTime : -1;
  })()`);
  await context.close();
  return paint;
}

async function loadIn(context: BrowserContext, url: string, reload: boolean): Promise<Timing> {
  const page = context.pages()[0] ?? (await context.newPage());
  if (reload) await page.reload({ waitUntil: 'load' });
  else await page.goto(url, { waitUntil: 'load' });
  const timing = await page.evaluate<Timing>(READ_TIMING);
  if (timing.rows !== SERVICES) throw new Error(`painted ${timing.rows} of ${SERVICES} services`);
  if (timing.servicesPaint < 0) throw new Error('the first service row was never painted');
  return timing;
}

function line(what: string, values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const worst = sorted[sorted.length - 1]!;
  return `    ${what}: median ${median.toFixed(0)} ms, worst ${worst.toFixed(0)} ms`;
}

function summary(label: string, timings: Timing[]): string {
  const services = timings.map((t) => t.servicesPaint).sort((a, b) => a - b);
  const median = services[Math.floor(services.length / 2)]!;
  const verdict = median < TARGET_MS ? 'under' : 'OVER';
  return (
    `  ${label}, ${timings.length} loads:\n` +
    `${line(
      'page received         ',
      timings.map((t) => t.responseEnd),
    )}\n` +
    `${line(
      'page parsed           ',
      timings.map((t) => t.parsed),
    )}\n` +
    `${line(
      'first contentful paint',
      timings.map((t) => t.firstPaint),
    )}\n` +
    `${line('services painted      ', services)} — target ${TARGET_MS} ms: ${verdict}\n` +
    `${line(
      'every service displayed',
      timings.map((t) => t.allDisplayed),
    )}\n`
  );
}

const fake = await startFakeDashboard(SERVICES);
const oneLine = createServer((_request, response) => {
  response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  response.end('<!doctype html><title>one line</title><p>One line of text.</p>');
});
await new Promise<void>((resolve) => oneLine.listen(0, '127.0.0.1', resolve));
const oneLineUrl = `http://127.0.0.1:${(oneLine.address() as AddressInfo).port}/`;
const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
try {
  const url = `${fake.base}/`;
  const cold: Timing[] = [];
  const floor: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const context = await browser.newContext({ viewport: VIEWPORT });
    await context.addInitScript(MARK_FIRST_SERVICE);
    await context.addInitScript(MARK_ALL_DISPLAYED);
    cold.push(await loadIn(context, url, false));
    await context.close();
    floor.push(await floorPaint(oneLineUrl));
  }
  const context = await browser.newContext({ viewport: VIEWPORT });
  await context.addInitScript(MARK_FIRST_SERVICE);
  await context.addInitScript(MARK_ALL_DISPLAYED);
  await loadIn(context, url, false);
  const warm: Timing[] = [];
  for (let i = 0; i < ROUNDS; i++) warm.push(await loadIn(context, url, true));
  await context.close();
  const page = cold[0]!;
  process.stdout.write(
    `dashboard first paint, ${SERVICES} services (${SERVICES * 3} replicas); the page is ` +
      `${(page.encodedBytes / 1024).toFixed(0)} KiB sent, ${(page.decodedBytes / 1024).toFixed(0)} KiB of HTML:\n` +
      summary('cold (a new browser context: no cache, a new renderer)', cold) +
      summary('warm (reloads of an open tab)', warm) +
      `  a one-line page, cold, ${ROUNDS} loads (the floor of this browser on this machine):\n` +
      `${line('first contentful paint', floor)}\n`,
  );
} finally {
  await browser.close();
  await fake.close();
  oneLine.close();
}
