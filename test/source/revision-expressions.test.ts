import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { BerthError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { openGitSource, type GitSource } from '../../src/source/git-source.js';
import { startGitHttpServer, type GitHttpServer } from '../helpers/git-http-server.js';
import { createBareRemote, createTestRepo, type TestRepo } from '../helpers/git-repo.js';

/**
 * History, oldest first:   c1 - c2 - c3 - merge   (main, tag v2 on merge)
 *                                \         /
 *                                 f1 -----        (feature)
 */
void describe('git revision syntax (HEAD~1, main^, origin/main, v2^2~1, short ids)', () => {
  let repo: TestRepo;
  let scratch: string;
  let server: GitHttpServer;
  const c: Record<string, string> = {};
  const sources: GitSource[] = [];

  before(async () => {
    repo = await createTestRepo({ 'deploy/web.yaml': 'kind: Service\n' });
    c.c1 = await repo.head();
    c.c2 = await repo.commit({ 'deploy/web.yaml': 'kind: Service # 2\n' }, 'c2');
    await repo.git('checkout', '--quiet', '-b', 'feature');
    c.f1 = await repo.commit({ 'deploy/db.yaml': 'kind: Service\n' }, 'f1');
    await repo.git('checkout', '--quiet', 'main');
    c.c3 = await repo.commit({ 'deploy/web.yaml': 'kind: Service # 3\n' }, 'c3');
    await repo.git('merge', '--quiet', '--no-ff', '-m', 'merge feature', 'feature');
    c.merge = await repo.head();
    await repo.git('tag', 'v2');
    scratch = await mkdtemp(join(tmpdir(), 'berth-revisions-'));
    await createBareRemote(repo, scratch, 'app.git');
    await repo.git('push', '--quiet', 'origin', 'main', 'feature', 'v2');
    // The local repository moves on after the push: origin/main stays at the merge.
    c.local = await repo.commit({ 'deploy/web.yaml': 'kind: Service # 4\n' }, 'not pushed');
    server = await startGitHttpServer({ root: scratch });
  });

  after(async () => {
    for (const source of sources) await source.close();
    await server?.close();
    await repo?.cleanup();
    await rm(scratch, { recursive: true, force: true });
  });

  const cases: [string, string, 'both' | 'local'][] = [
    ['main~1', 'merge', 'local'],
    ['HEAD~2', 'c3', 'local'],
    ['origin/main', 'merge', 'both'],
    ['origin/main~1', 'c3', 'both'],
    ['v2^', 'c3', 'both'],
    ['v2^1', 'c3', 'both'],
    ['v2^2', 'f1', 'both'],
    ['v2^2~1', 'c2', 'both'],
    ['v2~3', 'c1', 'both'],
    ['v2~~^', 'c1', 'both'],
    ['v2^0', 'merge', 'both'],
    ['feature~1', 'c2', 'both'],
  ];

  for (const kind of ['local path', 'http remote'] as const) {
    test(`${kind}: each expression names the commit git rev-parse names`, async () => {
      const source = await openSource(kind);
      for (const [expression, want, where] of cases) {
        if (kind === 'http remote' && where === 'local') continue;
        assert.equal(await source.resolveRef(expression), c[want], expression);
        assert.equal(
          await source.resolveRef(expression),
          await repo.git('rev-parse', `${expression}^{commit}`),
        );
      }
      // A short id with a suffix.
      assert.equal(await source.resolveRef(`${c.merge!.slice(0, 10)}^2`), c.f1);
    });

    test(`${kind}: an expression past the history or a missing parent is refused, naming it`, async () => {
      const source = await openSource(kind);
      await assert.rejects(source.resolveRef('v2~4'), refused(/"v2~4".*commit [0-9a-f]{7,} has no parent/));
      await assert.rejects(source.resolveRef('v2~1^2'), refused(/"v2~1\^2".*has only 1 parent/));
      await assert.rejects(source.resolveRef('nope~1'), refused(/"nope"/));
    });
  }

  async function openSource(kind: 'local path' | 'http remote'): Promise<GitSource> {
    const cacheDir = await mkdtemp(join(scratch, 'cache-'));
    const source = await openGitSource({
      repo: kind === 'local path' ? repo.dir : `${server.url}/app.git`,
      cacheDir,
      log: silentLogger(),
    });
    sources.push(source);
    return source;
  }
});

function refused(pattern: RegExp) {
  return (error: unknown) =>
    error instanceof BerthError && error.code === 'ERR_GIT_REF_NOT_FOUND' && pattern.test(error.message);
}
