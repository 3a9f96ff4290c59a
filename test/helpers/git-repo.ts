/**
 * Real git repositories for tests, made with the `git` CLI (not isomorphic-git, so the code under
 * test reads repositories written by the tool users actually run).
 *
 *   const repo = await createTestRepo({ 'deploy/web.yaml': 'kind: Service\n' });
 *   const second = await repo.commit({ 'deploy/web.yaml': 'changed\n', 'old.yaml': null }, 'update web');
 *   await repo.git('tag', 'v1');
 *   await repo.cleanup();
 *
 * Every git command runs with the user's global and system config switched off, so a developer's
 * `commit.gpgsign` or hooks path cannot change what the tests see.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const isolatedGitEnv: NodeJS.ProcessEnv = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_TERMINAL_PROMPT: '0',
};

/** Runs `git ...args` in `cwd` and returns its stdout without the trailing newline. */
export async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('git', args, {
    cwd,
    env: isolatedGitEnv,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout.replace(/\n$/, '');
}

export interface TestRepo {
  /** The working tree; its git dir is `${dir}/.git`. */
  dir: string;
  branch: string;
  /**
   * Writes the files (a `null` value deletes that file), stages everything and commits on the
   * current branch. Returns the new commit id. An unchanged tree still makes a (empty) commit.
   */
  commit(files: Record<string, string | null>, message: string): Promise<string>;
  /** The commit id of HEAD. */
  head(): Promise<string>;
  /** Runs any git command in the working tree, e.g. `repo.git('tag', '-a', 'v1', '-m', 'v1')`. */
  git(...args: string[]): Promise<string>;
  cleanup(): Promise<void>;
}

/** A fresh repository in a temp dir, with one commit holding `files` on `branch` (default `main`). */
export async function createTestRepo(
  files: Record<string, string>,
  options: { branch?: string } = {},
): Promise<TestRepo> {
  const branch = options.branch ?? 'main';
  const dir = await mkdtemp(join(tmpdir(), 'berth-repo-'));
  await git(dir, '-c', `init.defaultBranch=${branch}`, 'init', '--quiet');
  await git(dir, 'config', 'user.name', 'Berth Test');
  await git(dir, 'config', 'user.email', 'test@berth.invalid');
  await git(dir, 'config', 'commit.gpgsign', 'false');

  const repo: TestRepo = {
    dir,
    branch,
    async commit(changes, message) {
      for (const [path, content] of Object.entries(changes)) {
        const target = join(dir, path);
        if (content === null) {
          await rm(target, { force: true });
        } else {
          await mkdir(dirname(target), { recursive: true });
          await writeFile(target, content);
        }
      }
      await git(dir, 'add', '--all');
      await git(dir, 'commit', '--quiet', '--allow-empty', '--no-verify', '-m', message);
      return repo.head();
    },
    head: () => git(dir, 'rev-parse', 'HEAD'),
    git: (...args) => git(dir, ...args),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
  await repo.commit(files, 'initial commit');
  return repo;
}

/**
 * A bare clone of `repo` at `${root}/${name}` (e.g. for serving with startGitHttpServer), with
 * `repo`'s remote `origin` pointing at it so `repo.git('push', 'origin', 'main')` publishes.
 */
export async function createBareRemote(repo: TestRepo, root: string, name: string): Promise<string> {
  const bareDir = join(root, name);
  await git(root, 'clone', '--quiet', '--bare', repo.dir, bareDir);
  await repo.git('remote', 'add', 'origin', bareDir);
  return bareDir;
}
