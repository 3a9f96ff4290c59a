/**
 * CronJobs on a real Docker engine, scheduled by a real `berth run`: overlap, replacement and
 * suspension judged from the run containers' labels and the engine's own start and finish times;
 * the operator killed and restarted; `berth job run` and `berth job ls`.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import {
  eventually,
  runBerth,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { requireTestImages, testDocker, TEST_IMAGES } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { runContainers, type RunContainer } from '../helpers/job-runs.js';
import { manifestFile, namespaceManifest } from '../helpers/manifests.js';
import { removeNamespace } from './cluster-probe.js';

const ns = `cron${Date.now().toString(36)}`;
const node = `test-${ns}`;

function cronJobManifest(name: string, spec: Record<string, unknown>, job: Record<string, unknown>): string {
  return stringify({
    apiVersion: 'berth/v1',
    kind: 'CronJob',
    metadata: { name, namespace: ns },
    spec: {
      ...spec,
      jobTemplate: { image: TEST_IMAGES.busybox, init: true, stopGracePeriod: '1s', ...job },
    },
  });
}

const runsOf = (cronJob: string): Promise<RunContainer[]> =>
  runContainers(testDocker(), ns, `berth.cronjob=${cronJob}`);

function overlapping(runs: readonly RunContainer[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (const a of runs)
    for (const b of runs)
      if (a.name < b.name && a.startedAt < b.finishedAt && b.startedAt < a.finishedAt)
        pairs.push([a.name, b.name]);
  return pairs;
}

interface RecordedCronJob {
  lastScheduleTime: string | null;
  missed: number;
  suspend: boolean;
  runs: { name: string; scheduledAt: string | null; phase: string }[];
}

async function cronState(stateDir: string, name: string): Promise<RecordedCronJob | null> {
  try {
    const state = JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8')) as {
      cronJobs?: Record<string, RecordedCronJob>;
      jobs?: Record<string, { name: string; reason: string | null }>;
    };
    return state.cronJobs?.[`${ns}/${name}`] ?? null;
  } catch {
    return null;
  }
}

describe('CronJobs, on a real Docker engine', () => {
  let repo: TestRepo;
  let stateDir: string;
  let operator: BerthProcess | null = null;
  const commit = (...documents: string[]) =>
    repo.commit({ 'deploy/all.yaml': manifestFile(namespaceManifest(ns), ...documents) }, 'change');
  const startOperator = async () => {
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node }),
      ...SCHEDULE_NEVER,
      ...['--cluster-listen', '127.0.0.1:0'],
    ]);
    return operator;
  };

  before(async () => {
    await requireTestImages();
    repo = await createTestRepo({ 'deploy/all.yaml': namespaceManifest(ns) });
  });
  afterEach(async () => {
    await operator?.stop('SIGKILL');
    operator = null;
    await removeNamespace(ns);
    await rm(stateDir, { recursive: true, force: true });
  });
  after(async () => {
    await removeNamespace(ns);
    await repo.cleanup();
  });

  test('every 2 s with Forbid and a 5 s job: runs never overlap; a template change does not stop the running run', async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'berth-cron-'));
    const slow = { command: ['sh', '-c', 'sleep 5; echo done'], env: { V: '1' } };
    await commit(
      cronJobManifest('tick', { schedule: '*/2 * * * * *', successfulJobsHistoryLimit: 10 }, slow),
    );
    await startOperator();
    const running = await eventually('a first run runs', async () =>
      (await runsOf('tick')).find((r) => r.running),
    );
    // The reconcile this commit triggers neither removes nor restarts the running run.
    await commit(
      cronJobManifest(
        'tick',
        { schedule: '*/2 * * * * *', successfulJobsHistoryLimit: 10 },
        { ...slow, env: { V: '2' } },
      ),
    );
    const runs = await eventually(
      'three runs finished',
      async () => {
        const found = await runsOf('tick');
        return found.filter((r) => !r.running).length >= 3 ? found : null;
      },
      90_000,
    );
    assert.deepEqual(overlapping(runs), [], JSON.stringify(runs));
    const first = runs.find((r) => r.name === running.name);
    assert.ok(first, 'the run that ran during the template change is still there');
    assert.equal(first.exitCode, 0, 'and it ran to its end');
    assert.equal(first.startedAt, running.startedAt, 'it was not restarted');
    assert.ok(runs.every((r) => r.exitCode === 0 || r.running));
    assert.ok(new Set(runs.map((r) => r.specHash)).size >= 2, 'later runs use the changed template');
    const state = await cronState(stateDir, 'tick');
    assert.ok(state);
    assert.ok(
      state.runs.every(
        (r) => r.scheduledAt !== null && r.name === `tick-${Date.parse(r.scheduledAt) / 1000}`,
      ),
    );
  });

  test('Replace stops the running run and starts the new one', async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'berth-cron-'));
    await commit(
      cronJobManifest(
        'swap',
        { schedule: '*/3 * * * * *', concurrencyPolicy: 'Replace' },
        { command: ['sleep', '60'] },
      ),
    );
    await startOperator();
    const first = await eventually('a first run runs', async () =>
      (await runsOf('swap')).find((r) => r.running),
    );
    const state = await eventually(
      'the first run replaced by a second',
      async () => {
        const recorded = await cronState(stateDir, 'swap');
        const replaced = recorded?.runs.find((r) => r.name === first.job && r.phase === 'failed');
        return replaced && recorded?.runs.some((r) => r.phase === 'running' && r.name !== first.job)
          ? recorded
          : null;
      },
      60_000,
    );
    assert.ok(state.runs.length >= 2);
    const live = await eventually('the replaced container is gone', async () => {
      const found = await runsOf('swap');
      return found.some((r) => r.job === first.job) ? null : found;
    });
    assert.ok(live.filter((r) => r.running).length <= 1, JSON.stringify(live));
  });

  test('suspend stops the schedule; berth job run still runs it now; berth job ls shows it', async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'berth-cron-'));
    await commit(
      cronJobManifest('paused', { schedule: '*/2 * * * * *', suspend: true }, { command: ['true'] }),
    );
    await startOperator();
    const suspendedAt = await eventually('the CronJob is known, suspended', async () => {
      const recorded = await cronState(stateDir, 'paused');
      return recorded?.suspend && recorded.lastScheduleTime ? Date.parse(recorded.lastScheduleTime) : null;
    });
    // Schedule times pass (the scheduler records them as dealt with) without a run.
    const later = await eventually('three schedule times passed', async () => {
      const recorded = await cronState(stateDir, 'paused');
      return recorded && Date.parse(recorded.lastScheduleTime ?? '') >= suspendedAt + 6_000 ? recorded : null;
    });
    assert.deepEqual(later.runs, []);
    assert.deepEqual(await runsOf('paused'), []);

    const unknown = await runBerth(['job', 'run', 'nope', '-n', ns, '--state-dir', stateDir]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no Job or CronJob "nope" in namespace/);

    const started = await runBerth(['job', 'run', `${ns}/paused`, '--state-dir', stateDir]);
    assert.equal(started.code, 0, started.stdout + started.stderr);
    const [, runName] = /started run (\S+)/.exec(started.stdout) ?? [];
    assert.ok(runName, started.stdout);
    const finished = await eventually('the run finished', async () => {
      const found = await runsOf('paused');
      return found.length === 1 && !found[0]?.running ? found[0] : null;
    });
    assert.equal(finished.job, runName);
    assert.equal(finished.exitCode, 0);

    const listed = await eventually('berth job ls shows the run succeeded', async () => {
      const ls = await runBerth(['job', 'ls', '--format', 'json', '--state-dir', stateDir]);
      const rows = JSON.parse(ls.stdout) as {
        kind: string;
        name: string;
        outcome: string;
        lastRun: string;
        nextRun: string | null;
      }[];
      const row = rows.find((r) => r.name === 'paused');
      return row?.outcome === 'succeeded' ? row : null;
    });
    assert.equal(listed.kind, 'CronJob');
    assert.equal(listed.nextRun, null, 'suspended: no next run');
    const text = await runBerth(['job', 'ls', '--state-dir', stateDir]);
    assert.equal(text.code, 0);
    assert.match(
      text.stdout,
      new RegExp(
        `CronJob\\s+${ns}/paused\\s+\\*/2 \\* \\* \\* \\* \\* \\(UTC\\) suspended\\s+\\S+\\s+succeeded`,
      ),
    );
  });

  test('an operator killed and restarted runs at most one catch-up run for the times it missed', async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'berth-cron-'));
    await commit(
      cronJobManifest(
        'catchup',
        { schedule: '*/2 * * * * *', startingDeadline: '1h', successfulJobsHistoryLimit: 100 },
        { command: ['true'] },
      ),
    );
    const first = await startOperator();
    await eventually('a run finished', async () => (await runsOf('catchup')).some((r) => !r.running));
    await first.stop('SIGKILL');
    operator = null;
    const before = await cronState(stateDir, 'catchup');
    assert.ok(before?.lastScheduleTime);
    const lastBeforeKill = Date.parse(before.lastScheduleTime);
    // Three schedule times pass while no operator runs.
    await eventually(
      'three schedule times passed',
      async () => Date.now() > lastBeforeKill + 7_000,
      20_000,
      500,
    );
    const second = await startOperator();
    const after = await eventually(
      'runs again after the restart',
      async () => {
        const recorded = await cronState(stateDir, 'catchup');
        return recorded?.runs.some((r) => Date.parse(r.scheduledAt ?? '') > lastBeforeKill) ? recorded : null;
      },
      60_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\nthe restarted operator said:\n${second.output()}`);
    });
    // The first run after the kill is the one catch-up run: every schedule time between the last
    // one before the kill and it got no run, and was recorded as missed.
    const catchUp = Math.min(
      ...after.runs.map((r) => Date.parse(r.scheduledAt ?? '')).filter((at) => at > lastBeforeKill),
    );
    assert.ok(
      catchUp - lastBeforeKill >= 6_000,
      `schedule times passed while it was down: ${catchUp - lastBeforeKill} ms`,
    );
    assert.equal(
      after.missed,
      (catchUp - lastBeforeKill) / 2_000 - 1,
      'the times before the catch-up run were missed',
    );
    // The missed times reach history.jsonl just after state.json.
    await eventually('the missed runs in history', async () =>
      /cronjob \S+\/catchup: \d+ run\(s\) missed/.test(
        await readFile(join(stateDir, 'history.jsonl'), 'utf8').catch(() => ''),
      ),
    );
    // No schedule time got two runs.
    const names = after.runs.map((r) => r.name);
    assert.equal(new Set(names).size, names.length);
  });
});
