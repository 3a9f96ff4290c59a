import fs from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import git from 'isomorphic-git';

import { BerthError } from '../core/errors.js';
import { findGitDir } from './git-dir.js';
import { shortRevision } from './revision.js';

/** What `berth rollback` wrote. */
export interface RevertCommitResult {
  /** The new commit on the branch; null when the branch already had the target's tree. */
  commit: string | null;
  /** Its tree: exactly the tree of `target`. */
  tree: string;
  branch: string;
  /** The branch head before the revert (the new commit's only parent). */
  previousHead: string;
  target: string;
  message: string;
  /** Commits undone, newest first (those between `target` and the old head, when it is an ancestor). */
  reverted: { oid: string; subject: string }[];
  /** Whether the checked-out working tree and index were brought along to the new commit. */
  checkoutUpdated: boolean;
}

export interface RevertCommitOptions {
  /** A local repository (working or bare). */
  repo: string;
  branch: string;
  /** The commit whose tree the branch returns to. */
  target: string;
  /** The manifest sub-directory: uncommitted changes there are what a rollback must never lose. */
  path: string;
  /** Default: the repository's user.name/user.email, else "berth". */
  author?: { name: string; email: string };
  /** The clock for the commit's author and committer dates. */
  now?: () => Date;
}

const MAX_LISTED_COMMITS = 50;

function subjectOf(message: string): string {
  return message.split('\n')[0] ?? '';
}

/** The branch each checkout of this repository has checked out: HEAD files of the main and linked worktrees. */
async function checkedOutBranches(gitdir: string, mainHasWorktree: boolean): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const read = async (headFile: string, where: string) => {
    const head = await readFile(headFile, 'utf8').catch(() => '');
    const ref = /^ref: refs\/heads\/(.+)$/m.exec(head.trim())?.[1];
    if (ref !== undefined) found.set(where, ref);
  };
  if (mainHasWorktree) await read(join(gitdir, 'HEAD'), 'main');
  const worktrees = await readdir(join(gitdir, 'worktrees')).catch(() => [] as string[]);
  for (const name of worktrees) await read(join(gitdir, 'worktrees', name, 'HEAD'), name);
  return found;
}

/**
 * Adds a commit to `branch` whose parent is the branch head and whose tree is the tree of
 * `target`: a revert of everything after `target`, written the way `git revert` would, so git
 * stays the single source of truth for what the cluster runs. Local repositories only.
 *
 * A non-bare repository that has `branch` checked out must be clean (no staged or unstaged
 * changes, no untracked files under the manifest path); its index and working tree are then moved
 * to the new commit, as `git pull` would. A branch checked out in a linked worktree is refused:
 * that checkout would silently fall behind.
 */
export async function createRevertCommit(options: RevertCommitOptions): Promise<RevertCommitResult> {
  const layout = await findGitDir(options.repo);
  const dir = resolve(options.repo);
  const { gitdir } = layout;
  if (layout.headDir !== layout.gitdir) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `${options.repo} is a linked worktree; run berth rollback on the main checkout or a bare repository`,
    );
  }
  const branchRef = `refs/heads/${options.branch}`;
  let head: string;
  try {
    head = await git.resolveRef({ fs, gitdir, ref: branchRef });
  } catch {
    throw new BerthError('ERR_GIT_REF_NOT_FOUND', `${options.repo} has no branch ${options.branch}`);
  }
  const checkouts = await checkedOutBranches(gitdir, !layout.bare);
  const elsewhere = [...checkouts].find(([where, b]) => b === options.branch && where !== 'main');
  if (elsewhere) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `branch ${options.branch} is checked out in the linked worktree "${elsewhere[0]}"; check out another branch there first`,
    );
  }
  const checkedOut = !layout.bare && checkouts.get('main') === options.branch;
  if (checkedOut) await requireClean(dir, gitdir, options.path);

  const { commit: targetCommit } = await git.readCommit({ fs, gitdir, oid: options.target });
  const { commit: headCommit } = await git.readCommit({ fs, gitdir, oid: head });
  const tree = targetCommit.tree;
  const reverted = await commitsBetween(gitdir, head, options.target);
  const message = revertMessage(options.target, targetCommit.message, head, reverted);
  const base: Omit<RevertCommitResult, 'commit' | 'checkoutUpdated'> = {
    tree,
    branch: options.branch,
    previousHead: head,
    target: options.target,
    message,
    reverted: reverted ?? [],
  };
  if (headCommit.tree === tree) return { ...base, commit: null, checkoutUpdated: false };

  const author = options.author ?? (await authorOf(gitdir));
  const timestamp = Math.floor((options.now?.() ?? new Date()).getTime() / 1000);
  const signature = { ...author, timestamp, timezoneOffset: 0 };
  const commit = await git.writeCommit({
    fs,
    gitdir,
    commit: { tree, parent: [head], author: signature, committer: signature, message },
  });
  // Compare-and-swap by hand: isomorphic-git has no atomic ref update, so re-read just before.
  const now = await git.resolveRef({ fs, gitdir, ref: branchRef });
  if (now !== head) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `branch ${options.branch} moved from ${shortRevision(head)} to ${shortRevision(now)} meanwhile; run berth rollback again`,
    );
  }
  await git.writeRef({ fs, gitdir, ref: branchRef, value: commit, force: true });
  if (checkedOut) await git.checkout({ fs, dir, gitdir, ref: options.branch });
  return { ...base, commit, checkoutUpdated: checkedOut };
}

