import { createRequire } from 'node:module';

/** The version of berth that runs, from its package.json (one level above src/ and dist/). */
export const BERTH_VERSION: string = (
  createRequire(import.meta.url)('../../package.json') as { version: string }
).version;
