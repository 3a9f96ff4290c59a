import { readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../core/log.js';

/** A remote's cache folder is named by 16 hex digits of the hash of its URL (remote-url.ts). */
const CACHE_FOLDER = /^[0-9a-f]{16}$/;
/** Touched each time a cache is opened: the folders' own times change with every write inside. */
const LAST_USED = 'berth-last-used';

/**
 * The git cache keeps one folder per remote URL. A URL given once (a typo, a repository moved)
 * would otherwise stay on disk for good: once a cache is opened, the folders beyond the `keep`
 * most recently used go. Each is at most about 612 MiB (remote-git-source.ts), so the whole cache
 * stays under `keep` times that.
 */
export async function markUsedAndPrune(gitdir: string, keep: number, log: Logger): Promise<void> {
  const marker = join(gitdir, LAST_USED);
  const now = new Date();
  await writeFile(marker, '').catch(() => undefined);
  await utimes(marker, now, now).catch(() => undefined);
  const root = dirname(gitdir);
  const own = basename(gitdir);
  const names = (await readdir(root).catch(() => [] as string[])).filter(
    (n) => CACHE_FOLDER.test(n) && n !== own,
  );
  if (names.length < keep) return;
  const used = await Promise.all(
    names.map(async (name) => ({
      name,
      at: await stat(join(root, name, LAST_USED)).then(
        (s) => s.mtimeMs,
        // A folder of an earlier version, without the marker: its own time says when it was written.
        () =>
          stat(join(root, name)).then(
            (s) => s.mtimeMs,
            () => 0,
          ),
      ),
    })),
  );
  used.sort((a, b) => b.at - a.at);
  for (const { name } of used.slice(keep - 1)) {
    await rm(join(root, name), { recursive: true, force: true });
    log.info({ cache: name }, 'removed the git cache of a repository not followed lately');
  }
}
