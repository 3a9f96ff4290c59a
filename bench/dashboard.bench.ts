/**
 * npm run bench:dashboard — the dashboard's first paint with 100 services, in headless Chromium.
 *
 * Serves the dashboard's real routes, page and client over an overview of 100 services (3
 * replicas each, 2 nodes, a history; made-up data, as test/dashboard does: a real 100-service
 * deploy would measure the engine, not the page) and reads the Performance API's
 * first-contentful-paint and the load event of each load. The first load also starts Chromium's
 * renderer; the reloads are what a person sees next. Target (issue 17): first paint under 200 ms.
 */
import { openBrowser } from '../test/helpers/browser.js';
import { startFakeDashboard } from '../test/helpers/fake-dashboard.js';

const SERVICES = Number(process.env['BENCH_SERVICES'] ?? 100);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 10);
const TARGET_MS = 200;

interface Timing {
  paint: number;
  rows: number;
}

const fake = await startFakeDashboard(SERVICES);
const browser = await openBrowser();
try {
  const page = await browser.context.newPage();
  const measure = (): Promise<Timing> =>
    page.evaluate<Timing>(`(() => {
      const paint = performance.getEntriesByName('first-contentful-paint')[0];
      return { paint: paint ? paint.startTime : -1, rows: document.querySelectorAll('tr[data-service]').length };
    })()`);
  await page.goto(`${fake.base}/`, { waitUntil: 'load' });
  const cold = await measure();
  const warm: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    await page.reload({ waitUntil: 'load' });
    const timing = await measure();
    if (timing.rows !== SERVICES) throw new Error(`painted ${timing.rows} of ${SERVICES} services`);
    warm.push(timing.paint);
  }
  warm.sort((a, b) => a - b);
  const median = warm[Math.floor(warm.length / 2)]!;
  const worst = warm[warm.length - 1]!;
  const verdict = median < TARGET_MS ? 'under' : 'OVER';
  process.stdout.write(
    `dashboard first contentful paint, ${SERVICES} services (${SERVICES * 3} replicas):\n` +
      `  cold (first load, starts the renderer): ${cold.paint.toFixed(0)} ms\n` +
      `  reload, median of ${ROUNDS}: ${median.toFixed(0)} ms (worst ${worst.toFixed(0)} ms)` +
      ` — target ${TARGET_MS} ms: ${verdict}\n`,
  );
} finally {
  await browser.close();
  await fake.close();
}
