import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NodeAgent, NodeSnapshot, ObservedJobRun, ReplicaRequest } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import { normaliseJob } from '../manifests/normalise.js';
import type { DesiredState, WrittenJob } from '../manifests/types.js';
import { jobRecordKey, type JobRecord } from '../plan/job-plan.js';
import { runJobs, type JobRecordStore } from './run-jobs.js';

/**
 * A node whose Job runs end by themselves: each run finishes after `snapshotsToFinish` snapshots
 * with the exit code `exitCodeOf(attempt)`. Records what was asked of it.
 */
function fakeNode(exitCodeOf: (attempt: number) => number, snapshotsToFinish = 2) {
  const runs = new Map<string, ObservedJobRun & { age: number }>();
  const ensured: ReplicaRequest[] = [];
  let mostAtOnce = 0;
  const agent = {
    name: 'n1',
    snapshot: () => {
      for (const run of runs.values()) {
        if (run.state !== 'running' || ++run.age < snapshotsToFinish) continue;
        Object.assign(run, {
          state: 'exited',
          exitCode: exitCodeOf(run.attempt),
          finishedAt: new Date().toISOString(),
          output: `run ${run.attempt}\n`,
        });
      }
      const snapshot: NodeSnapshot = {
        name: 'n1',
        address: '127.0.0.1',
        labels: {},
        capacity: { nanoCpus: 0, memoryBytes: 0 },
        engineVersion: 'fake',
        status: 'ready',
        images: [],
        replicas: [],
        jobRuns: [...runs.values()].map(({ age: _age, ...run }) => run),
      };
      return Promise.resolve(snapshot);
    },
    ensureReplica: (request: ReplicaRequest) => {
      ensured.push(request);
      if (request.image === 'missing')
        throw new BerthError('ERR_IMAGE_NOT_FOUND', 'image missing is not present');
      if (!runs.has(request.name)) {
        runs.set(request.name, {
          name: request.name,
          node: 'n1',
          namespace: request.namespace,
          job: request.job?.name ?? '',
          attempt: request.job?.attempt ?? 0,
          specHash: request.specHash,
          revision: request.revision,
          state: 'running',
          exitCode: null,
          startedAt: new Date().toISOString(),
          finishedAt: null,
          output: null,
          age: 0,
        });
      }
      mostAtOnce = Math.max(mostAtOnce, [...runs.values()].filter((run) => run.state === 'running').length);
      return Promise.resolve({} as never);
    },
    removeReplica: (name: string) => {
      runs.delete(name);
      return Promise.resolve();
    },
  } as unknown as NodeAgent;
  return { agent, ensured, runs, mostAtOnce: () => mostAtOnce };
}

function memoryStore(): JobRecordStore & { records: Record<string, JobRecord> } {
  const records: Record<string, JobRecord> = {};
  return {
    records,
    read: () => Promise.resolve(structuredClone(records)),
    write: (written) => {
      for (const record of written)
        records[jobRecordKey(record.namespace, record.name, record.specHash)] = structuredClone(record);
      return Promise.resolve();
    },
  };
}

function desiredWith(spec: Partial<WrittenJob['spec']>): DesiredState {
  const job = normaliseJob({
    apiVersion: 'berth/v1',
    kind: 'Job',
    metadata: { name: 'migrate', namespace: 'shop' },
    spec: { image: 'busybox:1.36', ...spec },
  });
  return { revision: 'r1', services: [], jobs: [job], configs: [], secrets: [], namespaces: [] };
}

const options = { readSecret: null, log: silentLogger(), backoff: { baseMs: 1, maxMs: 4 }, pollMs: 1 };

void describe('runJobs (a fake node)', () => {
  void test('runs completions with parallelism, each run once, and records every run', async () => {
    const node = fakeNode(() => 0);
    const store = memoryStore();
    const finished: number[] = [];
    const result = await runJobs({
      ...options,
      agents: new Map([['n1', node.agent]]),
      desired: desiredWith({ completions: 3, parallelism: 2 }),
      records: store,
      onRunFinished: (_job, _record, run) => {
        finished.push(run.attempt);
        return Promise.resolve();
      },
    });
    const record = result.records.get('shop/migrate');
    assert.equal(record?.phase, 'succeeded');
    assert.equal(record.succeeded, 3);
    assert.deepEqual([...new Set(node.ensured.map((r) => r.job?.attempt))], [1, 2, 3]);
    assert.equal(node.mostAtOnce(), 2);
    assert.deepEqual(finished.sort(), [1, 2, 3]);
    assert.ok(node.ensured.every((r) => r.restart.condition === 'none' && r.ports.length === 0));

    const again = await runJobs({
      ...options,
      agents: new Map([['n1', node.agent]]),
      desired: desiredWith({ completions: 3, parallelism: 2 }),
      records: store,
    });
    assert.equal(again.records.get('shop/migrate')?.phase, 'succeeded');
    assert.equal(new Set(node.ensured.map((r) => r.name)).size, 3, 'nothing runs again');
  });

  void test('a failing Job is retried backoffLimit times, then fails; a refused run counts as failed', async () => {
    const node = fakeNode(() => 1);
    const result = await runJobs({
      ...options,
      agents: new Map([['n1', node.agent]]),
      desired: desiredWith({ backoffLimit: 2 }),
      records: memoryStore(),
    });
    assert.equal(result.records.get('shop/migrate')?.phase, 'failed');
    assert.equal(new Set(node.ensured.map((r) => r.name)).size, 3);

    const refused = fakeNode(() => 0);
    const missing = await runJobs({
      ...options,
      agents: new Map([['n1', refused.agent]]),
      desired: desiredWith({ image: 'missing', backoffLimit: 1 }),
      records: memoryStore(),
    });
    const record = missing.records.get('shop/migrate');
    assert.equal(record?.phase, 'failed');
    assert.match(record.reason ?? '', /image missing is not present/);
  });

  void test('runs of a Job that left git are removed', async () => {
    const node = fakeNode(() => 0, 1000);
    const store = memoryStore();
    await node.agent.ensureReplica({
      name: 'berth.shop.gone.run-1.aaaaaaaaaaaa',
      namespace: 'shop',
      job: { name: 'gone', attempt: 1 },
    } as ReplicaRequest);
    const desired = { ...desiredWith({}), jobs: [] };
    const result = await runJobs({
      ...options,
      agents: new Map([['n1', node.agent]]),
      desired,
      records: store,
    });
    assert.equal(result.records.size, 0);
    assert.equal(node.runs.size, 0);
  });
});
