/**
 * What the operator does after a reconcile, decided from the error's disposition alone. Pure: the
 * clock is passed in, the timers live in operator.ts.
 * - converged: Ready. Nothing is scheduled; the cron poll, the watch and webhooks bring the next one.
 * - terminal (invalid manifests, an unreadable secret, a rollout that failed its checks): Stalled.
 *   No retry: retrying cannot help until a new commit (or a key, or `berth apply --retry`) arrives.
 * - waiting (something expected to clear): Reconciling; retried after the error's retryAfterMs.
 * - transient (git, an agent or Docker unreachable, a rollout interrupted by a node lost under it):
 *   Reconciling; retried with exponential back-off 1 s, 2 s, 4 s ... capped at 60 s (Flux's
 *   controllers cap theirs alike), reset by any success.
 * A trigger (new commit, webhook, API) always reconciles at once, whatever was scheduled.
 */
import type { BerthError, ErrorCode } from '../core/errors.js';
import { applyVerdict, type Condition, type ConditionVerdict } from './conditions.js';

export const RETRY_BACKOFF = Object.freeze({ firstMs: 1000, factor: 2, maxMs: 60_000 });
/** For a waiting error that names no retryAfterMs of its own. */
export const DEFAULT_WAITING_RETRY_MS = 5000;

export type NextAction = { kind: 'none' } | { kind: 'wait-for-change' } | { kind: 'retry'; afterMs: number };

/** How a reconcile ended, as the operator sees it. */
export type ReconcileReport =
  | { kind: 'converged'; revision: string }
  /** `running`: the revision the cluster was kept on (the last good one), if any. */
  | { kind: 'failed'; error: BerthError; running: string | null };

export interface ReconcileStatus {
  conditions: Condition[];
  /** Transient failures in a row: the exponent of the back-off. */
  transientFailures: number;
}

const reasons: Record<ErrorCode, string> = {
  ERR_MANIFEST_INVALID: 'RevisionInvalid',
  ERR_NOT_SUPPORTED: 'RevisionInvalid',
  ERR_GIT_SOURCE: 'SourceUnavailable',
  ERR_GIT_REF_NOT_FOUND: 'RevisionNotFound',
  ERR_AGENT_UNREACHABLE: 'AgentUnreachable',
  ERR_AGENT_UNAUTHORIZED: 'AgentUnauthorized',
  ERR_DOCKER_UNAVAILABLE: 'DockerUnavailable',
  ERR_IMAGE_NOT_FOUND: 'ImageNotFound',
  ERR_CONTAINER_NOT_FOUND: 'ContainerNotFound',
  ERR_ROLLOUT_UNHEALTHY: 'RolloutFailed',
  ERR_ROLLOUT_DEADLINE: 'RolloutFailed',
  ERR_JOB_FAILED: 'JobFailed',
  ERR_SECRET_UNREADABLE: 'SecretUnreadable',
  ERR_BAD_REQUEST: 'InvalidRequest',
  ERR_STATE: 'StateInvalid',
  ERR_STATE_WRITE: 'StateWriteFailed',
  ERR_FORGE: 'GitHostUnavailable',
  ERR_INTERNAL: 'InternalError',
};

export function conditionReason(code: ErrorCode): string {
  return reasons[code];
}

export function initialReconcileStatus(now: Date): ReconcileStatus {
  const verdict = {
    holds: 'Reconciling',
    reason: 'Progressing',
    message: 'the first reconcile is under way',
  } as const;
  return { conditions: applyVerdict([], verdict, now), transientFailures: 0 };
}

/** A rollout (or a rollback) started: Reconciling until it ends. */
export function rolloutStarted(status: ReconcileStatus, message: string, now: Date): ReconcileStatus {
  const verdict = { holds: 'Reconciling', reason: 'RolloutInProgress', message } as const;
  return { ...status, conditions: applyVerdict(status.conditions, verdict, now) };
}

export function decideNextAction(
  status: ReconcileStatus,
  report: ReconcileReport,
  now: Date,
): { status: ReconcileStatus; next: NextAction } {
  const decided = decide(status.transientFailures, report);
  return {
    status: {
      conditions: applyVerdict(status.conditions, decided.verdict, now),
      transientFailures: decided.transientFailures,
    },
    next: decided.next,
  };
}

function decide(
  transientFailures: number,
  report: ReconcileReport,
): { verdict: ConditionVerdict; next: NextAction; transientFailures: number } {
  if (report.kind === 'converged') {
    const message = `the cluster runs the branch head ${report.revision.slice(0, 12)}`;
    return {
      verdict: { holds: 'Ready', reason: 'ReconciliationSucceeded', message },
      next: { kind: 'none' },
      transientFailures: 0,
    };
  }
  const { error } = report;
  const reason = conditionReason(error.code);
  switch (error.disposition) {
    case 'terminal': {
      const running = report.running === null ? '' : `; the cluster runs ${report.running.slice(0, 12)}`;
      const message = `${error.message}${running}; waiting for a new commit`;
      return {
        verdict: { holds: 'Stalled', reason, message },
        next: { kind: 'wait-for-change' },
        transientFailures: 0,
      };
    }
    case 'waiting': {
      const afterMs = error.retryAfterMs ?? DEFAULT_WAITING_RETRY_MS;
      const message = `${error.message}; retrying in ${formatDelay(afterMs)}`;
      return {
        verdict: { holds: 'Reconciling', reason, message },
        next: { kind: 'retry', afterMs },
        transientFailures: 0,
      };
    }
    case 'transient': {
      const attempt = transientFailures + 1;
      // An error may know it cannot clear sooner (a node is only declared down after its heartbeat
      // timeout): the back-off never retries before that.
      const afterMs = Math.max(backoffMs(attempt), error.retryAfterMs ?? 0);
      const message = `${error.message}; retrying in ${formatDelay(afterMs)} (attempt ${attempt})`;
      return {
        verdict: { holds: 'Reconciling', reason, message },
        next: { kind: 'retry', afterMs },
        transientFailures: attempt,
      };
    }
  }
}

/** The delay before retry number `attempt` (1-based) after transient failures. */
export function backoffMs(attempt: number): number {
  const { firstMs, factor, maxMs } = RETRY_BACKOFF;
  return Math.min(maxMs, firstMs * factor ** Math.min(attempt - 1, 30));
}

function formatDelay(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
