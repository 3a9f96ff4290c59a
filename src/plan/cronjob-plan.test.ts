import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadManifests } from '../manifests/load.js';
import type { CronJobSpec } from '../manifests/types.js';
import { decideCronJob, planCronJobs, type CronJobState, type CronRunRef } from './cronjob-plan.js';
import { cronJobLines } from './render-plan.js';

const at = (iso: string) => Date.parse(iso);

function cronJob(spec: string): CronJobSpec {
  const text = `apiVersion: berth/v1
kind: CronJob
metadata: { name: backup }
spec:
${spec
  .trim()
  .split('\n')
  .map((line) => `  ${line}`)
  .join('\n')}
  jobTemplate: { image: busybox:1.36 }
`;
  const result = loadManifests([{ path: 'c.yaml', content: new TextEncoder().encode(text) }], {
    revision: 'r',
  });
  assert.ok(result.ok, JSON.stringify(result));
  const [spec0] = result.desired.cronJobs ?? [];
  assert.ok(spec0);
  return spec0;
}

function state(overrides: Partial<CronJobState> = {}): CronJobState {
  return {
    namespace: 'default',
    name: 'backup',
    since: '2026-01-01T00:00:00.000Z',
    lastScheduleTime: null,
    runs: [],
    skipped: 0,
    missed: 0,
    lastMissed: null,
    schedule: '0 * * * *',
    timeZone: 'UTC',
    suspend: false,
    nextRunAt: null,
    templateHash: 'h',
    ...overrides,
  };
}

function run(
  name: string,
  phase: CronRunRef['phase'],
  startedAt: string,
  finishedAt: string | null = null,
): CronRunRef {
  return { name, specHash: 'h', scheduledAt: startedAt, startedAt, phase, finishedAt };
}

void describe('when a CronJob runs (clock passed in)', () => {
  void test('a new CronJob waits for its first schedule time, then runs once at it', () => {
    const hourly = cronJob('schedule: "0 * * * *"');
    const first = decideCronJob({
      cronJob: hourly,
      specHash: 'h',
      state: null,
      now: at('2026-01-01T10:30:00Z'),
      manual: false,
    });
    assert.deepEqual(first.start, []);
    assert.equal(first.state.nextRunAt, '2026-01-01T11:00:00.000Z');
    const due = decideCronJob({
      cronJob: hourly,
      specHash: 'h',
      state: first.state,
      now: at('2026-01-01T11:00:00.400Z'),
      manual: false,
    });
    assert.deepEqual(
      due.start.map((r) => r.name),
      [`backup-${at('2026-01-01T11:00:00Z') / 1000}`],
    );
    assert.equal(due.missed, null);
    // Asked again in the same second: the same schedule time is not run twice.
    const again = decideCronJob({
      cronJob: hourly,
      specHash: 'h',
      state: due.state,
      now: at('2026-01-01T11:00:00.900Z'),
      manual: false,
    });
    assert.deepEqual(again.start, []);
  });

  void test('in its time zone: 09:00 New York is 14:00Z in winter', () => {
    const nine = cronJob('schedule: "0 9 * * *"\ntimeZone: America/New_York');
    const before = state({ lastScheduleTime: '2026-01-09T14:00:00.000Z' });
    const early = decideCronJob({
      cronJob: nine,
      specHash: 'h',
      state: before,
      now: at('2026-01-10T13:59:59Z'),
      manual: false,
    });
    assert.deepEqual(early.start, []);
    const onTime = decideCronJob({
      cronJob: nine,
      specHash: 'h',
      state: before,
      now: at('2026-01-10T14:00:00Z'),
      manual: false,
    });
    assert.equal(onTime.start[0]?.scheduledAt, '2026-01-10T14:00:00.000Z');
  });

  void test('runs missed while the operator was down: one catch-up run within startingDeadline, the others recorded', () => {
    const hourly = cronJob('schedule: "0 * * * *"\nstartingDeadline: 10m');
    const down = state({ lastScheduleTime: '2026-01-01T10:00:00.000Z' });
    const within = decideCronJob({
      cronJob: hourly,
      specHash: 'h',
      state: down,
      now: at('2026-01-01T13:05:00Z'),
      manual: false,
    });
    assert.equal(within.start.length, 1);
    assert.equal(within.start[0]?.scheduledAt, '2026-01-01T13:00:00.000Z');
    assert.equal(within.missed?.count, 2);
    assert.equal(within.state.missed, 2);
    assert.equal(within.state.lastScheduleTime, '2026-01-01T13:00:00.000Z');

    const late = decideCronJob({
      cronJob: hourly,
      specHash: 'h',
      state: down,
      now: at('2026-01-01T13:20:00Z'),
      manual: false,
    });
    assert.deepEqual(late.start, []);
    assert.equal(late.missed?.count, 3);
    assert.match(late.missed?.reason ?? '', /startingDeadline/);
    // Recorded as dealt with: the next step does not catch up again.
    const next = decideCronJob({
      cronJob: hourly,
      specHash: 'h',
      state: late.state,
      now: at('2026-01-01T13:21:00Z'),
      manual: false,
    });
    assert.deepEqual(next.start, []);
    assert.equal(next.missed, null);
  });

  void test('without startingDeadline, a run however late catches up once', () => {
    const hourly = cronJob('schedule: "0 * * * *"');
    const down = state({ lastScheduleTime: '2026-01-01T10:00:00.000Z' });
    const decision = decideCronJob({
      cronJob: hourly,
      specHash: 'h',
      state: down,
      now: at('2026-01-03T10:30:00Z'),
      manual: false,
    });
    assert.equal(decision.start.length, 1);
    assert.equal(decision.missed?.count, 47);
  });

  void test('concurrency: Forbid skips while one runs, Replace stops it, Allow runs both', () => {
    const busy = state({
      lastScheduleTime: '2026-01-01T10:00:00.000Z',
      runs: [run('backup-1', 'running', '2026-01-01T10:00:00.000Z')],
    });
    const now = at('2026-01-01T11:00:01Z');
    const forbid = decideCronJob({
      cronJob: cronJob('schedule: "0 * * * *"'),
      specHash: 'h',
      state: busy,
      now,
      manual: false,
    });
    assert.deepEqual(forbid.start, []);
    assert.equal(forbid.skipped, true);
    assert.equal(forbid.state.skipped, 1);
    const replace = decideCronJob({
      cronJob: cronJob('schedule: "0 * * * *"\nconcurrencyPolicy: Replace'),
      specHash: 'h',
      state: busy,
      now,
      manual: false,
    });
    assert.deepEqual(
      replace.replace.map((r) => r.name),
      ['backup-1'],
    );
    assert.equal(replace.start.length, 1);
    const allow = decideCronJob({
      cronJob: cronJob('schedule: "0 * * * *"\nconcurrencyPolicy: Allow'),
      specHash: 'h',
      state: busy,
      now,
      manual: false,
    });
    assert.deepEqual(allow.replace, []);
    assert.equal(allow.start.length, 1);
  });

  void test('suspend: no run on schedule; berth job run still starts one', () => {
    const suspended = cronJob('schedule: "0 * * * *"\nsuspend: true');
    const idle = state({ lastScheduleTime: '2026-01-01T10:00:00.000Z' });
    const decision = decideCronJob({
      cronJob: suspended,
      specHash: 'h',
      state: idle,
      now: at('2026-01-01T11:00:01Z'),
      manual: false,
    });
    assert.deepEqual(decision.start, []);
    assert.equal(decision.state.nextRunAt, null, 'berth job ls shows no next run');
    const manual = decideCronJob({
      cronJob: suspended,
      specHash: 'h',
      state: idle,
      now: at('2026-01-01T11:00:01Z'),
      manual: true,
    });
    assert.equal(manual.start.length, 1);
    assert.equal(manual.start[0]?.scheduledAt, null);
  });

  void test('history limits prune the oldest finished runs of each outcome', () => {
    const limited = cronJob(
      'schedule: "0 * * * *"\nsuccessfulJobsHistoryLimit: 2\nfailedJobsHistoryLimit: 1',
    );
    const runs = [
      run('s1', 'succeeded', '2026-01-01T01:00:00.000Z', '2026-01-01T01:01:00.000Z'),
      run('f1', 'failed', '2026-01-01T02:00:00.000Z', '2026-01-01T02:01:00.000Z'),
      run('s2', 'succeeded', '2026-01-01T03:00:00.000Z', '2026-01-01T03:01:00.000Z'),
      run('f2', 'failed', '2026-01-01T04:00:00.000Z', '2026-01-01T04:01:00.000Z'),
      run('s3', 'succeeded', '2026-01-01T05:00:00.000Z', '2026-01-01T05:01:00.000Z'),
      run('r1', 'running', '2026-01-01T05:30:00.000Z'),
    ];
    const decision = decideCronJob({
      cronJob: limited,
      specHash: 'h',
      state: state({ lastScheduleTime: '2026-01-01T05:00:00.000Z', runs }),
      now: at('2026-01-01T05:40:00Z'),
      manual: false,
    });
    assert.deepEqual(decision.prune.map((r) => r.name).sort(), ['f1', 's1']);
    assert.deepEqual(
      decision.state.runs.map((r) => r.name),
      ['s2', 'f2', 's3', 'r1'],
    );
  });
});

