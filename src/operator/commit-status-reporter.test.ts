import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BerthError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import type { CommitStatus } from '../forge/commit-status.js';
import { ForgeError } from '../forge/forge-request.js';
import type { ForgeTarget } from '../forge/forge-target.js';
import { CommitStatusReporter } from './commit-status-reporter.js';
import type { ReconcileResult } from './reconcile-types.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const target: ForgeTarget = { kind: 'github', apiUrl: 'http://127.0.0.1:1', repo: 'o/r', token: 't' };

function result(
  outcome: ReconcileResult['outcome'],
  head: string,
  extra: Partial<ReconcileResult> = {},
): ReconcileResult {
  return {
    reconcileId: 'x',
    headRevision: head,
    targetRevision: head,
    outcome,
    reason: null,
    error: null,
    plan: null,
    rollout: null,
    rollback: null,
    ...extra,
  };
}

function recorder(failFirst: (status: CommitStatus, n: number) => Error | null = () => null) {
  const posted: string[] = [];
  let n = 0;
  let settle: () => void = () => undefined;
  const post = async (_t: ForgeTarget, sha: string, status: CommitStatus): Promise<void> => {
    const failure = failFirst(status, n++);
    if (failure) throw failure;
    posted.push(`${sha[0]} ${status.state} ${status.context} ${status.description}`);
    settle();
  };
  const until = (count: number) =>
    new Promise<void>((resolve) => {
      settle = () => posted.length >= count && resolve();
      settle();
    });
  return { posted, post, until };
}

test('pending when a rollout starts, success once deployed, posted once however often the operator reconciles', async () => {
  const r = recorder();
  const reporter = new CommitStatusReporter({
    target,
    context: 'berth/prod',
    log: silentLogger(),
    post: r.post,
  });
  reporter.rolloutStarted({ revision: A, kind: 'rollout', message: 'rolling out' });
  await r.until(1);
  reporter.reconciled(result('succeeded', A));
  reporter.reconciled(result('unchanged', A));
  reporter.reconciled(result('unchanged', A));
  await r.until(2);
  await reporter.close();
  assert.deepEqual(r.posted, [
    'a pending berth/prod rolling out to prod',
    'a success berth/prod deployed: the cluster runs this revision',
  ]);
});

test('a failed, rolled back or invalid head gets a failure with the reason; an infrastructure fault leaves it pending', async () => {
  const r = recorder();
  const reporter = new CommitStatusReporter({
    target,
    context: 'berth/c',
    log: silentLogger(),
    post: r.post,
  });
  const unhealthy = new BerthError('ERR_ROLLOUT_UNHEALTHY', 'web: replica exited with code 1');
  const invalid = new BerthError('ERR_MANIFEST_INVALID', 'web.yaml:3:1: unknown field "imag"');
  const lost = new BerthError('ERR_AGENT_UNREACHABLE', 'node n2 went away');
  reporter.reconciled(result('interrupted', A, { error: lost }));
  reporter.reconciled(result('failed', A, { error: lost, targetRevision: null }));
  reporter.reconciled(result('rolled back', A, { error: unhealthy, targetRevision: B }));
  await r.until(1);
  // The reconcile after a rollback finds the head recorded as failed and says it in other words.
  const again = new BerthError(
    'ERR_ROLLOUT_UNHEALTHY',
    'revision aaaaaaaaaaaa failed earlier: web: replica exited',
  );
  reporter.reconciled(result('failed', A, { error: again, targetRevision: B }));
  reporter.reconciled(result('failed', B, { error: invalid, targetRevision: null }));
  await r.until(2);
  // The next reconciles run the last good revision while the head stays refused: nothing new.
  reporter.reconciled(result('failed', B, { error: invalid, targetRevision: A }));
  reporter.reconciled(result('unchanged', B, { error: invalid, targetRevision: A }));
  await reporter.close();
  assert.deepEqual(r.posted, [
    'a failure berth/c rolled back: web: replica exited with code 1',
    'b failure berth/c invalid: web.yaml:3:1: unknown field "imag"',
  ]);
});

test('a git host answering 500 is retried with back-off; a newer status of the commit replaces a waiting one', async () => {
  const r = recorder((_s, n) => (n < 2 ? new ForgeError('500', false, true, 500) : null));
  const reporter = new CommitStatusReporter({
    target,
    context: 'berth/c',
    log: silentLogger(),
    post: r.post,
    retry: { firstMs: 20, maxMs: 40 },
  });
  reporter.rolloutStarted({ revision: A, kind: 'rollout', message: '' });
  reporter.reconciled(result('succeeded', A));
  await r.until(1);
  await reporter.close();
  assert.deepEqual(r.posted, ['a success berth/c deployed: the cluster runs this revision']);
});

test('a refused token is not retried, and the next statuses are still tried', async () => {
  const r = recorder((s) => (s.state === 'pending' ? new ForgeError('401', true, false, 401) : null));
  const reporter = new CommitStatusReporter({
    target,
    context: 'berth/c',
    log: silentLogger(),
    post: r.post,
  });
  reporter.rolloutStarted({ revision: A, kind: 'rollout', message: '' });
  reporter.rolloutStarted({ revision: B, kind: 'rollout', message: '' });
  reporter.reconciled(result('succeeded', B));
  await r.until(1);
  await reporter.close();
  assert.deepEqual(r.posted, ['b success berth/c deployed: the cluster runs this revision']);
});
