/**
 * `<state-dir>/listen.json`: the URL `berth run --listen` serves on, so commands run against the
 * state dir (`berth events`) find the operator without being told.
 */
import { join } from 'node:path';
import { readFileIfExists, writeFileAtomic } from '../core/atomic-file.js';

const LISTEN_FILE = 'listen.json';

export async function recordListenUrl(stateDir: string, url: string): Promise<void> {
  await writeFileAtomic(join(stateDir, LISTEN_FILE), `${JSON.stringify({ url }, null, 2)}\n`);
}

/** The URL recorded by the last `berth run --listen` of this state dir; null when none was. */
export async function readListenUrl(stateDir: string): Promise<string | null> {
  const text = await readFileIfExists(join(stateDir, LISTEN_FILE));
  if (text === null) return null;
  try {
    const { url } = JSON.parse(text) as { url?: unknown };
    return typeof url === 'string' ? url : null;
  } catch {
    return null;
  }
}
