import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runBerth } from '../helpers/berth-cli.js';
import { createTestRepo, git, type TestRepo } from '../helpers/git-repo.js';
import { startGitHttpServer } from '../helpers/git-http-server.js';
import { webService } from '../helpers/manifests.js';

const service = (image: string): string => webService({ image });

describe('berth rollback makes a revert commit', () => {
  let repo: TestRepo;
  let stateDir: string;
  const commits: string[] = [];
  const rollback = (...args: string[]) =>
    runBerth(['rollback', '--repo', repo.dir, '--path', 'deploy', '--state-dir', stateDir, ...args]);
  const treeOf = (rev: string, dir = repo.dir) => git(dir, 'rev-parse', `${rev}^{tree}`);

  before(async () => {
    repo = await createTestRepo({ 'deploy/web.yaml': service('web:v1'), 'README.md': 'one\n' });
    commits.push(await repo.head());
    commits.push(await repo.commit({ 'deploy/web.yaml': service('web:v2') }, 'web v2'));
    commits.push(
      await repo.commit(
        { 'deploy/web.yaml': service('web:v3'), 'deploy/api.yaml': service('api:v1') },
        'web v3, api',
      ),
    );
    stateDir = await mkdtemp(join(tmpdir(), 'berth-rollback-'));
  });
  after(async () => {
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('--to REV: a new commit on the branch head whose tree is the tree of REV; the checkout follows', async () => {
    const head = await repo.head();
    const result = await rollback('--to', commits[0]!.slice(0, 8));
    assert.equal(result.code, 0, result.stderr);
    const created = await repo.head();
    assert.notEqual(created, head);
    assert.equal(await treeOf(created), await treeOf(commits[0]!));
    assert.equal(await repo.git('rev-parse', `${created}^`), head, 'the branch head is its only parent');
    assert.match(await repo.git('log', '-1', '--format=%s'), /^Revert to [0-9a-f]{12} \(berth rollback\)$/);
    const body = await repo.git('log', '-1', '--format=%b');
    assert.match(body, /web v3, api/);
    assert.match(body, /web v2/);
    assert.match(result.stdout, /^Created [0-9a-f]{12} on main: Revert to/);
    // The working tree and index are on the new commit: clean, with v1's files.
    assert.equal(await repo.git('status', '--porcelain'), '');
    assert.equal(await readFile(join(repo.dir, 'deploy/web.yaml'), 'utf8'), service('web:v1'));
    await assert.rejects(readFile(join(repo.dir, 'deploy/api.yaml')), { code: 'ENOENT' });
  });

  test('REV: undoes REV and everything after it (returns to the tree of its parent)', async () => {
    const v3 = await repo.commit({ 'deploy/web.yaml': service('web:v3') }, 'web v3 again');
    const result = await rollback(v3);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await treeOf('HEAD'), await treeOf(`${v3}^`));
    assert.equal(await repo.git('rev-parse', 'HEAD^'), v3);
  });

  test('a branch that already has that tree gets no commit', async () => {
    const head = await repo.head();
    const result = await rollback('--to', 'HEAD');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /nothing to revert/);
    assert.equal(await repo.head(), head);
  });

  test('refuses when the checkout has uncommitted changes, and changes nothing', async () => {
    const head = await repo.head();
    await writeFile(join(repo.dir, 'deploy/web.yaml'), service('web:local-edit'));
    try {
      const result = await rollback('--to', commits[1]!);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /uncommitted changes \(deploy\/web\.yaml\); commit or stash them first/);
      assert.equal(await repo.head(), head);
      assert.equal(await readFile(join(repo.dir, 'deploy/web.yaml'), 'utf8'), service('web:local-edit'));
    } finally {
      await repo.git('checkout', '--', 'deploy/web.yaml');
    }
  });

  test('a branch that is not checked out is moved without touching the checkout', async () => {
    await repo.git('checkout', '-q', '-b', 'other');
    try {
      const before = await repo.git('rev-parse', 'main');
      const result = await rollback('--to', commits[1]!, '--branch', 'main');
      assert.equal(result.code, 0, result.stderr);
      assert.equal(await treeOf('main'), await treeOf(commits[1]!));
      assert.equal(await repo.git('rev-parse', 'main^'), before);
      assert.equal(await repo.git('rev-parse', '--abbrev-ref', 'HEAD'), 'other');
      assert.equal(await repo.git('status', '--porcelain'), '');
    } finally {
      await repo.git('checkout', '-q', 'main');
    }
  });

  test('works on a bare repository', async () => {
    const root = await mkdtemp(join(tmpdir(), 'berth-rollback-bare-'));
    try {
      await git(root, 'clone', '-q', '--bare', repo.dir, 'bare.git');
      const bare = join(root, 'bare.git');
      const result = await runBerth([
        'rollback',
        '--repo',
        bare,
        '--to',
        commits[0]!,
        '--state-dir',
        stateDir,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(await treeOf('main', bare), await treeOf(commits[0]!));
      assert.equal(await git(bare, 'rev-parse', 'main^'), await repo.head());
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('the default target is the last good revision before the head, from the state dir', async () => {
    const head = await repo.head();
    await writeFile(
      join(stateDir, 'state.json'),
      JSON.stringify({ lastGood: { revision: commits[0], at: '2026-01-01T00:00:00Z' }, failed: {} }),
    );
    const result = await rollback();
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await treeOf('HEAD'), await treeOf(commits[0]!));
    assert.equal(await repo.git('rev-parse', 'HEAD^'), head);
  });

  test('without a known good revision it says what to do instead', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'berth-rollback-empty-'));
    try {
      const none = await runBerth(['rollback', '--repo', repo.dir, '--state-dir', empty]);
      assert.equal(none.code, 1);
      assert.match(
        none.stderr,
        /knows no good revision before [0-9a-f]{12}; name one: `berth rollback --to REV`/,
      );
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  test('an http(s) remote gets the revert commit pushed, with BERTH_GIT_USERNAME/PASSWORD', async () => {
    const root = await mkdtemp(join(tmpdir(), 'berth-rollback-remote-'));
    const auth = { username: 'deployer', password: 'push-token-5e1d' };
    const server = await startGitHttpServer({ root, auth });
    try {
      await git(root, 'clone', '-q', '--bare', repo.dir, 'deploy.git');
      const bare = join(root, 'deploy.git');
      // git http-backend refuses pushes unless the repository allows them over HTTP.
      await git(bare, 'config', 'http.receivepack', 'true');
      const before = await git(bare, 'rev-parse', 'main');
      const url = `${server.url}/deploy.git`;
      const args = ['rollback', '--repo', url, '--to', commits[1]!, '--state-dir', stateDir];

      const anonymous = await runBerth(args, { env: { BERTH_GIT_USERNAME: '', BERTH_GIT_PASSWORD: '' } });
      assert.equal(anonymous.code, 1);
      assert.match(anonymous.stderr, /401.*set BERTH_GIT_USERNAME and BERTH_GIT_PASSWORD/);
      assert.equal(await git(bare, 'rev-parse', 'main'), before);

      const result = await runBerth(args, {
        env: { BERTH_GIT_USERNAME: auth.username, BERTH_GIT_PASSWORD: auth.password },
      });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`Pushed main to ${url.replace(/[.]/g, '\\.')}\\.`));
      assert.equal(await treeOf('main', bare), await treeOf(commits[1]!));
      assert.equal(await git(bare, 'rev-parse', 'main^'), before);
      assert.doesNotMatch(result.stdout + result.stderr, /push-token/);
    } finally {
      await server.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