void describe('berth plan: CronJobs', () => {
  void test('created, changed, unchanged with the next run, removed', () => {
    const hourly = cronJob('schedule: "0 * * * *"');
    const desired = {
      revision: 'r',
      services: [],
      configs: [],
      secrets: [],
      namespaces: [],
      cronJobs: [hourly],
    };
    const now = at('2026-01-01T10:30:00Z');
    assert.deepEqual(
      planCronJobs(desired, {}, now).map((c) => [c.name, c.action, c.nextRunAt]),
      [['backup', 'create', '2026-01-01T11:00:00.000Z']],
    );
    const scheduled = decideCronJob({
      cronJob: hourly,
      specHash: 'x',
      state: null,
      now,
      manual: false,
    }).state;
    const hash = planCronJobs(desired, { 'default/backup': { ...scheduled, templateHash: null } }, now);
    assert.equal(hash[0]?.action, 'unchanged');
    const changed = planCronJobs(
      desired,
      { 'default/backup': { ...scheduled, schedule: '0 3 * * *', templateHash: 'old' } },
      now,
    );
    assert.deepEqual(changed[0]?.changes, ['schedule', 'jobTemplate']);
    const removed = planCronJobs({ ...desired, cronJobs: [] }, { 'default/backup': scheduled }, now);
    assert.deepEqual(
      removed.map((c) => [c.name, c.action]),
      [['backup', 'remove']],
    );
    assert.deepEqual(cronJobLines([...planCronJobs(desired, {}, now), ...changed, ...removed]), [
      'CronJobs (scheduled by the operator):',
      '+ cronjob default/backup: create; "0 * * * *" (UTC), next run 2026-01-01T11:00:00.000Z',
      '~ cronjob default/backup: change (schedule, jobTemplate); "0 * * * *" (UTC), next run 2026-01-01T11:00:00.000Z',
      '- cronjob default/backup: remove; its runs are removed',
    ]);
  });
});
