import { relative, sep } from 'node:path';

import { watch } from 'chokidar';

import { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { findGitDir } from './git-dir.js';
import { parseRepoLocation } from './remote-url.js';

export interface BranchWatch {
  close(): Promise<void>;
}

export interface WatchBranchOptions {
  /** A local working or bare repository (a path or a `file://` URL). */
  repo: string;
  branch: string;
  /**
   * Called (at most once per quiet period) after the branch may have moved. Carries nothing on
   * purpose: the reconcile it triggers re-reads the branch head from git, so a spurious call
   * costs one no-op reconcile and a missed detail cannot mislead it.
   */
  onChange: () => unknown;
  log: Logger;
  /** Quiet period before onChange fires; default 75 ms (see DEFAULT_DEBOUNCE_MS). */
  debounceMs?: number;
}

/**
 * chokidar drops a second `change` of the same file within 50 ms (with no trailing event). Waiting
 * longer than that after the last event we did see means any update chokidar swallowed has already
 * landed on disk when onChange fires, and the re-read sees it. Still far inside the 1 s budget from
 * commit to first container.
 */
export const DEFAULT_DEBOUNCE_MS = 75;

/**
 * Watches the git files that change when `branch` moves in a local repository:
 * - `refs/heads/<branch>`: written by commit, push into a bare repository, reset, merge, and a
 *   mirror's fetch (git writes `<ref>.lock` and renames it over the ref);
 * - `packed-refs`: where the ref lives after `git pack-refs`/`gc`, rewritten by the same lock+rename;
 * - `logs/refs/heads/<branch>`: the reflog, appended on every update where reflogs are on;
 * - `HEAD`: a checkout or a commit on a detached HEAD.
 *
 * The watch is on directories, filtered by name, not on the files themselves: a file-level watch
 * follows an inode, and git replaces these files by rename (and deletes loose refs when packing
 * them), so the watch would go stale. Directories that are not on a ref's path (objects/, hooks/)
 * are never entered. Resolves once the watch is armed.
 */
export async function watchBranch(options: WatchBranchOptions): Promise<BranchWatch> {
  const location = parseRepoLocation(options.repo);
  if (location.kind !== 'local') {
    throw new BerthError(
      'ERR_NOT_SUPPORTED',
      `cannot watch ${location.url}: only local repositories can be watched`,
      {
        data: { repo: location.url },
      },
    );
  }
  const layout = await findGitDir(location.path);
  const log = options.log.child({ repo: options.repo, branch: options.branch });
  const debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;

  const branchPath = options.branch.split('/');
  const signalFiles = new Set(
    [
      ['HEAD'],
      ['packed-refs'],
      ['refs', 'heads', ...branchPath],
      ['logs', 'refs', 'heads', ...branchPath],
    ].map((segments) => segments.join('/')),
  );
  // Every directory on the way to a signal file must be walked, and nothing else.
  const walkedDirs = new Set(['']);
  for (const file of signalFiles) {
    const segments = file.split('/');
    for (let length = 1; length < segments.length; length++)
      walkedDirs.add(segments.slice(0, length).join('/'));
  }
  const roots = layout.headDir === layout.gitdir ? [layout.gitdir] : [layout.gitdir, layout.headDir];
  // A linked worktree's HEAD dir lies inside the main git dir: match the deepest root first.
  const rootsDeepestFirst = [...roots].sort((a, b) => b.length - a.length);
  const relativeToRoot = (path: string): string | undefined => {
    for (const root of rootsDeepestFirst) {
      const inside = relative(root, path);
      if (!inside.startsWith('..')) return inside.split(sep).join('/');
    }
    return undefined;
  };

  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const fire = (): void => {
    timer = undefined;
    if (closed) return;
    Promise.resolve()
      .then(options.onChange)
      .catch((error: unknown) => log.error({ err: error }, 'branch change handler failed'));
  };

  const watcher = watch(roots, {
    ignoreInitial: true,
    ignored: (path: string) => {
      const inside = relativeToRoot(path);
      return inside === undefined || !(walkedDirs.has(inside) || signalFiles.has(inside));
    },
  });
  watcher.on('all', (event, path) => {
    const inside = relativeToRoot(path);
    if (inside === undefined || !signalFiles.has(inside)) return;
    log.debug({ event, file: inside }, 'git ref file changed');
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(fire, debounceMs);
  });
  watcher.on('error', (error: unknown) => log.warn({ err: error }, 'git ref watch error'));
  await new Promise<void>((resolve) => watcher.once('ready', resolve));
  log.debug({ gitdir: layout.gitdir }, 'watching branch');

  return {
    async close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      await watcher.close();
    },
  };
}
