import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventBus } from './event-bus.js';
import { rolloutProgress } from './overview.js';

test('the newest rollout as the event stream tells it: running until its reconcile finished', () => {
  const bus = new EventBus();
  assert.equal(rolloutProgress(bus.since(0)), null);
  bus.publish('reconcile-started');
  bus.publish('rollout-started', { revision: 'r1', kind: 'rollout', message: 'rolling out r1' });
  bus.publish('replica-healthy', { service: 'ns/web' });
  assert.deepEqual(
    { ...rolloutProgress(bus.since(0)), startedAt: null },
    {
      revision: 'r1',
      kind: 'rollout',
      message: 'rolling out r1',
      startedAt: null,
      outcome: null,
      reason: null,
      finishedAt: null,
    },
  );
  bus.publish('reconcile-finished', { outcome: 'succeeded', reason: null });
  bus.publish('reconcile-finished', { outcome: 'unchanged', reason: null });
  const done = rolloutProgress(bus.since(0));
  assert.equal(done?.outcome, 'succeeded', 'the reconcile that ran the rollout, not a later one');
  assert.notEqual(done?.finishedAt, null);
  // A rollback within the same reconcile is the newest rollout; it ends with that reconcile.
  bus.publish('rollout-started', { revision: 'r2', kind: 'rollout', message: 'rolling out r2' });
  bus.publish('rollout-started', { revision: 'r1', kind: 'rollback', message: 'rolling back to r1' });
  bus.publish('reconcile-finished', { outcome: 'rolled back', reason: 'r2: never healthy' });
  const back = rolloutProgress(bus.since(0));
  assert.equal(back?.kind, 'rollback');
  assert.equal(back?.outcome, 'rolled back');
  assert.equal(back?.reason, 'r2: never healthy');
});
