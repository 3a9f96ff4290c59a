import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { BerthError } from '../core/errors.js';
import { cacheKeyForUrl, credentialsFromEnv, parseRepoLocation, redactUrl } from './remote-url.js';

void test('parseRepoLocation tells local paths from http(s) URLs and takes credentials out of URLs', () => {
  assert.deepEqual(parseRepoLocation('.'), { kind: 'local', path: '.' });
  assert.deepEqual(parseRepoLocation('/srv/git/app.git'), { kind: 'local', path: '/srv/git/app.git' });
  assert.deepEqual(parseRepoLocation('file:///srv/git/app.git'), { kind: 'local', path: '/srv/git/app.git' });
  assert.deepEqual(parseRepoLocation('https://git.example.com/team/app.git'), {
    kind: 'remote',
    url: 'https://git.example.com/team/app.git',
  });
  assert.deepEqual(parseRepoLocation('https://bot:t%40ken@git.example.com/team/app.git'), {
    kind: 'remote',
    url: 'https://git.example.com/team/app.git',
    credentials: { username: 'bot', password: 't@ken' },
  });
});

void test('ssh and git:// repositories are refused with the way out', () => {
  for (const repo of ['git@github.com:team/app.git', 'ssh://git@host/app.git', 'git://host/app.git']) {
    assert.throws(
      () => parseRepoLocation(repo),
      (error: unknown) =>
        error instanceof BerthError && error.code === 'ERR_NOT_SUPPORTED' && /https URL/.test(error.message),
    );
  }
});

void test('credentialsFromEnv needs a password; the username defaults for tokens', () => {
  assert.equal(credentialsFromEnv({}), undefined);
  assert.equal(credentialsFromEnv({ BERTH_GIT_USERNAME: 'only-user' }), undefined);
  assert.deepEqual(credentialsFromEnv({ BERTH_GIT_PASSWORD: 'tok' }), { username: 'git', password: 'tok' });
  assert.deepEqual(credentialsFromEnv({ BERTH_GIT_USERNAME: 'me', BERTH_GIT_PASSWORD: 'pw' }), {
    username: 'me',
    password: 'pw',
  });
});

void test('redactUrl drops credentials; the cache key ignores them', () => {
  assert.equal(redactUrl('https://me:pw@host/x.git'), 'https://host/x.git');
  assert.equal(redactUrl('https://host/x.git'), 'https://host/x.git');
  assert.equal(cacheKeyForUrl('https://me:pw@host/x.git'), cacheKeyForUrl('https://host/x.git'));
  assert.match(cacheKeyForUrl('https://host/x.git'), /^[0-9a-f]{16}$/);
  assert.notEqual(cacheKeyForUrl('https://host/x.git'), cacheKeyForUrl('https://host/y.git'));
});

void test('credentialsFromEnv reads the password from BERTH_GIT_PASSWORD_FILE, one trailing newline dropped', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-cred-'));
  try {
    const file = join(dir, 'token');
    await writeFile(file, 'file-token-123\n', { mode: 0o600 });
    assert.deepEqual(credentialsFromEnv({ BERTH_GIT_PASSWORD_FILE: file }), {
      username: 'git',
      password: 'file-token-123',
    });
    assert.throws(
      () => credentialsFromEnv({ BERTH_GIT_PASSWORD_FILE: file, BERTH_GIT_PASSWORD: 'x' }),
      (error: unknown) => error instanceof BerthError && /not both/.test(error.message),
    );
    assert.throws(
      () => credentialsFromEnv({ BERTH_GIT_PASSWORD_FILE: join(dir, 'missing') }),
      (error: unknown) => error instanceof BerthError && /ENOENT/.test(error.message),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
