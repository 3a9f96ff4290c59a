import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  eventually,
  runBerth,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import { bodies, removeContainer, removeNamespace, replicasOf, stopContainer } from './cluster-probe.js';

const ns = `run${Date.now().toString(36)}`;
const node = `test-${ns}`;

function manifests(image: string, parallelism = 3): Record<string, string> {
  return {
    'deploy/all.yaml': manifestFile(
      namespaceManifest(ns),
      webService({
        namespace: ns,
        image,
        replicas: 3,
        update: { parallelism, monitor: '1s' },
        stopGracePeriod: '2s',
      }),
    ),
  };
}

interface HealthBody {
  status: string;
  conditions: { type: string; status: string; reason: string; message: string }[];
  lastReconcile: { outcome: string } | null;
}

/** The one condition that holds, as `Type/Reason`. */
function holding(body: Pick<HealthBody, 'conditions'>): string {
  return body.conditions
    .filter((c) => c.status === 'True')
    .map((c) => `${c.type}/${c.reason}`)
    .join();
}

function startOperator(repo: TestRepo, stateDir: string): Promise<BerthProcess> {
  return startBerth('run', [
    ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node }),
    // Every deploy here is triggered by the watch.
    ...SCHEDULE_NEVER,
    ...['--listen', '127.0.0.1:0'],
  ]);
}

