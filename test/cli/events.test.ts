/**
 * `berth events` against a real operator: the events it holds, and with -f a commit's reconcile
 * and rollout steps as they happen; the operator is found through the URL it recorded in the
 * state dir.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import {
  eventually,
  runBerth,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { requireTestImages } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, sleeperService } from '../helpers/manifests.js';
import { removeNamespace } from '../operator/cluster-probe.js';

const ns = `events${Date.now().toString(36)}`;
const node = `node-${ns}`;
const entry = fileURLToPath(new URL('../helpers/berth-entry.ts', import.meta.url));

const manifests = (replicas: number) => ({
  'app.yaml': manifestFile(namespaceManifest(ns), sleeperService({ namespace: ns, replicas })),
});

describe('berth events', () => {
  let repo: TestRepo;
  let stateDir: string;
  let operator: BerthProcess | undefined;
  let follower: ChildProcess | undefined;

  before(async () => {
    await requireTestImages();
    stateDir = await mkdtemp(join(tmpdir(), 'berth-events-'));
    repo = await createTestRepo(manifests(1));
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, stateDir, node }),
      ...SCHEDULE_NEVER,
      ...['--listen', '127.0.0.1:0'],
    ]);
  });

  after(async () => {
    follower?.kill('SIGKILL');
    await operator?.stop();
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('prints the held events, and with -f a commit rolling out', async () => {
    await eventually('the first reconcile has finished', async () => {
      const held = await runBerth(['events', '--state-dir', stateDir]);
      return held.code === 0 && /reconcile-finished\s+outcome=/.test(held.stdout);
    });

    follower = spawn(
      process.execPath,
      ['--import', 'tsx', entry, 'events', '-f', '--format', 'json', '--state-dir', stateDir],
      { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    follower.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const events = () =>
      out
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { id: number; type: string; data: Record<string, unknown> });
    // The held events come first.
    await eventually('the held events', async () => events().some((e) => e.type === 'reconcile-finished'));
    const before = events().length;

    await repo.commit(manifests(2), 'a second replica');
    await eventually('the rollout of the commit', async () => {
      const fresh = events().slice(before);
      return (
        fresh.some((e) => e.type === 'replica-healthy' && e.data['slot'] === '2') &&
        fresh.some((e) => e.type === 'reconcile-finished' && e.data['outcome'] !== 'failed')
      );
    });
    const fresh = events().slice(before);
    const types = fresh.map((e) => e.type);
    assert.ok(types.indexOf('reconcile-started') < types.indexOf('service-started'), types.join(' '));
    assert.ok(types.includes('replica-starting'), types.join(' '));
    const ids = events().map((e) => e.id);
    assert.deepEqual(
      ids,
      [...new Set(ids)].sort((a, b) => a - b),
      'every event once, in order',
    );
  });
});
