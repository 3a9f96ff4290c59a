/**
 * Headless Chromium for the dashboard's tests: Debian's `chromium` package (installed by .ci/run),
 * driven by playwright-core, with a fresh profile that is removed on close.
 *
 *   const browser = await openBrowser();
 *   const page = await browser.context.newPage();
 *   after(() => browser.close());
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = process.env['BERTH_CHROMIUM'] ?? '/usr/bin/chromium';

/** Chromium's flags for tests and benchmarks: headless, and nothing talking to the network on its own. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function openBrowser(): Promise<TestBrowser> {
  const profile = await mkdtemp(join(tmpdir(), 'berth-chromium-'));
  try {
    // A persistent context is how playwright takes a --user-data-dir of our own.
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      headless: true,
      viewport: { width: 1280, height: 900 },
    });
    return {
      context,
      close: async () => {
        await context.close();
        await rm(profile, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(profile, { recursive: true, force: true });
    throw error;
  }
}
