import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runBerth } from '../helpers/berth-cli.js';

const hour = 3_600_000;

describe('berth history', () => {
  let stateDir: string;
  const now = Date.now();
  const entries = [
    { ago: 48 * hour, service: 'default/web', revision: 'a'.repeat(40), message: 'web v1' },
    { ago: 3 * hour, service: 'shop/api', revision: 'b'.repeat(40), message: 'api v2' },
    { ago: 0.5 * hour, service: 'default/web', revision: 'c'.repeat(40), message: 'web v2' },
  ].map((e) => ({
    at: new Date(now - e.ago).toISOString(),
    revision: e.revision,
    author: 'Ada <ada@example.org>',
    message: e.message,
    service: e.service,
    change: 'update',
    outcome: 'succeeded',
    reason: null,
    durationMs: 2500,
    started: [{ name: 'berth.x.1', node: 'n1' }],
    removed: [{ name: 'berth.x.0', node: 'n2' }],
  }));

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'berth-history-cli-'));
    await writeFile(join(stateDir, 'history.jsonl'), entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
  });
  after(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  const history = (...args: string[]) => runBerth(['history', '--state-dir', stateDir, ...args]);

  test('text: when, commit, service, change, outcome, duration, replicas and nodes, message and author', async () => {
    const result = await history();
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^\S+Z {2}cccccccccccc {2}default\/web {2}update {2}succeeded {2}2\.5s \+1\/-1 replicas on n1,n2\n {4}web v2 \(Ada <ada@example\.org>\)$/m,
    );
  });

  test('SERVICE, --since and --limit select entries; json has them whole', async () => {
    const web = JSON.parse((await history('web', '--format', 'json')).stdout) as { message: string }[];
    assert.deepEqual(
      web.map((e) => e.message),
      ['web v1', 'web v2'],
    );
    const recent = JSON.parse((await history('--since', '24h', '--format', 'json')).stdout) as {
      message: string;
    }[];
    assert.deepEqual(
      recent.map((e) => e.message),
      ['api v2', 'web v2'],
    );
    const since = new Date(now - 1 * hour).toISOString();
    const after = JSON.parse((await history('--since', since, '--format', 'json')).stdout) as typeof entries;
    assert.deepEqual(after, [entries[2]]);
    const last = JSON.parse((await history('-n', '1', '--format', 'json')).stdout) as { message: string }[];
    assert.deepEqual(
      last.map((e) => e.message),
      ['web v2'],
    );
  });

  test('a malformed --since is refused with what it accepts', async () => {
    const result = await history('--since', 'yesterday');
    assert.equal(result.code, 1);
    assert.match(result.stderr, /--since wants an ISO 8601 time .* or a duration \(90m, 24h, 7d\)/);
  });
});
