import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, test } from 'node:test';

import { silentLogger } from '../../src/core/log.js';
import { openGitSource } from '../../src/source/git-source.js';
import { watchBranch, type BranchWatch } from '../../src/source/ref-watch.js';
import { createBareRemote, createTestRepo, git, type TestRepo } from '../helpers/git-repo.js';

const log = silentLogger();
/** Generous: this is a liveness bound for a noisy machine, not a latency assertion. */
const CHANGE_TIMEOUT_MS = 15_000;

/**
 * Counts onChange calls; `next()` resolves on the first call after it was asked for, so an event
 * from an earlier step cannot satisfy a later expectation.
 */
function changeRecorder() {
  let waiting: (() => void) | undefined;
  return {
    onChange: () => {
      waiting?.();
      waiting = undefined;
    },
    next(what: string): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no change reported after ${what}`)),
          CHANGE_TIMEOUT_MS,
        );
        waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    },
  };
}

void describe('watchBranch', () => {
  let repo: TestRepo;
  let scratch: string;
  const watches: BranchWatch[] = [];

  beforeEach(async () => {
    repo = await createTestRepo({ 'app.yaml': 'v: 1\n' });
    scratch = await mkdtemp(join(tmpdir(), 'berth-watch-'));
  });

  afterEach(async () => {
    for (const watch of watches.splice(0)) await watch.close();
    await repo.cleanup();
    await rm(scratch, { recursive: true, force: true });
  });

  void test('a commit in a working repository triggers, and the branch head is then readable', async () => {
    const changes = changeRecorder();
    watches.push(await watchBranch({ repo: repo.dir, branch: 'main', onChange: changes.onChange, log }));
    const changed = changes.next('git commit');
    const commit = await repo.commit({ 'app.yaml': 'v: 2\n' }, 'bump');
    await changed;
    const source = await openGitSource({ repo: repo.dir, cacheDir: scratch, log });
    assert.equal(await source.headOf('main'), commit);

    const reset = changes.next('git reset');
    await repo.git('reset', '--quiet', '--hard', 'HEAD~1');
    await reset;
  });

  void test('a push into a bare repository (given as a file:// URL) triggers', async () => {
    const bare = await createBareRemote(repo, scratch, 'served.git');
    const changes = changeRecorder();
    watches.push(
      await watchBranch({ repo: pathToFileURL(bare).href, branch: 'main', onChange: changes.onChange, log }),
    );
    const pushed = changes.next('git push');
    await repo.commit({ 'app.yaml': 'v: 2\n' }, 'bump');
    await repo.git('push', '--quiet', 'origin', 'main');
    await pushed;
  });

  void test('a fetch into a mirror triggers, also after its refs were packed', async () => {
    const mirror = join(scratch, 'mirror.git');
    await git(scratch, 'clone', '--quiet', '--mirror', repo.dir, mirror);
    const changes = changeRecorder();
    watches.push(await watchBranch({ repo: mirror, branch: 'main', onChange: changes.onChange, log }));

    const fetched = changes.next('git fetch');
    await repo.commit({ 'app.yaml': 'v: 2\n' }, 'bump');
    await git(mirror, 'fetch', '--quiet');
    await fetched;

    // pack-refs moves the branch into packed-refs and deletes the loose ref file.
    const packed = changes.next('git pack-refs');
    await git(mirror, 'pack-refs', '--all', '--prune');
    await packed;

    const fetchedAgain = changes.next('git fetch after pack-refs');
    await repo.commit({ 'app.yaml': 'v: 3\n' }, 'bump again');
    await git(mirror, 'fetch', '--quiet');
    await fetchedAgain;
  });

  void test('a branch with a slash in its name is watched', async () => {
    await repo.git('checkout', '--quiet', '-b', 'env/prod');
    const changes = changeRecorder();
    watches.push(await watchBranch({ repo: repo.dir, branch: 'env/prod', onChange: changes.onChange, log }));
    const changed = changes.next('a commit on env/prod');
    await repo.commit({ 'app.yaml': 'v: prod\n' }, 'prod');
    await changed;
  });
});
