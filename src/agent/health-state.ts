/**
 * The health state machine of one container run, pure (the clock is passed in), driven by
 * probe results. The timers and the probes themselves live in health-prober.ts.
 *
 * Docker's HEALTHCHECK semantics, probed eagerly:
 * - Until the first pass, probes run every EAGER_PROBE_MS instead of every interval, so a
 *   replica is seen healthy as soon as it answers, not up to an interval later.
 * - A pass during the start period counts (healthy at once); failures during it do not.
 * - Before the first pass, eager probing must not shorten the failure budget Docker gives:
 *   `retries` failures AND `retries x interval` of failing after the start period ends.
 * - After a pass, probes run every interval and `retries` consecutive failures make the
 *   container unhealthy; a later pass makes it healthy again.
 */
import type { HealthcheckSpec } from '../manifests/types.js';

export const EAGER_PROBE_MS = 100;

export type ProbeOutcome = { ok: true } | { ok: false; detail: string };

export interface HealthState {
  health: 'starting' | 'healthy' | 'unhealthy';
  /** Why the last probe failed; null after a pass. */
  detail: string | null;
  everPassed: boolean;
  /** Failures in a row that count (those during the start period do not). */
  consecutiveFailures: number;
  /** When this run of the container started, in ms since the epoch. */
  startedAtMs: number;
  /**
   * When probing began: the start, or later when an agent picks up a container that was already
   * running (after an agent restart). The failure budget never starts before it, so a resumed
   * agent gives a running container the same benefit of the doubt as a fresh one.
   */
  probingSinceMs: number;
}

export function initialHealthState(startedAtMs: number, probingSinceMs: number = startedAtMs): HealthState {
  return {
    health: 'starting',
    detail: null,
    everPassed: false,
    consecutiveFailures: 0,
    startedAtMs,
    probingSinceMs: Math.max(startedAtMs, probingSinceMs),
  };
}

export function applyProbeOutcome(
  state: HealthState,
  outcome: ProbeOutcome,
  nowMs: number,
  healthcheck: HealthcheckSpec,
): HealthState {
  if (outcome.ok) {
    return { ...state, health: 'healthy', detail: null, everPassed: true, consecutiveFailures: 0 };
  }
  const retries = Math.max(1, healthcheck.retries);
  const startPeriodEndsMs = state.startedAtMs + healthcheck.startPeriodMs;
  if (!state.everPassed) {
    if (nowMs < startPeriodEndsMs) return { ...state, detail: outcome.detail };
    const consecutiveFailures = state.consecutiveFailures + 1;
    const budgetStartsMs = Math.max(startPeriodEndsMs, state.probingSinceMs);
    const budgetSpent = nowMs >= budgetStartsMs + retries * healthcheck.intervalMs;
    return {
      ...state,
      detail: outcome.detail,
      consecutiveFailures,
      health: consecutiveFailures >= retries && budgetSpent ? 'unhealthy' : state.health,
    };
  }
  const consecutiveFailures = state.consecutiveFailures + 1;
  return {
    ...state,
    detail: outcome.detail,
    consecutiveFailures,
    health: consecutiveFailures >= retries ? 'unhealthy' : state.health,
  };
}

/** How long after the start of one probe the next one starts. */
export function probeIntervalMs(state: HealthState, healthcheck: HealthcheckSpec): number {
  return state.health === 'starting' ? EAGER_PROBE_MS : Math.max(EAGER_PROBE_MS, healthcheck.intervalMs);
}
