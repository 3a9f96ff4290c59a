import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BerthError, type ErrorCode } from '../core/errors.js';
import { isHealthy, type Condition } from './conditions.js';
import {
  backoffMs,
  decideNextAction,
  initialReconcileStatus,
  rolloutStarted,
  type NextAction,
  type ReconcileReport,
  type ReconcileStatus,
} from './next-action.js';

const at = (seconds: number): Date => new Date(Date.UTC(2026, 0, 1, 0, 0, seconds));
const failed = (code: ErrorCode, options: { retryAfterMs?: number } = {}): ReconcileReport => ({
  kind: 'failed',
  error: new BerthError(code, `${code} happened`, options),
  running: 'a'.repeat(40),
});
const converged: ReconcileReport = { kind: 'converged', revision: 'b'.repeat(40) };

/** The one condition that holds, as `Type/Reason`. */
const holding = (conditions: readonly Condition[]): string =>
  conditions
    .filter((c) => c.status === 'True')
    .map((c) => `${c.type}/${c.reason}`)
    .join();

/** Feeds reports at the given times (seconds) and returns each decision. */
function run(steps: [number, ReconcileReport][]): { status: ReconcileStatus; next: NextAction }[] {
  let status = initialReconcileStatus(at(0));
  return steps.map(([seconds, report]) => {
    const decided = decideNextAction(status, report, at(seconds));
    status = decided.status;
    return decided;
  });
}

const table: [string, ReconcileReport, string, NextAction][] = [
  ['converged', converged, 'Ready/ReconciliationSucceeded', { kind: 'none' }],
  [
    'invalid manifests',
    failed('ERR_MANIFEST_INVALID'),
    'Stalled/RevisionInvalid',
    { kind: 'wait-for-change' },
  ],
  [
    'unsupported feature',
    failed('ERR_NOT_SUPPORTED'),
    'Stalled/RevisionInvalid',
    { kind: 'wait-for-change' },
  ],
  [
    'unreadable secret',
    failed('ERR_SECRET_UNREADABLE'),
    'Stalled/SecretUnreadable',
    { kind: 'wait-for-change' },
  ],
  ['image not found', failed('ERR_IMAGE_NOT_FOUND'), 'Stalled/ImageNotFound', { kind: 'wait-for-change' }],
  [
    'rollout unhealthy',
    failed('ERR_ROLLOUT_UNHEALTHY'),
    'Stalled/RolloutFailed',
    { kind: 'wait-for-change' },
  ],
  [
    'agent unauthorized',
    failed('ERR_AGENT_UNAUTHORIZED'),
    'Stalled/AgentUnauthorized',
    { kind: 'wait-for-change' },
  ],
  [
    'agent unreachable',
    failed('ERR_AGENT_UNREACHABLE'),
    'Reconciling/AgentUnreachable',
    { kind: 'retry', afterMs: 1000 },
  ],
  [
    'git source down',
    failed('ERR_GIT_SOURCE'),
    'Reconciling/SourceUnavailable',
    { kind: 'retry', afterMs: 1000 },
  ],
  [
    'docker unavailable',
    failed('ERR_DOCKER_UNAVAILABLE'),
    'Reconciling/DockerUnavailable',
    { kind: 'retry', afterMs: 1000 },
  ],
  ['internal error', failed('ERR_INTERNAL'), 'Reconciling/InternalError', { kind: 'retry', afterMs: 1000 }],
  [
    'waiting, with its delay',
    failed('ERR_CONTAINER_NOT_FOUND', { retryAfterMs: 2500 }),
    'Reconciling/ContainerNotFound',
    { kind: 'retry', afterMs: 2500 },
  ],
  [
    'waiting, no delay given',
    failed('ERR_CONTAINER_NOT_FOUND'),
    'Reconciling/ContainerNotFound',
    { kind: 'retry', afterMs: 5000 },
  ],
];
void describe('what the operator does after a reconcile: error -> next action', () => {
  for (const [what, report, condition, next] of table) {
    void test(`${what} -> ${condition}, ${next.kind}`, () => {
      const [decided] = run([[1, report]]);
      assert.equal(holding(decided!.status.conditions), condition);
      assert.deepEqual(decided!.next, next);
      assert.deepEqual(
        decided!.status.conditions.map((c) => c.type),
        ['Ready', 'Reconciling', 'Stalled'],
      );
      assert.equal(isHealthy(decided!.status.conditions), !condition.startsWith('Stalled'));
    });
  }
});

void describe('back-off, messages and transition times', () => {
  void test('transient failures back off 1 s, 2 s, 4 s ... capped at 60 s; a success resets it', () => {
    const down = failed('ERR_AGENT_UNREACHABLE');
    const decisions = run([
      ...Array.from({ length: 8 }, (_, i): [number, ReconcileReport] => [i + 1, down]),
      [9, converged],
      [10, down],
    ]);
    assert.deepEqual(
      decisions.map((d) => (d.next.kind === 'retry' ? d.next.afterMs : d.next.kind)),
      [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 'none', 1000],
    );
    assert.match(decisions[2]!.status.conditions[0]!.message, /retrying in 4s \(attempt 3\)$/);
    assert.equal(backoffMs(1000), 60_000);
  });

  void test('a terminal error says what runs and that it waits for a new commit', () => {
    const [decided] = run([[1, failed('ERR_ROLLOUT_UNHEALTHY')]]);
    const stalled = decided!.status.conditions.find((c) => c.type === 'Stalled')!;
    assert.equal(
      stalled.message,
      `ERR_ROLLOUT_UNHEALTHY happened; the cluster runs ${'a'.repeat(12)}; waiting for a new commit`,
    );
  });

  void test('a transition time moves only when the status of its condition changes', () => {
    const decisions = run([
      [1, converged],
      [2, converged],
      [3, failed('ERR_MANIFEST_INVALID')],
      [4, failed('ERR_MANIFEST_INVALID')],
    ]);
    const times = decisions.map((d) => d.status.conditions.map((c) => c.lastTransitionTime));
    // Ready became True and Reconciling False at 1 s, and stayed; Ready and Stalled flip at 3 s.
    assert.deepEqual(times[1], times[0]);
    assert.deepEqual(times[2], [at(3).toISOString(), at(1).toISOString(), at(3).toISOString()]);
    assert.deepEqual(times[3], times[2]);
  });

  void test('before the first reconcile and during a rollout the operator is Reconciling (healthy)', () => {
    const initial = initialReconcileStatus(at(0));
    assert.equal(holding(initial.conditions), 'Reconciling/Progressing');
    const rolling = rolloutStarted(
      run([[1, failed('ERR_ROLLOUT_UNHEALTHY')]])[0]!.status,
      'rolling out abc',
      at(2),
    );
    assert.equal(holding(rolling.conditions), 'Reconciling/RolloutInProgress');
    assert.equal(isHealthy(rolling.conditions), true);
  });
});
