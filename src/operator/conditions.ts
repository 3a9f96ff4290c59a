/**
 * The operator's status as Flux's kstatus conditions: `Ready` (the cluster runs the branch head),
 * `Reconciling` (work is under way or will be retried by itself) and `Stalled` (stuck until someone
 * acts: a new commit, a key, a fix). Exactly one of them is True at any time.
 */
export type ConditionType = 'Ready' | 'Reconciling' | 'Stalled';
export type ConditionStatus = 'True' | 'False';

export const CONDITION_TYPES: readonly ConditionType[] = ['Ready', 'Reconciling', 'Stalled'];

export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  /** CamelCase, stable: scripts and alerts match on it. */
  reason: string;
  message: string;
  /** When `status` last changed (ISO 8601); a new reason or message alone does not move it. */
  lastTransitionTime: string;
}

/** The condition that holds (True), with its reason and message; the other two become False. */
export interface ConditionVerdict {
  holds: ConditionType;
  reason: string;
  message: string;
}

/** Sets all three conditions from one verdict, keeping each transition time unless its status flips. */
export function applyVerdict(
  previous: readonly Condition[],
  verdict: ConditionVerdict,
  now: Date,
): Condition[] {
  return CONDITION_TYPES.map((type) => {
    const status: ConditionStatus = type === verdict.holds ? 'True' : 'False';
    const before = previous.find((c) => c.type === type);
    return {
      type,
      status,
      reason: verdict.reason,
      message: verdict.message,
      lastTransitionTime:
        before !== undefined && before.status === status ? before.lastTransitionTime : now.toISOString(),
    };
  });
}

export function conditionHolds(conditions: readonly Condition[], type: ConditionType): boolean {
  return conditions.some((c) => c.type === type && c.status === 'True');
}

/** What /readyz answers 200 for (and /healthz calls `ok`): converged or getting there by itself. */
export function isHealthy(conditions: readonly Condition[]): boolean {
  return (
    !conditionHolds(conditions, 'Stalled') &&
    (conditionHolds(conditions, 'Ready') || conditionHolds(conditions, 'Reconciling'))
  );
}
