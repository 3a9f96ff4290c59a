/**
 * What a real operator says about Jobs it ran on a real engine: `berth status` (text and JSON),
 * the dashboard's overview, `berth history` (each run's exit code, duration, node and last lines
 * of output) and /metrics (the time of the last success, read again from the state dir after a
 * restart).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { HistoryEntry } from '../../src/operator/state-store.js';
import type { JobRecord } from '../../src/plan/job-plan.js';
import type { JobStatusRow } from '../../src/plan/job-status.js';
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
import { manifestFile, namespaceManifest, jobManifest as namespacedJob } from '../helpers/manifests.js';
import { removeNamespace } from './cluster-probe.js';

const ns = `jobst${Date.now().toString(36)}`;
const node = `test-${ns}`;

/** A Job of this suite's namespace. */
function jobManifest(name: string, spec: Record<string, unknown>): string {
  return namespacedJob(name, ns, spec);
}

/** The value of one sample of /metrics, or null when the operator does not export it. */
function sample(metrics: string, name: string, labels: string): number | null {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? null : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('Jobs in status, history and /metrics, from a real operator', () => {
  let repo: TestRepo;
  let stateDir: string;
  let operator: BerthProcess | null = null;
  const start = async () => {
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node }),
      ...SCHEDULE_NEVER,
      ...['--listen', '127.0.0.1:0'],
    ]);
  };
  const status = async () => {
    const result = await runBerth(['status', '--state-dir', stateDir, '--format', 'json']);
    assert.equal(result.code, 0, result.stderr);
    return (JSON.parse(result.stdout) as { jobs: JobStatusRow[] }).jobs;
  };
  const metrics = async () => (await fetch(`${operator?.url ?? ''}/metrics`)).text();

  before(async () => {
    await requireTestImages();
    repo = await createTestRepo({
      'deploy/all.yaml': manifestFile(
        namespaceManifest(ns),
        jobManifest('report', { command: ['sh', '-c', 'echo first line; sleep 1; echo all good'] }),
        jobManifest('broken', {
          command: ['sh', '-c', 'for i in 1 2 3 4 5; do echo step $i; done; sleep 1; echo giving up; exit 3'],
          backoffLimit: 0,
        }),
      ),
    });
    stateDir = await mkdtemp(join(tmpdir(), 'berth-job-status-'));
    await start();
  });
  after(async () => {
    await operator?.stop('SIGKILL');
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('berth status and the overview show each Job: its state, completions, last run, node and outcome', async () => {
    const jobs = await eventually(
      'both Jobs finished',
      async () => {
        const rows = await status();
        return rows.every((r) => r.state === 'succeeded' || r.state === 'failed') && rows.length === 2
          ? rows
          : null;
      },
      120_000,
    );
    assert.deepEqual(
      jobs.map((j) => [
        `${j.namespace}/${j.name}`,
        j.state,
        j.completions,
        j.failed,
        j.lastRun?.node,
        j.lastRun?.outcome,
        j.lastRun?.exitCode,
      ]),
      [
        [`${ns}/broken`, 'failed', { succeeded: 0, required: 1 }, 1, node, 'failed', 3],
        [`${ns}/report`, 'succeeded', { succeeded: 1, required: 1 }, 0, node, 'succeeded', 0],
      ],
    );
    assert.match(jobs[0]?.reason ?? '', /exit code 3/);

    const text = await runBerth(['status', '--state-dir', stateDir]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^JOB +STATE +COMPLETIONS +LAST RUN +NODE +OUTCOME$/m);
    assert.match(
      text.stdout,
      new RegExp(`^${ns}/report +succeeded +1/1 +\\S+ +${node} +succeeded \\(exit 0\\)$`, 'm'),
    );
    assert.match(
      text.stdout,
      new RegExp(`^${ns}/broken +failed +0/1 +\\S+ +${node} +failed \\(exit 3\\)$`, 'm'),
    );

    const overview = (await (await fetch(`${operator?.url ?? ''}/v1/overview`)).json()) as {
      jobs: JobStatusRow[];
    };
    assert.deepEqual(
      overview.jobs.map((j) => [j.name, j.state, j.lastRun?.exitCode]),
      [
        ['broken', 'failed', 3],
        ['report', 'succeeded', 0],
      ],
    );
  });

  test('history holds each run: exit code, duration, node and the last lines of its output', async () => {
    const result = await runBerth(['history', '--state-dir', stateDir, '--format', 'json', '-n', '100']);
    assert.equal(result.code, 0, result.stderr);
    const runs = (JSON.parse(result.stdout) as HistoryEntry[]).filter((e) => e.change === 'job run');
    const broken = runs.find((e) => e.job?.name === 'broken');
    assert.ok(broken, result.stdout);
    assert.equal(broken.outcome, 'failed');
    assert.equal(broken.job?.exitCode, 3);
    assert.equal(broken.job?.node, node);
    assert.equal(broken.job?.attempt, 1);
    assert.match(broken.job?.output ?? '', /step 5\ngiving up/);
    // The run slept a second between its lines: its duration is the engine's, not zero.
    assert.ok(broken.durationMs >= 1000, `durationMs ${broken.durationMs}`);
    const report = runs.find((e) => e.job?.name === 'report');
    assert.equal(report?.outcome, 'succeeded');
    assert.equal(report?.job?.exitCode, 0);
    assert.match(report?.job?.output ?? '', /first line\nall good/);

    const text = await runBerth(['history', `${ns}/broken`, '--state-dir', stateDir]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`job ${ns}/broken run 1 +job run +failed`));
    assert.match(text.stdout, new RegExp(`exit code 3 on ${node}, output:\\n {6}step 1\\n`));
    assert.match(text.stdout, / {6}giving up\n/);
    assert.doesNotMatch(text.stdout, /report/, 'only the Job asked for');
  });

  test('/metrics has the time of the last success of each Job, also after an operator restart', async () => {
    const state = JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8')) as {
      jobs: Record<string, JobRecord>;
    };
    const succeeded = Object.values(state.jobs).find((r) => r.name === 'report');
    assert.equal(succeeded?.phase, 'succeeded');
    const expected = Date.parse(succeeded.finishedAt ?? '') / 1000;
    const name = 'berth_job_last_success_timestamp_seconds';
    // Recorded once the reconcile that ran the Jobs ended.
    const before = await eventually('the last success in /metrics', async () => {
      const text = await metrics();
      return sample(text, name, `namespace="${ns}",job="report"`) === null ? null : text;
    });
    assert.equal(sample(before, name, `namespace="${ns}",job="report"`), expected);
    assert.equal(
      sample(before, name, `namespace="${ns}",job="broken"`),
      null,
      'a failed Job never succeeded',
    );
    assert.equal(sample(before, 'berth_job_runs_total', 'outcome="failed"'), 1);

    await operator?.stop();
    operator = null;
    await start();
    // Read from the state dir once the first reconcile after the start ended; nothing ran again.
    const after = await eventually('the last success in /metrics after the restart', async () => {
      const text = await metrics();
      return sample(text, name, `namespace="${ns}",job="report"`) === null ? null : text;
    });
    assert.equal(sample(after, name, `namespace="${ns}",job="report"`), expected);
    assert.equal(sample(after, 'berth_job_runs_total', 'outcome="succeeded"'), null, 'nothing ran again');
  });
});
