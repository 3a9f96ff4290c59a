import assert from 'node:assert/strict';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { BerthError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { openGitSource, type GitSource, type RepoFile } from '../../src/source/git-source.js';
import { createTestRepo, git, type TestRepo } from '../helpers/git-repo.js';

const log = silentLogger();

function asText(files: RepoFile[]): Record<string, string> {
  return Object.fromEntries(files.map((file) => [file.path, Buffer.from(file.content).toString('utf8')]));
}

async function open(repo: string): Promise<GitSource> {
  return openGitSource({ repo, cacheDir: join(tmpdir(), 'unused-cache'), log });
}

function isRefNotFound(pattern: RegExp) {
  return (error: unknown) =>
    error instanceof BerthError && error.code === 'ERR_GIT_REF_NOT_FOUND' && pattern.test(error.message);
}

void describe('local git source', () => {
  let repo: TestRepo;
  let first: string;
  let second: string;
  let scratch: string;

  before(async () => {
    repo = await createTestRepo({
      'deploy/web.yaml': 'kind: Service\nname: web\n',
      'deploy/db.yml': 'kind: Service\nname: db\n',
      'deploy/README.md': '# not a manifest\n',
      'deploy/nested/config.yaml': 'kind: Config\n',
      'elsewhere.yaml': 'kind: Namespace\n',
    });
    // A symlink and a submodule under deploy/: neither is a manifest file berth may read.
    await symlink('web.yaml', join(repo.dir, 'deploy/link.yaml'));
    await repo.git('update-index', '--add', '--cacheinfo', `160000,${await repo.head()},deploy/vendored`);
    first = await repo.commit({}, 'add a symlink and a submodule');
    await repo.git('tag', 'v1');
    await repo.git('tag', '-a', 'v1-annotated', '-m', 'release 1');
    second = await repo.commit(
      { 'deploy/web.yaml': 'kind: Service\nname: web\nreplicas: 2\n', 'deploy/db.yml': null },
      'scale web, drop db',
    );
    await repo.git('branch', 'feature', first);
    scratch = await mkdtemp(join(tmpdir(), 'berth-source-'));
  });

  after(async () => {
    await repo.cleanup();
    await rm(scratch, { recursive: true, force: true });
  });

  void test('resolves branches, tags, HEAD, full and abbreviated commit ids', async () => {
    const source = await open(repo.dir);
    assert.equal(source.kind, 'local');
    assert.equal(await source.resolveRef('main'), second);
    assert.equal(await source.resolveRef('refs/heads/main'), second);
    assert.equal(await source.resolveRef('HEAD'), second);
    assert.equal(await source.resolveRef('feature'), first);
    assert.equal(await source.resolveRef('v1'), first);
    assert.equal(await source.resolveRef('v1-annotated'), first);
    assert.equal(await source.resolveRef(first), first);
    assert.equal(await source.resolveRef(first.slice(0, 7)), first);
    assert.equal(await source.resolveRef(first.slice(0, 12).toUpperCase()), first);
    assert.equal(await source.headOf('main'), second);
    assert.equal(await source.headOf('feature'), first);
    assert.equal(await source.fetchCommit('v1'), first);
    assert.equal(await source.defaultBranch(), 'main');
  });

  void test('an unknown ref is ERR_GIT_REF_NOT_FOUND naming the ref and the repository', async () => {
    const source = await open(repo.dir);
    const names = (error: unknown) => error instanceof BerthError && error.message.includes(repo.dir);
    await assert.rejects(source.resolveRef('no-such-branch'), isRefNotFound(/"no-such-branch"/));
    await assert.rejects(source.resolveRef('no-such-branch'), names);
    await assert.rejects(source.resolveRef('0'.repeat(40)), isRefNotFound(/0{40}/));
    await assert.rejects(source.resolveRef('deadbeef'), isRefNotFound(/deadbeef/));
    await assert.rejects(source.headOf('v1'), isRefNotFound(/"v1".*no such branch/));
  });

  void test('reads the manifest files under a path at an older commit, not the working tree', async () => {
    const source = await open(repo.dir);
    assert.deepEqual(asText(await source.readFiles(first, 'deploy')), {
      'db.yml': 'kind: Service\nname: db\n',
      'nested/config.yaml': 'kind: Config\n',
      'web.yaml': 'kind: Service\nname: web\n',
    });
    assert.deepEqual(asText(await source.readFiles(second, './deploy/')), {
      'nested/config.yaml': 'kind: Config\n',
      'web.yaml': 'kind: Service\nname: web\nreplicas: 2\n',
    });
    assert.deepEqual(
      (await source.readFiles(second)).map((file) => file.path),
      ['deploy/nested/config.yaml', 'deploy/web.yaml', 'elsewhere.yaml'],
    );
    assert.deepEqual(
      (await source.readFiles(second, 'deploy/nested')).map((file) => file.path),
      ['config.yaml'],
    );
  });

  void test('skips symlinks and submodules; other extensions on request', async () => {
    const source = await open(repo.dir);
    const all = await source.readFiles(first, 'deploy', { extensions: [] });
    assert.deepEqual(
      all.map((file) => file.path),
      ['README.md', 'db.yml', 'nested/config.yaml', 'web.yaml'],
    );
    const markdown = await source.readFiles(first, 'deploy', { extensions: ['.MD'] });
    assert.deepEqual(asText(markdown), { 'README.md': '# not a manifest\n' });
  });

  void test('a path that is missing, a file, or outside the repository is a clear error', async () => {
    const source = await open(repo.dir);
    await assert.rejects(
      source.readFiles(second, 'nope/deeper'),
      isRefNotFound(/path "nope\/deeper" does not exist at commit [0-9a-f]{12}/),
    );
    await assert.rejects(
      source.readFiles(first, 'deploy/web.yaml'),
      isRefNotFound(/"deploy\/web.yaml".*not a directory/),
    );
    await assert.rejects(
      source.readFiles(first, '../etc'),
      (error: unknown) => error instanceof BerthError && error.code === 'ERR_BAD_REQUEST',
    );
  });

  void test('commit info carries message, author and parents', async () => {
    const source = await open(repo.dir);
    const info = await source.commitInfo(second);
    assert.equal(info.oid, second);
    assert.equal(info.message.trim(), 'scale web, drop db');
    assert.equal(info.author.name, 'Berth Test');
    assert.equal(info.author.email, 'test@berth.invalid');
    assert.ok(info.author.timestamp > 1_600_000_000);
    assert.deepEqual(info.parents, [first]);
  });

  void test('a bare repository is read in place', async () => {
    const bare = join(scratch, 'bare.git');
    await git(scratch, 'clone', '--quiet', '--bare', repo.dir, bare);
    const source = await open(bare);
    assert.equal(await source.resolveRef('main'), second);
    assert.equal(await source.resolveRef('v1-annotated'), first);
    assert.equal(await source.resolveRef(first.slice(0, 8)), first);
    assert.deepEqual(Object.keys(asText(await source.readFiles(first, 'deploy'))), [
      'db.yml',
      'nested/config.yaml',
      'web.yaml',
    ]);
    const byUrl = await open(pathToFileURL(bare).href);
    assert.equal(byUrl.kind, 'local');
    assert.equal(await byUrl.headOf('main'), second);
  });

  void test('a linked worktree (a .git file) reads its own HEAD', async () => {
    const worktree = join(scratch, 'worktree');
    await repo.git('worktree', 'add', '--quiet', worktree, 'feature');
    try {
      const source = await open(worktree);
      assert.equal(await source.resolveRef('HEAD'), first);
      assert.equal(await source.resolveRef('main'), second);
      assert.equal(await source.defaultBranch(), 'feature');
      assert.deepEqual(Object.keys(asText(await source.readFiles('HEAD', 'deploy'))), [
        'db.yml',
        'nested/config.yaml',
        'web.yaml',
      ]);
    } finally {
      await repo.git('worktree', 'remove', '--force', worktree);
    }
  });

  void test('a directory that is not a repository is ERR_GIT_SOURCE', async () => {
    await assert.rejects(
      open(scratch),
      (error: unknown) =>
        error instanceof BerthError &&
        error.code === 'ERR_GIT_SOURCE' &&
        /not a git repository/.test(error.message),
    );
    await assert.rejects(
      open(join(scratch, 'does-not-exist')),
      (error: unknown) => error instanceof BerthError && error.code === 'ERR_GIT_SOURCE',
    );
  });
});