describe('berth run: the operator loop', () => {
  let repo: TestRepo;
  let stateDir: string;
  let operator: BerthProcess | null = null;

  before(async () => {
    repo = await createTestRepo(manifests('berth-test/web:v1'));
    stateDir = await mkdtemp(join(tmpdir(), 'berth-run-'));
  });
  after(async () => {
    await operator?.stop('SIGKILL');
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('deploys the branch head at start and serves /healthz and /metrics', async () => {
    operator = await startOperator(repo, stateDir);
    await eventually(
      '3 replicas serving v1',
      async () => (await bodies(ns, 'web')).filter((b) => b === 'v1').length === 3,
    );
    const base = operator.url;
    assert.ok(base, operator.output());
    const health = await eventually('Ready', async () => {
      const response = await fetch(`${base}/healthz`);
      const body = (await response.json()) as HealthBody;
      return response.status === 200 && holding(body) === 'Ready/ReconciliationSucceeded' ? body : null;
    });
    assert.equal(health.status, 'ok');
    assert.equal(health.lastReconcile?.outcome, 'succeeded');
    assert.deepEqual(
      health.conditions.map((c) => [c.type, c.status]),
      [
        ['Ready', 'True'],
        ['Reconciling', 'False'],
        ['Stalled', 'False'],
      ],
    );
    const metrics = await eventually('replica metrics', async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return text.includes(`berth_service_replicas{namespace="${ns}",service="web",state="healthy"} 3`)
        ? text
        : null;
    });
    assert.match(metrics, /berth_reconciles_total\{outcome="succeeded"\} 1/);
    assert.match(metrics, /berth_reconcile_duration_seconds_count \d+/);
    assert.match(metrics, /berth_condition\{type="Ready",status="True"\} 1/);
    assert.match(metrics, /berth_condition\{type="Stalled",status="True"\} 0/);
    assert.match(
      metrics,
      new RegExp(`berth_revision_info\\{kind="head",revision="${await repo.head()}"\\} 1`),
    );
  });

  test('a new commit is picked up by the watch and rolled out', async () => {
    const commit = await repo.commit(manifests('berth-test/web:v2'), 'v2');
    await eventually(
      'every replica on the new commit, serving v2',
      async () => {
        const replicas = await replicasOf(ns, 'web');
        const serving = await bodies(ns, 'web');
        return (
          replicas.length === 3 &&
          replicas.every((r) => r.revision === commit) &&
          serving.every((b) => b === 'v2')
        );
      },
      60_000,
    );
  });

  test('an invalid commit stalls the operator: /readyz 503 and /healthz 200 with the reason, status and metrics say so; replicas untouched', async () => {
    const before = await replicasOf(ns, 'web');
    const files = manifests('berth-test/web:v2');
    await repo.commit(
      { 'deploy/all.yaml': files['deploy/all.yaml']!.replace('replicas: 3', 'replicas: three') },
      'bad',
    );
    const base = operator!.url;
    const body = await eventually('Stalled', async () => {
      const response = await fetch(`${base}/readyz`);
      const health = (await response.json()) as HealthBody;
      return response.status === 503 && holding(health) === 'Stalled/RevisionInvalid' ? health : null;
    });
    assert.equal(body.status, 'stalled');
    // Liveness stays 200: a probe must not restart the operator over a bad commit.
    const live = await fetch(`${base}/healthz`);
    assert.equal(live.status, 200);
    assert.equal(((await live.json()) as HealthBody).status, 'stalled');
    assert.match(
      body.conditions.find((c) => c.type === 'Stalled')!.message,
      /spec\.replicas: must be integer.*waiting for a new commit/,
    );
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /berth_condition\{type="Stalled",status="True"\} 1/);
    assert.match(metrics, /berth_condition\{type="Ready",status="True"\} 0/);
    const status = await runBerth(['status', '--state-dir', stateDir, '--node', node, '--format', 'json']);
    assert.equal(status.code, 0, status.stderr);
    const report = JSON.parse(status.stdout) as HealthBody;
    assert.equal(holding(report), 'Stalled/RevisionInvalid');
    const text = await runBerth(['status', '--state-dir', stateDir, '--node', node]);
    assert.match(text.stdout, /Operator {5}Stalled: RevisionInvalid/);
    assert.deepEqual(await replicasOf(ns, 'web'), before);
  });

  test('killed with SIGKILL in the middle of a rollout, a restarted operator ends with exactly the desired replicas', async () => {
    const commit = await repo.commit(manifests('berth-test/web:v1', 1), 'back to v1, one at a time');
    await eventually(
      'the first new replica',
      async () => (await replicasOf(ns, 'web')).some((r) => r.revision === commit),
      30_000,
      50,
    );
    await operator!.stop('SIGKILL');
    const midway = await replicasOf(ns, 'web');
    assert.ok(
      midway.some((r) => r.revision !== commit),
      'the kill landed mid-rollout',
    );

    operator = await startOperator(repo, stateDir);
    await eventually(
      'exactly 3 replicas, all on the new commit, serving v1',
      async () => {
        const replicas = await replicasOf(ns, 'web');
        const serving = await bodies(ns, 'web');
        return (
          replicas.length === 3 &&
          replicas.every((r) => r.revision === commit && r.state === 'running') &&
          serving.join() === 'v1,v1,v1'
        );
      },
      60_000,
    );
    // The rollout is over only when its monitor window is: until then a replica that stops is the
    // commit's failure, and the next test stops one by hand.
    const restarted = operator.url;
    assert.ok(restarted, operator.output());
    await eventually('the restarted operator Ready, its rollout done', async () => {
      const response = await fetch(`${restarted}/healthz`);
      const body = (await response.json()) as HealthBody;
      return holding(body) === 'Ready/ReconciliationSucceeded' && body.lastReconcile?.outcome === 'succeeded';
    });
  });

  test('a replica removed and one stopped by hand are repaired on their own: no schedule, no commit', async () => {
    const [first, second] = await replicasOf(ns, 'web');
    await removeContainer(first!.name);
    await stopContainer(second!.name);
    // The operator runs with no schedule and nothing is committed: only the nodes' change
    // reports can start the reconcile that repairs them.
    await eventually(
      '3 replicas serving v1 again',
      async () => {
        const replicas = await replicasOf(ns, 'web');
        const serving = await bodies(ns, 'web');
        return replicas.length === 3 && serving.join() === 'v1,v1,v1';
      },
      60_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\nthe operator said:\n${operator?.output() ?? ''}`);
    });
  });

  test('SIGTERM stops it cleanly and leaves the replicas running', async () => {
    const exit = await operator!.stop('SIGTERM');
    assert.equal(exit.code, 0, operator!.output());
    operator = null;
    assert.equal((await bodies(ns, 'web')).filter((b) => b === 'v1').length, 3);
  });
});

describe('berth run without a Docker engine', () => {
  test('says so in one clear line and exits non-zero', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-nodocker-'));
    const repo = await createTestRepo(manifests('berth-test/web:v1'));
    try {
      const result = await runBerth([
        'run',
        ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir: dir }),
        ...['--docker', join(dir, 'missing.sock')],
      ]);
      assert.equal(result.code, 1);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.match(
        lines[0]!,
        /^berth: cannot reach the Docker engine at .*missing\.sock.*is dockerd running\?$/,
      );
    } finally {
      await repo.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
