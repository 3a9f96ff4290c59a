/**
 * Jobs on two real engines joined to one operator: a placement constraint keeps every run of a Job
 * on the node it names, and a run whose node is lost (its engine stopped under it) is run again on
 * the other node, not counted against backoffLimit, so the Job completes exactly as many times as
 * it must. Runs are read from each engine by their labels, not through berth.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { HistoryEntry } from '../../src/operator/state-store.js';
import type { JobRecord } from '../../src/plan/job-plan.js';
import {
  eventually,
  runBerth,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { runContainers, type RunContainer } from '../helpers/job-runs.js';
import { freePort } from '../helpers/load-loop.js';
import { manifestFile, namespaceManifest, jobManifest as namespacedJob } from '../helpers/manifests.js';
import {
  startEngineAgent,
  startTestEngines,
  stopEngine,
  type TestEngine,
  type TestEngines,
} from '../helpers/multi-node.js';

const ns = `mj${Date.now().toString(36)}`;

/** A Job of this suite's namespace. */
function jobManifest(name: string, spec: Record<string, unknown>): string {
  return namespacedJob(name, ns, spec);
}

/** Every run container of `job` on `engines`, in any state, read from the engines. */
async function runsOn(engines: TestEngine[], job: string): Promise<(RunContainer & { node: string })[]> {
  const found = await Promise.all(
    engines.map(async (engine) =>
      (await runContainers(engine.docker, ns, `berth.job=${job}`)).map((run) => ({
        ...run,
        node: engine.node,
      })),
    ),
  );
  return found.flat().sort((a, b) => a.attempt - b.attempt);
}

describe('Jobs on two engines', () => {
  let cluster: TestEngines;
  let engines: TestEngine[];
  let repo: TestRepo;
  let dir: string;
  let stateDir: string;
  let operator: BerthProcess;
  const agents: BerthProcess[] = [];
  const documents: string[] = [];
  const commit = (document: string) => {
    documents.push(document);
    return repo.commit({ 'app.yaml': manifestFile(namespaceManifest(ns), ...documents) }, 'jobs');
  };
  const records = async (): Promise<JobRecord[]> => {
    const state = JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8')) as {
      jobs?: Record<string, JobRecord>;
    };
    return Object.values(state.jobs ?? {});
  };
  const finished = (name: string) =>
    eventually(
      `Job ${name} finished`,
      async () => (await records()).find((r) => r.name === name && r.phase !== 'running'),
      180_000,
    );

  before(async () => {
    cluster = await startTestEngines(2, `${ns}n`);
    engines = cluster.engines;
    dir = await mkdtemp(join(tmpdir(), 'berth-multi-jobs-'));
    stateDir = join(dir, 'state');
    repo = await createTestRepo({ 'app.yaml': namespaceManifest(ns) });
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, stateDir }),
      ...['--cluster-listen', `127.0.0.1:${await freePort()}`, '--no-local-node'],
      ...SCHEDULE_NEVER,
    ]);
    assert.ok(operator.join, operator.output());
    const joinCommand = operator.join;
    agents.push(
      ...(await Promise.all(
        engines.map((engine) =>
          startEngineAgent(engine, joinCommand, { stateDir: join(dir, `agent-${engine.index}`) }),
        ),
      )),
    );
    await eventually(
      'both nodes ready',
      async () => {
        const result = await runBerth(['node', 'ls', '--state-dir', stateDir, '--format', 'json']);
        const nodes = JSON.parse(result.stdout) as { status: string }[];
        return nodes.length === 2 && nodes.every((n) => n.status === 'ready');
      },
      60_000,
    );
  });

  after(async () => {
    await Promise.all(agents.map((agent) => agent.stop('SIGKILL')));
    await operator?.stop();
    await cluster?.stop();
    await repo?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a Job placed on one node runs all its completions there', async () => {
    const [, zoneB] = engines;
    await commit(
      jobManifest('pinned', {
        command: ['sh', '-c', 'sleep 1; echo done'],
        completions: 2,
        parallelism: 2,
        placement: { constraints: ['node.labels.zone == b'] },
      }),
    );
    const record = await finished('pinned');
    assert.equal(record.phase, 'succeeded', record.reason ?? '');
    assert.deepEqual(
      (await runsOn(engines, 'pinned')).map((r) => [r.attempt, r.node, r.exitCode]),
      [
        [1, zoneB!.node, 0],
        [2, zoneB!.node, 0],
      ],
    );
  });

  test('a run whose node is lost runs again on the other node, not counted as failed; exactly 2 complete', async () => {
    await commit(
      jobManifest('long', {
        command: ['sh', '-c', 'sleep 5; echo done'],
        completions: 2,
        parallelism: 1,
        // One failure would fail the Job: the lost run must not count as one.
        backoffLimit: 0,
      }),
    );
    const first = await eventually(
      'the first run running',
      async () => (await runsOn(engines, 'long')).find((r) => r.attempt === 1 && r.running),
      120_000,
    );
    const victim = engines.find((e) => e.node === first.node)!;
    const survivor = engines.find((e) => e !== victim)!;
    await stopEngine(victim);

    const record = await finished('long');
    assert.equal(record.phase, 'succeeded', record.reason ?? '');
    assert.equal(record.succeeded, 2);
    assert.equal(record.failed, 0);
    assert.deepEqual(
      record.runs.map((r) => [r.attempt, r.node, r.outcome]),
      [
        [1, victim.node, 'lost'],
        [2, survivor.node, 'succeeded'],
        [3, survivor.node, 'succeeded'],
      ],
    );
    assert.deepEqual(
      (await runsOn([survivor], 'long')).map((r) => [r.attempt, r.exitCode]),
      [
        [2, 0],
        [3, 0],
      ],
      'exactly two runs completed, both on the surviving node',
    );
    const history = await runBerth(['history', '--state-dir', stateDir, '--format', 'json', '-n', '100']);
    const lost = (JSON.parse(history.stdout) as HistoryEntry[]).find(
      (e) => e.job?.name === 'long' && e.job.attempt === 1,
    );
    assert.equal(lost?.outcome, 'interrupted', 'the infrastructure is blamed, not the Job');
    assert.match(lost.reason ?? '', new RegExp(`node ${victim.node} was lost`));
  });
});
