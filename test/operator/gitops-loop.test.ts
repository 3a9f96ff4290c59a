import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runBerth, targetArgs } from '../helpers/berth-cli.js';
import { MISSING_IMAGE } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { namespaceManifest, WEB_HEALTHCHECK, webService, type ServiceOptions } from '../helpers/manifests.js';
import {
  bodies,
  removeContainer,
  removeNamespace,
  replicasOf,
  sampleServing,
  stopContainer,
} from './cluster-probe.js';

const ns = `loop${Date.now().toString(36)}`;
// A node name of its own: the embedded agent only sees containers of its node, so this suite
// neither sees nor prunes what other suites (or a developer's `npm start`) run on this engine.
const node = `test-${ns}`;

function manifests(image: string, overrides: ServiceOptions = {}): Record<string, string> {
  return {
    'deploy/namespace.yaml': namespaceManifest(ns),
    'deploy/web.yaml': webService({
      namespace: ns,
      image,
      replicas: 3,
      healthcheck: { ...WEB_HEALTHCHECK, http: { port: 8080, path: '/' } },
      update: { parallelism: 1, order: 'start-first', monitor: '1s', progressDeadline: '30s' },
      stopGracePeriod: '2s',
      ...overrides,
    }),
  };
}

describe('the GitOps loop on a real Docker engine', () => {
  let repo: TestRepo;
  let stateDir: string;
  /** `berth COMMAND` on this suite's repository, state dir and node. */
  const berth = (command: 'apply' | 'plan', ...extra: string[]) =>
    runBerth([command, ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node }), ...extra]);
  const apply = (...extra: string[]) => berth('apply', ...extra);

  before(async () => {
    repo = await createTestRepo(manifests('berth-test/web:v1'));
    stateDir = await mkdtemp(join(tmpdir(), 'berth-state-'));
  });
  after(async () => {
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('a 3-replica service converges', async () => {
    const first = await repo.head();
    const result = await apply();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const replicas = await replicasOf(ns, 'web');
    assert.equal(replicas.length, 3);
    assert.deepEqual(
      replicas.map((r) => r.revision),
      [first, first, first],
    );
    assert.deepEqual(await bodies(ns, 'web'), ['v1', 'v1', 'v1']);
  });

  test('applying again changes nothing, and plan says so with exit 0', async () => {
    const again = await apply();
    assert.equal(again.code, 0);
    assert.match(again.stdout, /Nothing to change/);
    const plan = await berth('plan');
    assert.equal(plan.code, 0, plan.stdout + plan.stderr);
  });

  test('an image change rolls every replica while at least 3 stay healthy', async () => {
    const commit = await repo.commit(manifests('berth-test/web:v2'), 'web v2');
    const plan = await berth('plan');
    assert.equal(plan.code, 2, plan.stdout + plan.stderr);
    assert.match(plan.stdout, /image: berth-test\/web:v1 -> berth-test\/web:v2/);

    const sampler = sampleServing(ns, 'web');
    const result = await apply();
    const { min, samples } = await sampler.stop();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.ok(samples > 3, `sampled ${samples} times`);
    assert.ok(min >= 3, `only ${min} replicas answered at one point`);
    const replicas = await replicasOf(ns, 'web');
    assert.deepEqual(
      replicas.map((r) => r.revision),
      [commit, commit, commit],
    );
    assert.deepEqual(await bodies(ns, 'web'), ['v2', 'v2', 'v2']);
  });

  test('a commit whose replicas never become healthy is rolled back, and history says so', async () => {
    const good = await repo.head();
    const bad = await repo.commit(manifests('berth-test/crash:v1'), 'crashing web');
    const result = await apply();
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, /rolled back/);
    const replicas = await replicasOf(ns, 'web');
    assert.deepEqual(
      replicas.map((r) => r.revision),
      [good, good, good],
    );
    assert.deepEqual(await bodies(ns, 'web'), ['v2', 'v2', 'v2']);

    const log = await runBerth(['history', `${ns}/web`, '--state-dir', stateDir, '--format', 'json']);
    assert.equal(log.code, 0, log.stderr);
    const entries = JSON.parse(log.stdout) as { revision: string; outcome: string }[];
    assert.ok(
      entries.some((e) => e.revision === bad && e.outcome === 'rolled back'),
      log.stdout,
    );

    // The failed head is not retried: the next apply keeps the last good revision.
    const again = await apply();
    assert.equal(again.code, 1);
    assert.match(again.stdout, /last good revision/);
    const status = await runBerth(['status', '--state-dir', stateDir, '--node', node]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /FAILED/);
    assert.match(status.stdout, new RegExp(`runs the older revision ${good.slice(0, 12)}`));
  });

  test('a missing image and a failing health check are each rolled back, and what ran keeps serving', async () => {
    const good = (await replicasOf(ns, 'web'))[0]!.revision;
    const failingCheck = manifests('berth-test/web:v2', {
      healthcheck: { ...WEB_HEALTHCHECK, http: { port: 8080, path: '/missing' } },
    });
    for (const [what, files] of [
      ['missing image', manifests(MISSING_IMAGE)],
      ['failing check', failingCheck],
    ] as const) {
      await repo.commit(files, what);
      const result = await apply();
      assert.equal(result.code, 1, `${what}: ${result.stdout}${result.stderr}`);
      assert.match(result.stdout, /rolled back/, what);
      assert.match(result.stdout, what === 'missing image' ? /not found|no such image|pull/i : /404|status/i);
      const replicas = await replicasOf(ns, 'web');
      assert.deepEqual(
        replicas.map((r) => r.revision),
        [good, good, good],
        what,
      );
      assert.deepEqual(await bodies(ns, 'web'), ['v2', 'v2', 'v2'], what);
    }
  });

  test('publishing a port is accepted and restarts no replica (the mesh is not part of the spec hash)', async () => {
    const before = await replicasOf(ns, 'web');
    await repo.commit(
      manifests('berth-test/web:v2', { ports: [{ target: 8080, published: 18080 }] }),
      'publish a port',
    );
    const plan = await berth('plan');
    assert.equal(plan.code, 0, plan.stdout + plan.stderr);
    const result = await apply();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.deepEqual(await replicasOf(ns, 'web'), before);
  });

  test('apply refuses while another berth process drives the same state dir', async () => {
    const { writeFile } = await import('node:fs/promises');
    // The lock of a live process (this test runner) blocks; a lock of a dead pid is taken over.
    await writeFile(
      join(stateDir, 'lock'),
      JSON.stringify({ pid: process.pid, command: 'run', since: 'now' }),
    );
    const blocked = await apply();
    assert.equal(blocked.code, 1);
    assert.match(blocked.stderr, new RegExp(`another berth process \\(pid ${process.pid}, \`berth run\``));
    await writeFile(
      join(stateDir, 'lock'),
      JSON.stringify({ pid: 2 ** 22 + 7, command: 'run', since: 'then' }),
    );
    const taken = await apply();
    assert.notEqual(taken.stderr.includes('another berth process'), true, taken.stderr);
  });

  test('a replica removed or stopped by hand is repaired on the next reconcile', async () => {
    await repo.commit(manifests('berth-test/web:v2'), 'back to v2 (same spec as the last good)');
    const [first, second] = await replicasOf(ns, 'web');
    await removeContainer(first!.name);
    await stopContainer(second!.name);
    const result = await apply();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.deepEqual(await bodies(ns, 'web'), ['v2', 'v2', 'v2']);
  });
});
