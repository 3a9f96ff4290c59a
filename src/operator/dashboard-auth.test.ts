import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  cookieValue,
  csrfMatches,
  DashboardSessions,
  loadDashboardToken,
  SESSION_TTL_MS,
} from './dashboard-auth.js';

test('the dashboard token is made once, 0600, and kept across starts; a given file is used as is', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-dashboard-token-'));
  try {
    const made = await loadDashboardToken(dir, undefined);
    assert.equal(made.created, true);
    assert.equal((await stat(made.path)).mode & 0o777, 0o600);
    const again = await loadDashboardToken(dir, undefined);
    assert.deepEqual(again, { ...made, created: false });
    const file = join(dir, 'given');
    await writeFile(file, 'a-token-given-by-the-admin\n');
    assert.equal((await loadDashboardToken(dir, file)).token, 'a-token-given-by-the-admin');
    await writeFile(file, 'short\n');
    await assert.rejects(loadDashboardToken(dir, file), /shorter than 16/);
    await assert.rejects(loadDashboardToken(dir, join(dir, 'absent')), /cannot read the dashboard token/);
    assert.match(await readFile(made.path, 'utf8'), /^[\w-]{32}\n$/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a session needs the token, carries its own CSRF token and expires', () => {
  let now = 1_000;
  const sessions = new DashboardSessions('the-dashboard-token', () => now);
  assert.equal(sessions.login('not-the-token'), null);
  const session = sessions.login('the-dashboard-token');
  assert.ok(session);
  assert.equal(sessions.find(session.id), session);
  assert.equal(csrfMatches(session, session.csrf), true);
  assert.equal(csrfMatches(session, 'forged'), false);
  assert.equal(csrfMatches(session, undefined), false);
  now += SESSION_TTL_MS;
  assert.equal(sessions.find(session.id), null);
  const other = sessions.login('the-dashboard-token');
  assert.ok(other);
  sessions.logout(other.id);
  assert.equal(sessions.find(other.id), null);
});

test('cookieValue finds one cookie among several', () => {
  assert.equal(cookieValue('a=1; berth_session=xyz; b=2', 'berth_session'), 'xyz');
  assert.equal(cookieValue('berth_sessionx=1', 'berth_session'), undefined);
  assert.equal(cookieValue(undefined, 'berth_session'), undefined);
});