async function requireClean(dir: string, gitdir: string, manifestPath: string): Promise<void> {
  const prefix = manifestPath === '.' || manifestPath === '' ? '' : `${manifestPath.replace(/\/+$/, '')}/`;
  const matrix = await git.statusMatrix({ fs, dir, gitdir });
  const dirty = matrix
    .filter(([file, headStatus, workdir, stage]) => {
      const untracked = headStatus === 0 && stage === 0;
      if (untracked) return file.startsWith(prefix);
      return !(headStatus === 1 && workdir === 1 && stage === 1);
    })
    .map(([file]) => file);
  if (dirty.length > 0) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `the checkout at ${dir} has uncommitted changes (${dirty.slice(0, 5).join(', ')}${dirty.length > 5 ? ', ...' : ''}); commit or stash them first, so a rollback cannot overwrite them`,
    );
  }
}

/** The commits after `target` up to `head`, newest first; null when `target` is not an ancestor. */
async function commitsBetween(
  gitdir: string,
  head: string,
  target: string,
): Promise<{ oid: string; subject: string }[] | null> {
  if (head === target) return [];
  const isAncestor = await git.isDescendent({ fs, gitdir, oid: head, ancestor: target, depth: -1 });
  if (!isAncestor) return null;
  const out: { oid: string; subject: string }[] = [];
  let oid = head;
  // First-parent walk: the commits that made up the branch as it was deployed.
  while (oid !== target && out.length < MAX_LISTED_COMMITS) {
    const { commit } = await git.readCommit({ fs, gitdir, oid });
    out.push({ oid, subject: subjectOf(commit.message) });
    const parent = commit.parent[0];
    if (parent === undefined) break;
    oid = parent;
  }
  return out;
}

function revertMessage(
  target: string,
  targetMessage: string,
  head: string,
  reverted: { oid: string; subject: string }[] | null,
): string {
  const lines = [
    `Revert to ${shortRevision(target)} (berth rollback)`,
    '',
    `Returns the tree to ${target} ("${subjectOf(targetMessage)}").`,
  ];
  if (reverted === null) {
    lines.push(
      `${shortRevision(target)} is not an ancestor of ${shortRevision(head)}; the tree is replaced as a whole.`,
    );
  } else {
    lines.push(`Reverts ${shortRevision(target)}..${shortRevision(head)}:`, '');
    for (const c of reverted) lines.push(`    ${shortRevision(c.oid)} ${c.subject}`);
    if (reverted.length === MAX_LISTED_COMMITS) lines.push('    ...');
  }
  return `${lines.join('\n')}\n`;
}

async function authorOf(gitdir: string): Promise<{ name: string; email: string }> {
  const name = (await git.getConfig({ fs, gitdir, path: 'user.name' })) as unknown;
  const email = (await git.getConfig({ fs, gitdir, path: 'user.email' })) as unknown;
  return {
    name: typeof name === 'string' && name !== '' ? name : 'berth',
    email: typeof email === 'string' && email !== '' ? email : 'berth@localhost',
  };
}
