import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';

import { BerthError } from '../core/errors.js';

/** Where a local repository keeps its git data. */
export interface GitDirLayout {
  /**
   * The directory holding objects, refs and packed-refs: `.git` of a working repository, the
   * repository itself when bare, or the main repository's git dir for a linked worktree.
   */
  gitdir: string;
  /**
   * The directory holding this checkout's `HEAD` and `logs/HEAD`. Equal to `gitdir` except for a
   * linked worktree (`git worktree add`), whose HEAD lives in `.git/worktrees/<name>`.
   */
  headDir: string;
  bare: boolean;
}

/**
 * Finds the git dir of the repository at `repoPath`, which must be the top of a working
 * repository or a bare repository. A `.git` *file* (`gitdir: <path>`, written for worktrees and
 * submodules) is followed, and so is a worktree's `commondir`. Parent directories are not searched:
 * `--path` is relative to the repository root, so guessing a root from a subdirectory would make
 * paths mean something other than what the user typed.
 */
export async function findGitDir(repoPath: string): Promise<GitDirLayout> {
  const root = resolve(repoPath);
  if (!(await isDirectory(root))) {
    throw new BerthError('ERR_GIT_SOURCE', `repository ${repoPath} does not exist or is not a directory`, {
      data: { repo: repoPath },
    });
  }
  const dotGit = join(root, '.git');
  if (await isDirectory(dotGit)) return { gitdir: dotGit, headDir: dotGit, bare: false };
  if (await isFile(dotGit)) {
    const headDir = await followGitFile(dotGit, root);
    return { gitdir: await commonDirOf(headDir), headDir, bare: false };
  }
  if ((await isFile(join(root, 'HEAD'))) && (await isDirectory(join(root, 'objects')))) {
    return { gitdir: await commonDirOf(root), headDir: root, bare: true };
  }
  throw new BerthError(
    'ERR_GIT_SOURCE',
    `${repoPath} is not a git repository (no .git directory, and not a bare repository); pass the repository's top directory`,
    { data: { repo: repoPath } },
  );
}

async function followGitFile(dotGitFile: string, root: string): Promise<string> {
  const content = (await readFile(dotGitFile, 'utf8')).trim();
  const match = /^gitdir:\s*(.+)$/m.exec(content);
  if (!match?.[1]) {
    throw new BerthError('ERR_GIT_SOURCE', `${dotGitFile} is a file but does not say "gitdir: <path>"`, {
      data: { repo: root },
    });
  }
  const target = match[1].trim();
  return isAbsolute(target) ? target : resolve(root, target);
}

async function commonDirOf(gitdir: string): Promise<string> {
  try {
    const common = (await readFile(join(gitdir, 'commondir'), 'utf8')).trim();
    return isAbsolute(common) ? common : resolve(gitdir, common);
  } catch {
    return gitdir;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (stats) => stats.isDirectory(),
    () => false,
  );
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (stats) => stats.isFile(),
    () => false,
  );
}
