import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';

import git from 'isomorphic-git';

import { BerthError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { openGitSource, type GitSource, type RepoFile } from '../../src/source/git-source.js';
import { remoteCachePath } from '../../src/source/remote-git-source.js';
import { startGitHttpServer, type GitHttpServer } from '../helpers/git-http-server.js';
import { createBareRemote, createTestRepo, git as runGit, type TestRepo } from '../helpers/git-repo.js';

const log = silentLogger();

function asText(files: RepoFile[]): Record<string, string> {
  return Object.fromEntries(files.map((file) => [file.path, Buffer.from(file.content).toString('utf8')]));
}

/** 40 manifests of incompressible content, so a full download and an incremental one differ clearly. */
function manyManifests(): Record<string, string> {
  const files: Record<string, string> = {};
  for (let index = 0; index < 40; index++) {
    files[`deploy/service-${index}.yaml`] = `name: s${index}\nnote: ${randomBytes(600).toString('base64')}\n`;
  }
  return files;
}

function isCode(code: string, pattern: RegExp) {
  return (error: unknown) =>
    error instanceof BerthError && error.code === code && pattern.test(error.message);
}

/** Commits reachable from `oid` in the cache: a shallow mirror stops at its shallow boundary. */
async function cachedHistoryLength(gitdir: string, oid: string): Promise<number> {
  return (await git.log({ fs, gitdir, ref: oid })).length;
}

void describe('remote git source over smart HTTP', () => {
  let repo: TestRepo;
  let root: string;
  let cacheDir: string;
  let server: GitHttpServer;
  let url: string;
  const sources: GitSource[] = [];

  async function open(options: { repo?: string; auth?: { username: string; password: string } } = {}) {
    const source = await openGitSource({
      repo: options.repo ?? url,
      cacheDir,
      log,
      ...(options.auth ? { auth: options.auth } : {}),
    });
    sources.push(source);
    return source;
  }

  async function publish(files: Record<string, string | null>, message: string): Promise<string> {
    const oid = await repo.commit(files, message);
    await repo.git('push', '--quiet', 'origin', 'main');
    return oid;
  }

  beforeEach(async () => {
    repo = await createTestRepo(manyManifests());
    root = await mkdtemp(join(tmpdir(), 'berth-served-'));
    cacheDir = await mkdtemp(join(tmpdir(), 'berth-cache-'));
    await createBareRemote(repo, root, 'app.git');
    server = await startGitHttpServer({ root });
    url = `${server.url}/app.git`;
  });

  afterEach(async () => {
    for (const source of sources.splice(0)) await source.close();
    await server.close();
    await repo.cleanup();
    await rm(root, { recursive: true, force: true });
    await rm(cacheDir, { recursive: true, force: true });
  });

  void test('the first headOf fetches only the head commit (depth 1)', async () => {
    await publish({ 'deploy/extra.yaml': 'kind: Config\n' }, 'second commit');
    const head = await repo.head();
    const source = await open();
    assert.equal(source.kind, 'remote');
    assert.equal(await source.headOf('main'), head);
    const gitdir = remoteCachePath(cacheDir, url);
    assert.deepEqual(await readdir(cacheDir), [gitdir.slice(cacheDir.length + 1)]);
    assert.equal(await cachedHistoryLength(gitdir, head), 1);
    assert.equal((await readFile(join(gitdir, 'shallow'), 'utf8')).trim(), head);
    const files = await source.readFiles(head, 'deploy');
    assert.equal(files.length, 41);
    assert.equal(asText(files)['extra.yaml'], 'kind: Config\n');
  });

  void test('checking a remote that has not moved costs one round trip and no download', async () => {
    const head = await repo.head();
    const source = await open();
    assert.equal(await source.headOf('main'), head);
    server.requests.length = 0;

    assert.equal(await source.headOf('main'), head);
    assert.equal(server.requests.length, 1);
    assert.equal(server.requests[0]!.method, 'GET');
    assert.match(server.requests[0]!.url, /\/info\/refs\?service=git-upload-pack$/);

    // A new process with the same cache directory is just as cheap.
    const reopened = await open();
    server.requests.length = 0;
    assert.equal(await reopened.headOf('main'), head);
    assert.deepEqual(
      server.requests.map((request) => request.method),
      ['GET'],
    );
  });

  void test('a new commit is fetched incrementally: only what changed is downloaded', async () => {
    const source = await open();
    const first = await source.headOf('main');
    const firstPackBytes = server.requests.find((request) => request.method === 'POST')!.responseBytes;

    const second = await publish({ 'deploy/service-3.yaml': 'name: s3\nreplicas: 2\n' }, 'scale s3');
    server.requests.length = 0;
    assert.equal(await source.headOf('main'), second);
    const posts = server.requests.filter((request) => request.method === 'POST');
    assert.equal(posts.length, 1);
    // The first pack carries 40 files of incompressible text; the second only one small file and
    // two trees (the rest is deltas against what the cache already has).
    assert.ok(
      posts[0]!.responseBytes * 4 < firstPackBytes,
      `incremental fetch downloaded ${posts[0]!.responseBytes} bytes, the first fetch ${firstPackBytes}`,
    );

    const gitdir = remoteCachePath(cacheDir, url);
    assert.equal(await cachedHistoryLength(gitdir, second), 1);
    const atSecond = asText(await source.readFiles(second, 'deploy'));
    assert.equal(Object.keys(atSecond).length, 40);
    assert.equal(atSecond['service-3.yaml'], 'name: s3\nreplicas: 2\n');
    assert.match(atSecond['service-7.yaml']!, /^name: s7\n/);
    const atFirst = asText(await source.readFiles(first, 'deploy'));
    assert.match(atFirst['service-3.yaml']!, /^name: s3\nnote: /);
  });

  void test('an older commit, a tag and an abbreviated id of a remote can be read', async () => {
    const first = await repo.head();
    await repo.git('tag', '-a', 'v1', '-m', 'release 1');
    await repo.git('push', '--quiet', 'origin', 'v1');
    const second = await publish({ 'deploy/service-0.yaml': 'name: s0\nreplicas: 3\n' }, 'second');
    const third = await publish({ 'deploy/service-1.yaml': null }, 'third');
    const source = await open();
    assert.equal(await source.headOf('main'), third);

    // By full id: fetched directly, without deepening.
    assert.equal(await source.resolveRef(second), second);
    assert.equal(
      asText(await source.readFiles(second, 'deploy'))['service-0.yaml'],
      'name: s0\nreplicas: 3\n',
    );
    // By annotated tag: peeled to the commit.
    assert.equal(await source.resolveRef('v1'), first);
    assert.match(asText(await source.readFiles(first, 'deploy'))['service-1.yaml']!, /^name: s1\n/);

    // By abbreviated id of a commit the cache has never seen: found by deepening history.
    const fresh = await openGitSource({
      repo: url,
      cacheDir: join(cacheDir, 'second-cache'),
      log,
    });
    sources.push(fresh);
    assert.equal(await fresh.resolveRef(second.slice(0, 10)), second);
    assert.equal((await fresh.commitInfo(second)).message.trim(), 'second');
    assert.deepEqual((await fresh.commitInfo(second)).parents, [first]);
    // readFiles of a full id not yet cached fetches it first.
    const other = await openGitSource({
      repo: url,
      cacheDir: join(cacheDir, 'third-cache'),
      log,
    });
    sources.push(other);
    assert.equal(Object.keys(asText(await other.readFiles(first, 'deploy'))).length, 40);
  });

  void test('a cache with too many pack files starts over and keeps working', async () => {
    const source = await openGitSource({ repo: url, cacheDir, log, maxCachePacks: 2 });
    sources.push(source);
    const gitdir = remoteCachePath(cacheDir, url);
    const packCount = async () =>
      (await readdir(join(gitdir, 'objects', 'pack'))).filter((name) => name.endsWith('.pack')).length;
    const first = await source.headOf('main');
    const second = await publish({ 'deploy/service-1.yaml': 'name: s1\nreplicas: 2\n' }, 'second');
    assert.equal(await source.headOf('main'), second);
    assert.equal(await packCount(), 2);

    const third = await publish({ 'deploy/service-2.yaml': 'name: s2\nreplicas: 2\n' }, 'third');
    assert.equal(await source.headOf('main'), third);
    assert.equal(await packCount(), 1);
    const files = asText(await source.readFiles(third, 'deploy'));
    assert.equal(files['service-1.yaml'], 'name: s1\nreplicas: 2\n');
    assert.equal(files['service-2.yaml'], 'name: s2\nreplicas: 2\n');
    // Commits dropped with the old cache are fetched again on demand.
    assert.match(asText(await source.readFiles(first, 'deploy'))['service-1.yaml']!, /^name: s1\nnote: /);
  });

  void test('a cache whose pack files are too large starts over and keeps working', async () => {
    const source = await openGitSource({ repo: url, cacheDir, log, maxCacheBytes: 1 });
    sources.push(source);
    const gitdir = remoteCachePath(cacheDir, url);
    const packs = async () =>
      (await readdir(join(gitdir, 'objects', 'pack'))).filter((name) => name.endsWith('.pack'));
    await source.headOf('main');
    const before = await packs();
    const second = await publish({ 'deploy/service-1.yaml': 'name: s1\nreplicas: 2\n' }, 'second');
    assert.equal(await source.headOf('main'), second);
    const after = await packs();
    assert.equal(after.length, 1);
    assert.notDeepEqual(after, before);
    assert.equal(
      asText(await source.readFiles(second, 'deploy'))['service-1.yaml'],
      'name: s1\nreplicas: 2\n',
    );
  });

  void test('concurrent calls on one source share the cache safely', async () => {
    const first = await repo.head();
    const second = await publish({ 'deploy/service-5.yaml': 'name: s5\nreplicas: 5\n' }, 'second');
    const source = await open();
    const [headA, headB, older, files] = await Promise.all([
      source.headOf('main'),
      source.headOf('main'),
      source.resolveRef(first),
      source.readFiles(second, 'deploy'),
    ]);
    assert.deepEqual([headA, headB, older], [second, second, first]);
    assert.equal(asText(files)['service-5.yaml'], 'name: s5\nreplicas: 5\n');
  });

  void test('unknown branches, refs and commits are ERR_GIT_REF_NOT_FOUND naming ref and repository', async () => {
    const source = await open();
    await assert.rejects(
      source.headOf('nope'),
      isCode('ERR_GIT_REF_NOT_FOUND', /"nope".*no such branch \(branches: main\)/),
    );
    await assert.rejects(
      source.resolveRef('no-such-tag'),
      isCode('ERR_GIT_REF_NOT_FOUND', /"no-such-tag" not found in http:\/\/127\.0\.0\.1/),
    );
    await assert.rejects(
      source.resolveRef('d'.repeat(40)),
      isCode('ERR_GIT_REF_NOT_FOUND', /d{40}.*no such commit/),
    );
    await assert.rejects(
      source.resolveRef('deadbeef'),
      isCode('ERR_GIT_REF_NOT_FOUND', /"deadbeef".*no commit id starts with it/),
    );
    const head = await source.headOf('main');
    await assert.rejects(
      source.readFiles(head, 'missing'),
      isCode('ERR_GIT_REF_NOT_FOUND', /path "missing" does not exist/),
    );
  });

  void test('a commit that exists on the server but on no branch is not found', async () => {
    // Made in the served repository itself, reachable from no ref: servers do not hand these out.
    const bare = join(root, 'app.git');
    const tree = await runGit(bare, 'rev-parse', 'main^{tree}');
    const dangling = await runGit(
      bare,
      '-c',
      'user.name=x',
      '-c',
      'user.email=x@x.invalid',
      'commit-tree',
      tree,
      '-m',
      'dangling',
    );
    const source = await open();
    await assert.rejects(
      source.resolveRef(dangling),
      isCode('ERR_GIT_REF_NOT_FOUND', /no such commit on any branch or tag/),
    );
  });

  void test('the default branch is the one the server HEAD points at', async () => {
    await runGit(join(root, 'app.git'), 'symbolic-ref', 'HEAD', 'refs/heads/trunk');
    await repo.git('push', '--quiet', 'origin', 'main:trunk');
    const source = await open();
    assert.equal(await source.defaultBranch(), 'trunk');
    assert.equal(await source.resolveRef('HEAD'), await repo.head());
  });

  void test('an unreachable server is ERR_GIT_SOURCE (transient)', async () => {
    const source = await open({ repo: 'http://127.0.0.1:9/nothing.git' });
    await assert.rejects(source.headOf('main'), (error: unknown) => {
      return (
        error instanceof BerthError &&
        error.code === 'ERR_GIT_SOURCE' &&
        error.disposition === 'transient' &&
        /cannot reach/.test(error.message)
      );
    });
    const missing = await open({ repo: `${server.url}/missing.git` });
    await assert.rejects(missing.headOf('main'), isCode('ERR_GIT_SOURCE', /not found \(HTTP 404\)/));
  });
});

void describe('remote git source with credentials', () => {
  let repo: TestRepo;
  let root: string;
  let cacheDir: string;
  let server: GitHttpServer;

  beforeEach(async () => {
    repo = await createTestRepo({ 'app.yaml': 'kind: Namespace\n' });
    root = await mkdtemp(join(tmpdir(), 'berth-served-'));
    cacheDir = await mkdtemp(join(tmpdir(), 'berth-cache-'));
    await createBareRemote(repo, root, 'private.git');
    server = await startGitHttpServer({ root, auth: { username: 'deployer', password: 's3cret-token' } });
  });

  afterEach(async () => {
    await server.close();
    await repo.cleanup();
    await rm(root, { recursive: true, force: true });
    await rm(cacheDir, { recursive: true, force: true });
  });

  void test('without credentials the error says which variables to set', async () => {
    const source = await openGitSource({ repo: `${server.url}/private.git`, cacheDir, log });
    await assert.rejects(
      source.headOf('main'),
      isCode('ERR_GIT_SOURCE', /authentication failed \(HTTP 401\).*BERTH_GIT_USERNAME/),
    );
  });

  void test('credentials from options are sent up front: one round trip per check', async () => {
    const source = await openGitSource({
      repo: `${server.url}/private.git`,
      cacheDir,
      log,
      auth: { username: 'deployer', password: 's3cret-token' },
    });
    assert.equal(await source.headOf('main'), await repo.head());
    server.requests.length = 0;
    assert.equal(await source.headOf('main'), await repo.head());
    assert.equal(server.requests.length, 1);
    assert.equal(server.requests[0]!.status, 200);
  });

  void test('credentials in the URL work and are kept out of the cache and of messages', async () => {
    const withSecret = `${server.url.replace('http://', 'http://deployer:s3cret-token@')}/private.git`;
    const lines: string[] = [];
    const { pino } = await import('pino');
    const capturing = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
    const source = await openGitSource({ repo: withSecret, cacheDir, log: capturing });
    assert.equal(source.repo, `${server.url}/private.git`);
    assert.equal(await source.headOf('main'), await repo.head());
    await assert.rejects(
      source.resolveRef('nope'),
      (error: unknown) => error instanceof Error && !error.message.includes('s3cret'),
    );
    const [cacheName] = await readdir(cacheDir);
    const config = await readFile(join(cacheDir, cacheName!, 'config'), 'utf8');
    assert.ok(!config.includes('s3cret'), config);
    assert.ok(lines.length > 0);
    assert.ok(!lines.join('').includes('s3cret'));
  });

  void test('BERTH_GIT_USERNAME / BERTH_GIT_PASSWORD from the environment are used', async () => {
    process.env['BERTH_GIT_USERNAME'] = 'deployer';
    process.env['BERTH_GIT_PASSWORD'] = 's3cret-token';
    try {
      const source = await openGitSource({ repo: `${server.url}/private.git`, cacheDir, log });
      assert.equal(await source.headOf('main'), await repo.head());
    } finally {
      delete process.env['BERTH_GIT_USERNAME'];
      delete process.env['BERTH_GIT_PASSWORD'];
    }
  });
});
