import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LABELS } from '../api/types.js';
import { HTTP_CHECK_LABEL, runtimeContainer } from '../../test/agent/runtime-container-fixture.js';
import { exitReason, replicaHealth, toObservedReplica } from './observed-replica.js';

const withCheck = { ...runtimeContainer().labels, [LABELS.healthcheck]: HTTP_CHECK_LABEL };

describe('observed replica', () => {
  test('identity comes from the labels; the node from the agent; a broken summary is null', () => {
    const observed = toObservedReplica(
      runtimeContainer({ labels: { ...runtimeContainer().labels, [LABELS.specSummary]: '{not json' } }),
      'node-1',
      null,
    );
    assert.deepEqual(
      [
        observed.namespace,
        observed.service,
        observed.slot,
        observed.specHash,
        observed.revision,
        observed.node,
      ],
      ['default', 'web', '1', 'abc', 'r1', 'node-1'],
    );
    assert.equal(observed.specSummary, null);
    const summary = toObservedReplica(
      runtimeContainer({
        labels: { ...runtimeContainer().labels, [LABELS.specSummary]: '{"image":"web:1"}' },
      }),
      'node-1',
      null,
    );
    assert.deepEqual(summary.specSummary, { image: 'web:1' });
  });

  // Each row: the container, the prober's status, and the health reported.
  const rows: [
    string,
    Parameters<typeof runtimeContainer>[0],
    Parameters<typeof replicaHealth>[1],
    string,
  ][] = [
    ['running without a check', {}, null, 'none'],
    ['running with a check, not probed yet', { labels: withCheck }, null, 'starting'],
    ['running with a check, probed', { labels: withCheck }, { health: 'healthy', detail: null }, 'healthy'],
    ['created with a check', { state: 'created', labels: withCheck }, null, 'starting'],
    ['created without a check', { state: 'created' }, null, 'none'],
    ['exited', { state: 'exited', exitCode: 1 }, null, 'unhealthy'],
  ];
  for (const [what, container, probe, health] of rows) {
    test(`health of a container ${what}: ${health}`, () => {
      assert.equal(replicaHealth(runtimeContainer(container), probe).health, health);
    });
  }

  test('the exit reason says what happened', () => {
    assert.equal(
      exitReason(runtimeContainer({ state: 'exited', exitCode: 137, oomKilled: true, restartCount: 2 })),
      'container exited, exit code 137, killed: out of memory, 2 restarts',
    );
    assert.equal(
      exitReason(runtimeContainer({ state: 'running' }), 3),
      'container exited and was restarted, exit code 3',
    );
    assert.equal(
      exitReason(runtimeContainer({ state: 'dead', error: 'no such file' })),
      'container dead, no such file',
    );
    assert.equal(exitReason(runtimeContainer({ state: 'removing' })), 'container being removed');
  });
});
