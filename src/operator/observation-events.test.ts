import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeSnapshot, ObservedJobRun, ObservedReplica, ReplicaHealth } from '../api/types.js';
import { ObservationEvents } from './observation-events.js';

function replica(name: string, health: ReplicaHealth): ObservedReplica {
  return {
    ...{ name, id: name, node: 'a', namespace: 'default', service: 'web', slot: name.slice(-1) },
    ...{ specHash: 'h', revision: 'r', state: 'running', health, exitCode: null, restartCount: 0 },
    ...{ healthDetail: health === 'unhealthy' ? 'HTTP 404' : null, createdAt: '', startedAt: null },
    ...{ ports: [], specSummary: null },
  };
}

const SINCE = new Date('2024-01-01T10:00:00Z');

function run(
  name: string,
  attempt: number,
  exitCode: number | null,
  at = '2024-01-01T10:00:01Z',
): ObservedJobRun {
  return {
    ...{ name, node: 'a', namespace: 'default', job: 'migrate', attempt, specHash: 'h', revision: 'r' },
    ...{ state: exitCode === null ? 'running' : 'exited', exitCode, startedAt: at },
    finishedAt: exitCode === null ? null : at,
    output: exitCode === null ? null : 'boom\n',
  };
}

function node(
  replicas: ObservedReplica[],
  jobRuns: ObservedJobRun[] = [],
  status: NodeSnapshot['status'] = 'ready',
): { nodes: NodeSnapshot[] } {
  return {
    nodes: [
      {
        ...{ name: 'a', address: '127.0.0.1', labels: {}, capacity: { nanoCpus: 1, memoryBytes: 1 } },
        ...{ engineVersion: '1', status, images: [], replicas, jobRuns },
      },
    ],
  };
}

test('a health change is one event, however many observations repeat it; a down node changes nothing', () => {
  const watcher = new ObservationEvents();
  const steps: [ReturnType<typeof node>, string[]][] = [
    [node([replica('web.1', 'starting')]), []],
    [node([replica('web.1', 'healthy')]), []],
    [node([replica('web.1', 'healthy')]), []],
    [node([replica('web.1', 'unhealthy')]), ['healthy->unhealthy HTTP 404']],
    [node([replica('web.1', 'unhealthy')]), []],
    [node([], [], 'down'), []],
    [node([replica('web.1', 'unhealthy')]), []],
    [node([replica('web.1', 'healthy')]), ['unhealthy->healthy null']],
    [node([replica('web.1', 'healthy')]), []],
    [node([]), []],
    [node([replica('web.1', 'unhealthy')]), ['null->unhealthy HTTP 404']],
    [node([{ ...replica('web.1', 'unhealthy'), state: 'exited', healthDetail: 'container exited' }]), []],
    [node([replica('web.1', 'starting')]), []],
  ];
  for (const [observed, expected] of steps) {
    const seen = watcher.changes(observed).map((event) => {
      assert.equal(event.type, 'replica-health-changed');
      const data = event.data as { from: string | null; to: string; detail: string | null; node: string };
      assert.equal(data.node, 'a');
      return `${data.from}->${data.to} ${data.detail}`;
    });
    assert.deepEqual(seen, expected);
  }
});

test('job runs: started, then succeeded or failed with exit code and attempt, once each; runs before the start are not told', () => {
  const watcher = new ObservationEvents(SINCE);
  const types = (observed: ReturnType<typeof node>) =>
    watcher.changes(observed).map((event) => {
      const data = event.data as { attempt: number; exitCode: number | null; output: string | null };
      return `${event.type} #${data.attempt} ${data.exitCode} ${data.output !== null}`;
    });
  const old = run('old.1', 1, 1, '2024-01-01T09:59:59Z');
  assert.deepEqual(types(node([], [old])), []);
  assert.deepEqual(types(node([], [old, run('m.1', 1, null)])), ['job-run-started #1 null false']);
  assert.deepEqual(types(node([], [run('m.1', 1, null)])), []);
  assert.deepEqual(types(node([], [run('m.1', 1, 3)])), ['job-run-failed #1 3 true']);
  // A retry that started and ended between two observations.
  assert.deepEqual(types(node([], [run('m.1', 1, 3), run('m.2', 2, 0)])), [
    'job-run-started #2 null false',
    'job-run-succeeded #2 0 false',
  ]);
  assert.deepEqual(types(node([], [run('m.1', 1, 3), run('m.2', 2, 0)])), []);
});
