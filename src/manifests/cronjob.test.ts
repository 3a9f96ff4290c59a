import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { firesBetween, nextFireAfter, parseCronSchedule } from './cron-schedule.js';
import { loadManifests } from './load.js';
import type { LoadResult, ManifestProblem } from './types.js';

const file = (path: string, text: string) => ({ path, content: new TextEncoder().encode(text) });

function problemsOf(result: LoadResult): string[] {
  assert.equal(result.ok, false, 'expected problems');
  return (result as { problems: ManifestProblem[] }).problems.map(
    (p) => `${p.file}:${p.line}:${p.col}: ${p.message}`,
  );
}

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

void describe('kind: CronJob', () => {
  void test('loads with every default applied', () => {
    const result = loadManifests(
      [
        file(
          'cron.yaml',
          `apiVersion: berth/v1
kind: CronJob
metadata: { name: backup }
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    image: busybox:1.36
    command: [sh, -c, 'exit 0']
`,
        ),
      ],
      { revision: 'r1' },
    );
    assert.ok(result.ok, JSON.stringify(result));
    const [cron] = result.desired.cronJobs ?? [];
    assert.ok(cron);
    assert.equal(cron.name, 'backup');
    assert.equal(cron.timeZone, 'UTC');
    assert.equal(cron.concurrencyPolicy, 'Forbid');
    assert.equal(cron.startingDeadlineMs, null);
    assert.equal(cron.successfulJobsHistoryLimit, 3);
    assert.equal(cron.failedJobsHistoryLimit, 1);
    assert.equal(cron.suspend, false);
    assert.equal(cron.jobTemplate.name, 'backup');
    assert.equal(cron.jobTemplate.completions, 1);
    assert.deepEqual(cron.jobTemplate.container.restart, { condition: 'none', maxAttempts: 0 });
  });

  void test('a bad schedule, an unknown time zone and template problems are reported with file:line:col', () => {
    const result = loadManifests(
      [
        file(
          'cron.yaml',
          `apiVersion: berth/v1
kind: CronJob
metadata: { name: backup }
spec:
  schedule: "61 * * * *"
  timeZone: Mars/Olympus
  startingDeadline: 5m
  jobTemplate:
    image: busybox:1.36
    secrets: [{ source: nope, key: x }]
    replicas: 2
`,
        ),
      ],
      { revision: 'r1' },
    );
    const problems = problemsOf(result);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0] ?? '', /^cron\.yaml:11:5: spec\.jobTemplate: unknown field "replicas"/);
    const fixed = loadManifests(
      [
        file(
          'cron.yaml',
          `apiVersion: berth/v1
kind: CronJob
metadata: { name: backup }
spec:
  schedule: "61 * * * *"
  timeZone: Mars/Olympus
  jobTemplate:
    image: busybox:1.36
    secrets: [{ source: nope, key: x }]
`,
        ),
      ],
      { revision: 'r1' },
    );
    assert.deepEqual(problemsOf(fixed), [
      'cron.yaml:5:13: spec.schedule: "61 * * * *" is not a valid schedule (minute: 61 is a invalid expression for minute); node-cron syntax: "minute hour day-of-month month day-of-week", an optional leading seconds field',
      'cron.yaml:6:13: spec.timeZone: unknown time zone "Mars/Olympus"; use an IANA name such as "Europe/Paris" or "America/New_York"',
      'cron.yaml:9:25: spec.jobTemplate.secrets[0].source: Secret "nope" not found in namespace "default"',
    ]);
  });
});

void describe('next fire time, with the clock passed in', () => {
  const table: { schedule: string; timeZone: string; after: string; next: string | null }[] = [
    // 09:00 in New York is 14:00Z in winter (EST, -5) and 13:00Z in summer (EDT, -4).
    {
      schedule: '0 9 * * *',
      timeZone: 'America/New_York',
      after: '2026-01-10T12:00:00Z',
      next: '2026-01-10T14:00:00.000Z',
    },
    {
      schedule: '0 9 * * *',
      timeZone: 'America/New_York',
      after: '2026-01-10T14:00:00Z',
      next: '2026-01-11T14:00:00.000Z',
    },
    {
      schedule: '0 9 * * *',
      timeZone: 'America/New_York',
      after: '2026-07-10T12:00:00Z',
      next: '2026-07-10T13:00:00.000Z',
    },
    {
      schedule: '0 3 * * *',
      timeZone: 'UTC',
      after: '2026-07-10T12:00:00Z',
      next: '2026-07-11T03:00:00.000Z',
    },
    // Paris springs forward at 02:00 on 29 March 2026: 02:30 does not exist that day.
    {
      schedule: '30 2 * * *',
      timeZone: 'Europe/Paris',
      after: '2026-03-28T12:00:00Z',
      next: '2026-03-30T00:30:00.000Z',
    },
    // New York falls back on 1 November 2026: 01:30 happens twice, the first (EDT) counts.
    {
      schedule: '30 1 * * *',
      timeZone: 'America/New_York',
      after: '2026-11-01T00:00:00Z',
      next: '2026-11-01T05:30:00.000Z',
    },
    {
      schedule: '*/2 * * * * *',
      timeZone: 'UTC',
      after: '2026-07-10T23:59:59Z',
      next: '2026-07-11T00:00:00.000Z',
    },
    {
      schedule: '0 0 * * 1#2',
      timeZone: 'UTC',
      after: '2026-01-01T00:00:00Z',
      next: '2026-01-12T00:00:00.000Z',
    },
    {
      schedule: '0 0 L * *',
      timeZone: 'Asia/Tokyo',
      after: '2026-02-01T00:00:00Z',
      next: '2026-02-27T15:00:00.000Z',
    },
    {
      schedule: '0 12 * * mon-fri',
      timeZone: 'UTC',
      after: '2026-01-10T00:00:00Z',
      next: '2026-01-12T12:00:00.000Z',
    },
  ];
  for (const row of table) {
    void test(`${row.schedule} in ${row.timeZone} after ${row.after}`, () => {
      const schedule = parseCronSchedule(row.schedule, row.timeZone);
      assert.equal(iso(nextFireAfter(schedule, at(row.after))), row.next);
    });
  }

  void test('fires between two instants: the latest, and how many', () => {
    const hourly = parseCronSchedule('0 * * * *', 'UTC');
    assert.deepEqual(firesBetween(hourly, at('2026-01-01T00:00:00Z'), at('2026-01-01T05:30:00Z')), {
      latest: at('2026-01-01T05:00:00Z'),
      count: 5,
    });
    assert.deepEqual(firesBetween(hourly, at('2026-01-01T00:00:00Z'), at('2026-01-01T00:59:59Z')), {
      latest: null,
      count: 0,
    });
    // Past the count limit the latest is still exact.
    const everySecond = parseCronSchedule('* * * * * *', 'UTC');
    const many = firesBetween(everySecond, at('2026-01-01T00:00:00Z'), at('2026-01-03T07:00:00.5Z'), 10);
    assert.deepEqual(many, { latest: at('2026-01-03T07:00:00Z'), count: 10 });
  });
});
