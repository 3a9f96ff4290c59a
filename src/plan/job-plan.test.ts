import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NodeSnapshot, ObservedJobRun } from '../api/types.js';
import { normaliseJob } from '../manifests/normalise.js';
import type { JobSpec, WrittenJob } from '../manifests/types.js';
import {
  backoffDelayMs,
  decideJob,
  JOB_RUN_LOST_AFTER_MS,
  jobRunName,
  planJobs,
  succeededRecordsOf,
  type JobDecisionInput,
  type JobRecord,
} from './job-plan.js';

const HASH = 'a'.repeat(64);
const T0 = Date.parse('2026-01-01T00:00:00Z');
const backoff = { baseMs: 10_000, maxMs: 360_000 };

function job(spec: Partial<WrittenJob['spec']> = {}): JobSpec {
  return normaliseJob({
    apiVersion: 'berth/v1',
    kind: 'Job',
    metadata: { name: 'migrate', namespace: 'shop' },
    spec: { image: 'busybox:1.36', ...spec },
  });
}

function node(name: string, status: NodeSnapshot['status'] = 'ready'): NodeSnapshot {
  return {
    name,
    address: '127.0.0.1',
    labels: {},
    capacity: { nanoCpus: 0, memoryBytes: 0 },
    engineVersion: '',
    status,
    images: [],
    replicas: [],
  };
}

function observed(
  attempt: number,
  state: 'running' | 'exited',
  exitCode: number | null = null,
): ObservedJobRun {
  return {
    name: jobRunName('shop', 'migrate', HASH, attempt),
    node: 'n1',
    namespace: 'shop',
    job: 'migrate',
    attempt,
    specHash: HASH,
    revision: 'r1',
    state,
    exitCode,
    startedAt: new Date(T0).toISOString(),
    finishedAt: state === 'exited' ? new Date(T0 + 1000).toISOString() : null,
    output: state === 'exited' ? 'done\n' : null,
  };
}

function input(overrides: Partial<JobDecisionInput>): JobDecisionInput {
  return {
    job: job(),
    specHash: HASH,
    revision: 'r1',
    record: null,
    runs: [],
    nodes: [node('n1')],
    now: T0,
    backoff,
    ...overrides,
  };
}

