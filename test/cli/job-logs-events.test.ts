/**
 * What the operator observes, as events and logs, on a real engine: a replica that turns
 * unhealthy and recovers is one event each way (however many observations see it); a failing
 * Job's runs are started and failed events with their exit code and attempt, and
 * `berth logs job/NAME` prints the output of every attempt, each line led by its run and node.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import {
  eventually,
  runBerth,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { dockerExec, requireTestImages, TEST_IMAGES } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import { removeNamespace, replicasOf } from '../operator/cluster-probe.js';

const ns = `obs${Date.now().toString(36)}`;
const node = `node-${ns}`;
/** Test-only: retries wait 100 ms instead of 10 s. */
const entry = fileURLToPath(new URL('../helpers/berth-entry.ts', import.meta.url));
const env = { BERTH_TEST_JOB_BACKOFF_MS: '100' };

interface HeldEvent {
  id: number;
  type: string;
  data: Record<string, unknown>;
}

const web = () => webService({ namespace: ns, replicas: 1 });
const failingJob = stringify({
  apiVersion: 'berth/v1',
  kind: 'Job',
  metadata: { name: 'migrate', namespace: ns },
  spec: {
    image: TEST_IMAGES.busybox,
    init: true,
    stopGracePeriod: '1s',
    command: ['sh', '-c', 'echo "migration says hello"; echo "migration broke" >&2; exit 3'],
    backoffLimit: 1,
  },
});

describe('events from observations, and the logs of a Job', () => {
  let repo: TestRepo;
  let stateDir: string;
  let operator: BerthProcess | undefined;
  const children = new Set<ChildProcess>();

  const events = async (): Promise<HeldEvent[]> => {
    const held = await runBerth(['events', '--format', 'json', '--state-dir', stateDir]);
    assert.equal(held.code, 0, held.stderr);
    return held.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as HeldEvent);
  };

  before(async () => {
    await requireTestImages();
    stateDir = await mkdtemp(join(tmpdir(), 'berth-obs-'));
    repo = await createTestRepo({ 'app.yaml': manifestFile(namespaceManifest(ns), web()) });
    operator = await startBerth(
      'run',
      [...targetArgs({ repo: repo.dir, stateDir, node }), ...SCHEDULE_NEVER, ...['--listen', '127.0.0.1:0']],
      { env },
    );
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await operator?.stop();
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('a replica turning unhealthy and back is one event each way, with replica, node and detail', async () => {
    // The rollout's own step: the replica passed its health check.
    const healthy = await eventually('the replica is healthy', async () =>
      (await events()).find((e) => e.type === 'replica-healthy' && e.data['service'] === `${ns}/web`),
    );
    // Its rollout ends after the monitor window: a replica failing within it would be rolled back.
    await eventually('the rollout has ended', async () =>
      (await events()).some((e) => e.type === 'reconcile-finished' && e.id > healthy.id),
    );
    const victim = (await replicasOf(ns, 'web')).find((r) => r.name === healthy.data['name']);
    assert.ok(victim);
    // The check asks for /: without its page the replica answers 404 and turns unhealthy.
    const removed = await dockerExec(victim.name, ['mv', '/www/index.html', '/www/kept.html']);
    assert.equal(removed.exitCode, 0, removed.output);
    const ofVictim = async () =>
      (await events()).filter(
        (e) => e.type === 'replica-health-changed' && e.data['replica'] === victim.name,
      );
    const [unhealthy] = await eventually('the unhealthy event', async () => {
      const seen = await ofVictim();
      return seen.length > 0 ? seen : null;
    });
    assert.equal(unhealthy?.data['to'], 'unhealthy');
    assert.equal(unhealthy?.data['node'], node);
    assert.equal(unhealthy?.data['service'], 'web');
    assert.match(String(unhealthy?.data['detail']), /404/);

    const restored = await dockerExec(victim.name, ['mv', '/www/kept.html', '/www/index.html']);
    assert.equal(restored.exitCode, 0, restored.output);
    const changes = await eventually('the recovery event', async () => {
      const seen = await ofVictim();
      return seen.some((e) => e.data['to'] === 'healthy') ? seen : null;
    });
    assert.deepEqual(
      changes.map((e) => `${String(e.data['from'])}->${String(e.data['to'])}`),
      ['healthy->unhealthy', 'unhealthy->healthy'],
      'one event per change, not one per observation',
    );
  });

  test('a failing Job: started and failed events per attempt, and berth logs job/NAME prints every attempt', async () => {
    // Followed before the Job exists: each run is picked up as it comes (or after it ended).
    const follower = spawn(
      process.execPath,
      ['--import', 'tsx', entry, 'logs', '-f', `${ns}/job/migrate`, '--state-dir', stateDir, '--node', node],
      { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.add(follower);
    let followed = '';
    follower.stdout.on('data', (chunk: Buffer) => (followed += chunk.toString()));
    const followerClosed = new Promise((resolve) => follower.once('close', resolve));
    // The operator watches the repository: the commit starts a reconcile.
    await repo.commit({ 'app.yaml': manifestFile(namespaceManifest(ns), web(), failingJob) }, 'a Job');
    const failed = await eventually(
      'both attempts failed',
      async () => {
        const seen = (await events()).filter(
          (e) => e.type === 'job-run-failed' && e.data['job'] === 'migrate',
        );
        return seen.length === 2 ? seen : null;
      },
      120_000,
    );
    assert.deepEqual(
      failed.map((e) => [e.data['attempt'], e.data['exitCode'], e.data['node']]),
      [
        [1, 3, node],
        [2, 3, node],
      ],
    );
    assert.match(String(failed[0]?.data['output']), /migration broke/);
    const all = await events();
    const started = all.filter((e) => e.type === 'job-run-started' && e.data['job'] === 'migrate');
    assert.deepEqual(
      started.map((e) => e.data['attempt']),
      [1, 2],
    );
    // Each run's start comes before its end.
    for (const run of failed) {
      const start = started.find((e) => e.data['run'] === run.data['run']);
      assert.ok(start && start.id < run.id, JSON.stringify({ start, run }));
    }

    const logs = await runBerth(['logs', `${ns}/job/migrate`, '--state-dir', stateDir, '--node', node]);
    assert.equal(logs.code, 0, logs.stderr);
    const lines = logs.stdout.trim().split('\n').sort();
    assert.deepEqual(lines, [
      `${ns}/job/migrate#1@${node} | migration broke`,
      `${ns}/job/migrate#1@${node} | migration says hello`,
      `${ns}/job/migrate#2@${node} | migration broke`,
      `${ns}/job/migrate#2@${node} | migration says hello`,
    ]);
    await eventually('the follower printed both attempts', async () =>
      [1, 2].every((attempt) => followed.includes(`${ns}/job/migrate#${attempt}@${node} | migration broke`)),
    );
    follower.kill('SIGINT');
    await followerClosed;
    assert.equal(follower.exitCode, 0);
    assert.equal(followed.trim().split('\n').length, 4, followed);

    const missing = await runBerth(['logs', `${ns}/job/nothing`, '--state-dir', stateDir, '--node', node]);
    assert.match(missing.stderr, new RegExp(`no run of ${ns}/job/nothing`));
  });
});
