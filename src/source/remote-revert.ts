import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import git from 'isomorphic-git';

import { BerthError } from '../core/errors.js';
import { createGitHttpClient } from './git-http-client.js';
import { basicAuthorization, redactUrl, type GitCredentials } from './remote-url.js';

function credentialsHint(message: string): string {
  return /\b(401|403)\b/.test(message)
    ? '; set BERTH_GIT_USERNAME and BERTH_GIT_PASSWORD or BERTH_GIT_PASSWORD_FILE (a token allowed to push)'
    : '';
}

/**
 * A private, complete copy of one branch of a remote, for writing a commit and pushing it back.
 * berth's own remote cache is shallow (one commit per branch): a revert needs the target commit and
 * the history between it and the head, and a push needs a repository git can reason about.
 */
export async function withBranchClone<T>(
  args: { url: string; branch: string; credentials: GitCredentials | undefined },
  work: (gitdir: string) => Promise<T>,
): Promise<T> {
  const root = await mkdtemp(join(tmpdir(), 'berth-rollback-'));
  const gitdir = join(root, 'repo.git');
  const headers = args.credentials ? { Authorization: basicAuthorization(args.credentials) } : {};
  try {
    try {
      await git.clone({
        fs,
        http: createGitHttpClient(),
        dir: join(root, 'unused-worktree'),
        gitdir,
        url: args.url,
        ref: args.branch,
        singleBranch: true,
        noCheckout: true,
        noTags: true,
        headers,
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new BerthError(
        'ERR_GIT_SOURCE',
        `cannot clone branch ${args.branch} of ${redactUrl(args.url)}: ${message}${credentialsHint(message)}`,
        { cause: error },
      );
    }
    return await work(gitdir);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * Pushes `branch` of `gitdir` to the remote as a fast-forward. Not forced: if someone pushed in
 * the meantime the push is refused and nothing is overwritten.
 */
export async function pushBranch(args: {
  gitdir: string;
  url: string;
  branch: string;
  credentials: GitCredentials | undefined;
}): Promise<void> {
  const headers = args.credentials ? { Authorization: basicAuthorization(args.credentials) } : {};
  let result: Awaited<ReturnType<typeof git.push>>;
  try {
    result = await git.push({
      fs,
      http: createGitHttpClient(),
      gitdir: args.gitdir,
      url: args.url,
      ref: `refs/heads/${args.branch}`,
      remoteRef: `refs/heads/${args.branch}`,
      headers,
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new BerthError(
      'ERR_GIT_SOURCE',
      `push to ${redactUrl(args.url)} failed: ${message}${credentialsHint(message)}`,
      {
        cause: error,
      },
    );
  }
  const refResult = result.refs[`refs/heads/${args.branch}`];
  if (!result.ok || (refResult && !refResult.ok)) {
    throw new BerthError(
      'ERR_GIT_SOURCE',
      `push to ${redactUrl(args.url)} was refused: ${refResult?.error ?? result.error ?? 'unknown reason'} (did the branch move? run berth rollback again)`,
    );
  }
}
