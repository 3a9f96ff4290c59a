/**
 * Jobs on a real Docker engine: runs counted and timed by their containers' labels and the
 * engine's own timestamps, the operator killed in the middle, a failing migration that holds
 * back its Service.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
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
import { requireTestImages, testDocker } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { runContainers, type RunContainer } from '../helpers/job-runs.js';
import {
  manifestFile,
  namespaceManifest,
  sleeperService,
  jobManifest as namespacedJob,
} from '../helpers/manifests.js';
import { removeNamespace, replicasOf } from './cluster-probe.js';

const ns = `jobs${Date.now().toString(36)}`;
const node = `test-${ns}`;
/** Test-only: retries wait 100 ms, 200 ms ... instead of 10 s, 20 s ... */
const env = { ...process.env, BERTH_TEST_JOB_BACKOFF_MS: '100' };

/** A Job of this suite's namespace. */
function jobManifest(name: string, spec: Record<string, unknown>): string {
  return namespacedJob(name, ns, spec);
}

async function runsOf(job: string): Promise<RunContainer[]> {
  const runs = await runContainers(testDocker(), ns, `berth.job=${job}`);
  for (const run of runs) {
    assert.ok(run.specHash, 'a run carries its spec hash');
    assert.ok(run.revision, 'a run carries its revision');
  }
  return runs.sort((a, b) => a.attempt - b.attempt);
}

/** The most runs alive at one instant, from the engine's start and finish times. */
function mostAtOnce(runs: RunContainer[]): number {
  return Math.max(
    0,
    ...runs.map(
      (run) =>
        runs.filter((other) => other.startedAt <= run.startedAt && run.startedAt < other.finishedAt).length,
    ),
  );
}

describe('Jobs, on a real Docker engine', () => {
  let repo: TestRepo;
  let stateDir: string;
  let operator: BerthProcess | null = null;
  const apply = () =>
    runBerth(['apply', ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node })], { env });
  const commit = (...documents: string[]) =>
    repo.commit({ 'deploy/all.yaml': manifestFile(namespaceManifest(ns), ...documents) }, 'change');

  before(async () => {
    await requireTestImages();
    repo = await createTestRepo({ 'deploy/all.yaml': namespaceManifest(ns) });
    stateDir = await mkdtemp(join(tmpdir(), 'berth-jobs-'));
  });
  after(async () => {
    await operator?.stop('SIGKILL');
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('completions 3 with parallelism 2: 3 successes, never more than 2 at once, not run again', async () => {
    await commit(
      jobManifest('batch', {
        command: ['sh', '-c', 'sleep 2; echo batch done'],
        completions: 3,
        parallelism: 2,
      }),
    );
    const applied = await apply();
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    const runs = await runsOf('batch');
    assert.deepEqual(
      runs.map((r) => [r.attempt, r.exitCode, r.running]),
      [
        [1, 0, false],
        [2, 0, false],
        [3, 0, false],
      ],
    );
    assert.equal(mostAtOnce(runs), 2, JSON.stringify(runs));

    const again = await apply();
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal((await runsOf('batch')).length, 3, 'a completed Job is not run again');

    const state = JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8')) as {
      jobs: Record<string, { phase: string; succeeded: number; runs: { output: string; node: string }[] }>;
    };
    const record = Object.values(state.jobs).find((r) => r.succeeded === 3);
    assert.equal(record?.phase, 'succeeded');
    assert.match(record.runs[0]?.output ?? '', /batch done/);
    assert.equal(record.runs[0]?.node, node);
    const history = await readFile(join(stateDir, 'history.jsonl'), 'utf8');
    assert.equal(history.split('\n').filter((line) => line.includes('"change":"job run"')).length, 3);
  });

  test('a failing Job is retried backoffLimit times, then fails; a failing migration holds back its Service', async () => {
    await commit(sleeperService({ name: 'app', namespace: ns }));
    assert.equal((await apply()).code, 0);
    const before = await replicasOf(ns, 'app');
    assert.equal(before.length, 1);

    await commit(
      jobManifest('migrate', { command: ['sh', '-c', 'echo migration broke; exit 3'], backoffLimit: 2 }),
      sleeperService({ name: 'app', namespace: ns, env: { VERSION: '2' }, dependsOn: [{ job: 'migrate' }] }),
    );
    const applied = await apply();
    assert.notEqual(applied.code, 0, 'the revision fails');
    assert.match(applied.stdout + applied.stderr, /Job \S*migrate failed/);
    const runs = await runsOf('migrate');
    assert.deepEqual(
      runs.map((r) => [r.attempt, r.exitCode]),
      [
        [1, 3],
        [2, 3],
        [3, 3],
      ],
    );
    const after = await replicasOf(ns, 'app');
    assert.deepEqual(
      after.map((r) => [r.name, r.specHash, r.state]),
      before.map((r) => [r.name, r.specHash, 'running']),
      'the Service keeps running its old revision',
    );
    assert.equal((await runsOf('migrate')).length, 3, 'the failed Job is not run again');
    const history = await readFile(join(stateDir, 'history.jsonl'), 'utf8');
    assert.match(history, /migration broke/);
  });

  test('kill -9 of the operator in the middle of a run runs nothing twice', async () => {
    await commit(jobManifest('slow', { command: ['sh', '-c', 'sleep 4'], completions: 2, parallelism: 1 }));
    operator = await startBerth(
      'run',
      [...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node }), ...SCHEDULE_NEVER],
      {
        env,
      },
    );
    await eventually('the first run is running', async () => (await runsOf('slow')).some((r) => r.running));
    await operator.stop('SIGKILL');
    operator = null;
    operator = await startBerth(
      'run',
      [
        ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node }),
        ...SCHEDULE_NEVER,
        ...['--listen', '127.0.0.1:0'],
      ],
      {
        env,
      },
    );
    const runs = await eventually(
      'two runs succeeded',
      async () => {
        const found = await runsOf('slow');
        return found.filter((r) => !r.running && r.exitCode === 0).length === 2 ? found : null;
      },
      90_000,
    );
    assert.deepEqual(
      runs.map((r) => r.attempt),
      [1, 2],
      'exactly two runs, the first adopted after the restart',
    );
    assert.equal(mostAtOnce(runs), 1);
    const metrics = await eventually('the runs counted in /metrics', async () => {
      const text = await (await fetch(`${operator?.url ?? ''}/metrics`)).text();
      return /^berth_job_runs_total\{outcome="succeeded"\} 2$/m.test(text) ? text : null;
    });
    assert.doesNotMatch(metrics, /berth_job_runs_total\{outcome="failed"\}/);
  });
});
