import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normaliseJob, normaliseService } from '../manifests/normalise.js';
import type { DesiredState, WrittenJob } from '../manifests/types.js';
import { jobRecordKey, jobSpecHash, type JobRecord } from './job-plan.js';
import { jobStatusRows } from './job-status.js';

function job(name: string, spec: Partial<WrittenJob['spec']> = {}) {
  return normaliseJob({
    apiVersion: 'berth/v1',
    kind: 'Job',
    metadata: { name, namespace: 'shop' },
    spec: { image: 'busybox:1.36', ...spec },
  });
}

const web = normaliseService({
  apiVersion: 'berth/v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'shop' },
  spec: { image: 'busybox:1.36', dependsOn: [{ job: 'migrate' }] },
});

const desired: DesiredState = {
  revision: 'r2',
  services: [web],
  jobs: [job('migrate', { completions: 2 }), job('seed'), job('backfill')],
  configs: [],
  secrets: [],
  namespaces: [],
};

function record(name: string, specHash: string, over: Partial<JobRecord>): JobRecord {
  return {
    namespace: 'shop',
    name,
    specHash,
    revision: 'r1',
    phase: 'succeeded',
    reason: null,
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:00:05.000Z',
    succeeded: 1,
    failed: 0,
    lastAttempt: 1,
    runs: [],
    ...over,
  };
}

void describe('jobStatusRows', () => {
  void test('each Job of git at its spec: succeeded, failed, or pending when not run at this spec', () => {
    const [migrate, seed, backfill] = desired.jobs!.map((j) => jobSpecHash(j, desired));
    const records = {
      [jobRecordKey('shop', 'migrate', migrate!)]: record('migrate', migrate!, {
        succeeded: 2,
        lastAttempt: 3,
        failed: 1,
        runs: [
          {
            attempt: 3,
            name: 'run-3',
            node: 'n2',
            outcome: 'succeeded',
            exitCode: 0,
            startedAt: '2026-01-01T00:00:03.000Z',
            finishedAt: '2026-01-01T00:00:05.000Z',
            durationMs: 2000,
            output: 'ok',
            seen: true,
          },
        ],
      }),
      [jobRecordKey('shop', 'seed', seed!)]: record('seed', seed!, {
        phase: 'failed',
        reason: 'exit code 3',
      }),
      // An older spec of backfill succeeded: the spec in git has not run.
      [jobRecordKey('shop', 'backfill', 'b'.repeat(64))]: record('backfill', 'b'.repeat(64), {}),
    };
    const rows = jobStatusRows(desired, records);
    assert.deepEqual(
      rows.map((r) => [r.name, r.state, r.completions.succeeded, r.completions.required, r.failed, r.before]),
      [
        ['backfill', 'pending', 0, 1, 0, []],
        ['migrate', 'succeeded', 2, 2, 1, ['shop/web']],
        ['seed', 'failed', 1, 1, 0, []],
      ],
    );
    assert.equal(rows[0]?.specHash, backfill!.slice(0, 12));
    assert.deepEqual(rows[1]?.lastRun, {
      attempt: 3,
      at: '2026-01-01T00:00:05.000Z',
      node: 'n2',
      outcome: 'succeeded',
      exitCode: 0,
    });
    assert.equal(rows[2]?.reason, 'exit code 3');
  });

  void test('a run of another spec that runs now is shown; without a spec, the newest record of each Job', () => {
    const other = 'c'.repeat(64);
    const records = {
      [jobRecordKey('shop', 'seed', other)]: record('seed', other, {
        phase: 'running',
        succeeded: 0,
        completions: 3,
        finishedAt: null,
      }),
      [jobRecordKey('shop', 'old', 'd'.repeat(64))]: record('old', 'd'.repeat(64), {}),
      [jobRecordKey('shop', 'old', 'e'.repeat(64))]: record('old', 'e'.repeat(64), {
        finishedAt: '2026-02-01T00:00:00.000Z',
      }),
    };
    const seed = jobStatusRows(desired, records).find((r) => r.name === 'seed');
    assert.equal(seed?.state, 'running');
    assert.deepEqual(seed?.completions, { succeeded: 0, required: 3 });
    assert.equal(seed?.specHash, other.slice(0, 12));
    assert.deepEqual(
      jobStatusRows(null, records).map((r) => [r.name, r.state, r.specHash]),
      [
        ['old', 'succeeded', 'e'.repeat(12)],
        ['seed', 'running', other.slice(0, 12)],
      ],
    );
  });
});