void describe('decideJob', () => {
  void test('a Job never run starts its first run', () => {
    const decision = decideJob(input({}));
    assert.deepEqual(decision.start, [
      { attempt: 1, name: jobRunName('shop', 'migrate', HASH, 1), node: 'n1' },
    ]);
    assert.equal(decision.record.phase, 'running');
    assert.equal(decision.record.lastAttempt, 1);
  });

  void test('parallelism bounds the runs at once, completions the runs in all', () => {
    const spec = job({ completions: 3, parallelism: 2 });
    const first = decideJob(input({ job: spec }));
    assert.deepEqual(
      first.start.map((s) => s.attempt),
      [1, 2],
    );
    const again = decideJob(
      input({ job: spec, record: first.record, runs: [observed(1, 'running'), observed(2, 'running')] }),
    );
    assert.deepEqual(again.start, [], 'two run already');
    const oneDone = decideJob(
      input({ job: spec, record: again.record, runs: [observed(1, 'exited', 0), observed(2, 'running')] }),
    );
    assert.deepEqual(
      oneDone.start.map((s) => s.attempt),
      [3],
    );
    assert.equal(oneDone.finished.length, 1);
    const allDone = decideJob(
      input({
        job: spec,
        record: oneDone.record,
        runs: [observed(1, 'exited', 0), observed(2, 'exited', 0), observed(3, 'exited', 0)],
      }),
    );
    assert.deepEqual(allDone.start, []);
    assert.equal(allDone.record.phase, 'succeeded');
    assert.equal(allDone.record.succeeded, 3);
  });

  void test('a succeeded Job is never run again, even with its containers gone', () => {
    const done = decideJob(input({ record: decideJob(input({})).record, runs: [observed(1, 'exited', 0)] }));
    assert.equal(done.record.phase, 'succeeded');
    const later = decideJob(input({ record: done.record, runs: [], now: T0 + 86_400_000 * 2 }));
    assert.deepEqual(later.start, []);
    assert.equal(later.record.phase, 'succeeded');
  });

  void test('a running run found by its labels is adopted, not started again (state lost)', () => {
    const decision = decideJob(input({ record: null, runs: [observed(1, 'running')] }));
    assert.deepEqual(decision.start, []);
    assert.equal(decision.record.lastAttempt, 1);
    const finished = decideJob(input({ record: null, runs: [observed(1, 'exited', 0)] }));
    assert.equal(finished.record.phase, 'succeeded', 'a finished run is read for its exit code');
  });

  void test('a run recorded but never seen is asked for again under the same name', () => {
    const first = decideJob(input({}));
    const again = decideJob(input({ record: first.record, runs: [] }));
    assert.deepEqual(again.start, first.start);
    assert.equal(again.record.lastAttempt, 1);
  });

  void test('a run on a node that is down is waited for, then run again elsewhere, not counted as failed', () => {
    const spec = job({ backoffLimit: 0 });
    const first = decideJob(input({ job: spec }));
    const seen = decideJob(input({ job: spec, record: first.record, runs: [observed(1, 'running')] }));
    const nodes = [node('n1', 'down'), node('n2')];
    const down = decideJob(input({ job: spec, record: seen.record, runs: [], nodes }));
    assert.deepEqual(down.start, [], 'a node down for a moment may come back');
    assert.equal(down.wakeInMs, JOB_RUN_LOST_AFTER_MS);
    const lost = decideJob(
      input({ job: spec, record: down.record, runs: [], nodes, now: T0 + JOB_RUN_LOST_AFTER_MS }),
    );
    assert.deepEqual(
      lost.start.map((s) => [s.attempt, s.node]),
      [[2, 'n2']],
    );
    assert.deepEqual(
      lost.finished.map((r) => [r.attempt, r.outcome]),
      [[1, 'lost']],
    );
    assert.equal(lost.record.failed, 0, 'an infrastructure fault is not counted against backoffLimit');
    assert.equal(lost.record.phase, 'running');

    // The node comes back with the lost run still running: it goes; the run elsewhere counts.
    const back = decideJob(
      input({
        job: spec,
        record: lost.record,
        runs: [observed(1, 'running'), { ...observed(2, 'exited', 0), node: 'n2' }],
        now: T0 + JOB_RUN_LOST_AFTER_MS + 1,
      }),
    );
    assert.deepEqual(
      back.remove.map((r) => [r.name, r.reason]),
      [[jobRunName('shop', 'migrate', HASH, 1), 'superseded']],
    );
    assert.equal(back.record.succeeded, 1);
    assert.equal(back.record.phase, 'succeeded');
    assert.deepEqual(back.start, []);
  });

  void test('a node back within the grace keeps its run', () => {
    const first = decideJob(input({}));
    const seen = decideJob(input({ record: first.record, runs: [observed(1, 'running')] }));
    const down = decideJob(input({ record: seen.record, runs: [], nodes: [node('n1', 'down'), node('n2')] }));
    const back = decideJob(
      input({ record: down.record, runs: [observed(1, 'running')], now: T0 + JOB_RUN_LOST_AFTER_MS }),
    );
    assert.deepEqual(back.start, []);
    assert.deepEqual(back.remove, []);
    assert.equal(back.record.runs[0]?.nodeDownSince, undefined);
    assert.equal(back.record.runs[0]?.outcome, 'running');
  });

  void test('failures are retried after a doubling back-off, then the Job fails after backoffLimit retries', () => {
    const spec = job({ backoffLimit: 2 });
    let record: JobRecord | null = null;
    let runs: ObservedJobRun[] = [];
    let now = T0;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const decision = decideJob(input({ job: spec, record, runs, now }));
      assert.deepEqual(
        decision.start.map((s) => s.attempt),
        [attempt],
      );
      runs = [...runs, { ...observed(attempt, 'exited', 3), finishedAt: new Date(now).toISOString() }];
      const failed = decideJob(input({ job: spec, record: decision.record, runs, now }));
      record = failed.record;
      if (attempt < 3) {
        assert.deepEqual(failed.start, [], 'waits out the back-off');
        assert.equal(failed.wakeInMs, backoffDelayMs(attempt, backoff));
        now += failed.wakeInMs ?? 0;
      } else {
        assert.equal(failed.record.phase, 'failed');
        assert.match(failed.record.reason ?? '', /3 runs failed.*exit code 3/);
      }
    }
    assert.deepEqual(decideJob(input({ job: spec, record, runs, now: now + 3_600_000 })).start, []);
  });

  void test('back-off doubles from the base and stops at the cap', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoffDelayMs(n, backoff)),
      [10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 360_000, 360_000],
    );
  });

  void test('past activeDeadline the Job fails and its running containers are removed', () => {
    const spec = job({ activeDeadline: '1m' });
    const first = decideJob(input({ job: spec }));
    const late = decideJob(
      input({ job: spec, record: first.record, runs: [observed(1, 'running')], now: T0 + 60_000 }),
    );
    assert.equal(late.record.phase, 'failed');
    assert.deepEqual(late.remove, [{ name: first.start[0]?.name, node: 'n1', reason: 'deadline' }]);
  });

  void test('finished containers are removed once their time to live is over; runs of an older spec stop', () => {
    const spec = job({ ttlAfterFinished: '1h' });
    const done = decideJob(input({ job: spec, record: null, runs: [observed(1, 'exited', 0)] }));
    assert.deepEqual(done.remove, []);
    assert.equal(done.wakeInMs, 3_600_000 - 0 + 1000);
    const expired = decideJob(
      input({ job: spec, record: done.record, runs: [observed(1, 'exited', 0)], now: T0 + 3_601_000 }),
    );
    assert.equal(expired.remove[0]?.reason, 'finished');
    const old = { ...observed(1, 'running'), specHash: 'b'.repeat(64), name: 'old' };
    const changed = decideJob(input({ job: spec, record: null, runs: [old] }));
    assert.deepEqual(changed.remove, [{ name: 'old', node: 'n1', reason: 'superseded' }]);
    assert.equal(changed.start.length, 1, 'a changed spec runs the Job again');
  });
});

void describe('planJobs', () => {
  void test('a Job runs unless it succeeded at this spec; it comes before the Services that depend on it', () => {
    const migrate = job();
    const desired = {
      revision: 'r2',
      services: [{ ...job().container, name: 'web', dependsOn: [{ job: 'migrate' }] }],
      jobs: [migrate],
      configs: [],
      secrets: [],
      namespaces: [],
    };
    assert.deepEqual(
      planJobs(desired, {}).map((j) => [j.name, j.action, j.before]),
      [['migrate', 'run', ['shop/web']]],
    );
    const succeeded = succeededRecordsOf(desired);
    assert.equal(planJobs(desired, succeeded)[0]?.action, 'unchanged');
    const changed = { ...desired, jobs: [job({ command: ['true'] })] };
    assert.equal(planJobs(changed, succeeded)[0]?.action, 'run', 'a changed spec runs again');
  });
});
