import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually, runBerth, startBerth } from '../helpers/berth-cli.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { bodies, removeNamespace, replicasOf } from './cluster-probe.js';

const ns = `run${Date.now().toString(36)}`;
const node = `test-${ns}`;

function manifests(image: string, parallelism = 3): Record<string, string> {
  return {
    'deploy/all.yaml': `apiVersion: berth/v1
kind: Namespace
metadata: { name: ${ns} }
---
apiVersion: berth/v1
kind: Service
metadata: { name: web, namespace: ${ns} }
spec:
  image: ${image}
  replicas: 3
  ports: [{ target: 8080 }]
  healthcheck: { http: { port: 8080 }, interval: 1s, timeout: 1s, retries: 2 }
  update: { parallelism: ${parallelism}, monitor: 1s }
  stopGracePeriod: 2s
  init: true
`,
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

interface Operator {
  child: ChildProcess;
  stderr: () => string;
  address: Promise<string>;
  exited: Promise<number | null>;
}

function startOperator(repo: TestRepo, stateDir: string): Operator {
  const child = startBerth([
    'run',
    '--repo',
    repo.dir,
    '--path',
    'deploy',
    '--state-dir',
    stateDir,
    '--node',
    node,
    // A schedule that never fires during the test: every deploy here is triggered by the watch.
    '--schedule',
    '0 0 1 1 *',
    '--listen',
    '127.0.0.1:0',
  ]);
  let stderr = '';
  const address = new Promise<string>((resolve) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /"address":"(http:\/\/[^"]+)"/.exec(stderr);
      if (match) resolve(match[1]!);
    });
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stderr: () => stderr, address, exited };
}

describe('berth run: the operator loop', () => {
  let repo: TestRepo;
  let stateDir: string;
  let operator: Operator | null = null;

  before(async () => {
    repo = await createTestRepo(manifests('berth-test/web:v1'));
    stateDir = await mkdtemp(join(tmpdir(), 'berth-run-'));
  });
  after(async () => {
    operator?.child.kill('SIGKILL');
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('deploys the branch head at start and serves /healthz and /metrics', async () => {
    operator = startOperator(repo, stateDir);
    await eventually(
      '3 replicas serving v1',
      async () => (await bodies(ns, 'web')).filter((b) => b === 'v1').length === 3,
    );
    const base = await operator.address;
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
    const base = await operator!.address;
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
    operator!.child.kill('SIGKILL');
    await operator!.exited;
    const midway = await replicasOf(ns, 'web');
    assert.ok(
      midway.some((r) => r.revision !== commit),
      'the kill landed mid-rollout',
    );

    operator = startOperator(repo, stateDir);
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
  });

  test('SIGTERM stops it cleanly and leaves the replicas running', async () => {
    operator!.child.kill('SIGTERM');
    assert.equal(await operator!.exited, 0, operator!.stderr());
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
        '--repo',
        repo.dir,
        '--path',
        'deploy',
        '--state-dir',
        dir,
        '--docker',
        join(dir, 'missing.sock'),
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
