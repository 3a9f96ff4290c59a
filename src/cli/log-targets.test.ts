import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeSnapshot, ObservedJobRun } from '../api/types.js';
import { parseLogSelector, selectLogTargets } from './log-targets.js';

test('a service, a namespaced service, a Job and a namespaced Job; anything else is refused', () => {
  assert.deepEqual(parseLogSelector('web'), { kind: 'service', namespace: 'default', name: 'web' });
  assert.deepEqual(parseLogSelector('shop/web'), { kind: 'service', namespace: 'shop', name: 'web' });
  assert.deepEqual(parseLogSelector('job/migrate'), { kind: 'job', namespace: 'default', name: 'migrate' });
  assert.deepEqual(parseLogSelector('shop/job/migrate'), { kind: 'job', namespace: 'shop', name: 'migrate' });
  for (const bad of ['', 'shop/', 'a/b/c', 'job/', 'shop/job/migrate/x']) {
    assert.throws(() => parseLogSelector(bad), /names no service nor Job/, bad);
  }
});

test("a Job's runs on every node, in attempt order, led by job/NAME#ATTEMPT@NODE", () => {
  const run = (name: string, node: string, attempt: number, job = 'migrate'): ObservedJobRun => ({
    ...{ name, node, namespace: 'shop', job, attempt, specHash: 'h', revision: 'r' },
    ...{ state: attempt === 3 ? 'running' : 'exited', exitCode: null, startedAt: null, finishedAt: null },
    output: null,
  });
  const snapshot = (name: string, jobRuns: ObservedJobRun[]): NodeSnapshot => ({
    ...{ name, address: '', labels: {}, capacity: { nanoCpus: 1, memoryBytes: 1 }, engineVersion: '' },
    ...{ status: 'ready', images: [], replicas: [], jobRuns },
  });
  const observed = {
    nodes: [
      snapshot('b', [run('m3', 'b', 3), run('m1', 'b', 1), run('other', 'b', 1, 'seed')]),
      snapshot('a', [run('m2', 'a', 2)]),
    ],
  };
  const targets = selectLogTargets(observed, parseLogSelector('shop/job/migrate'), null);
  assert.deepEqual(
    targets.map((t) => [t.prefix, t.name, t.running, t.run]),
    [
      ['shop/job/migrate#1@b', 'm1', false, true],
      ['shop/job/migrate#2@a', 'm2', false, true],
      ['shop/job/migrate#3@b', 'm3', true, true],
    ],
  );
  assert.deepEqual(
    selectLogTargets(observed, parseLogSelector('shop/job/migrate'), 'a').map((t) => t.name),
    ['m2'],
  );
});
