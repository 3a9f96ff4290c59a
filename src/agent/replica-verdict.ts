/**
 * The verdict on a replica being waited for (awaitReplica) or watched (watchReplica), from what is
 * known of it at one moment. Pure: follow-replica.ts gathers the facts and asks again on every
 * change. `await` ends at the first verdict (healthy, or a failure) and with `timeout` when time
 * runs out; `watch` ends early only on a failure and `healthy` when the window closes with the
 * replica still up.
 */
import type { ReplicaWaitResult } from '../api/types.js';
import { healthcheckFromLabels, type HealthStatus } from './health-prober.js';
import { describeHealth, exitReason, toObservedReplica } from './observed-replica.js';
import type { RuntimeContainer } from './runtime.js';

export interface WaitTerms {
  name: string;
  nodeName: string;
  mode: 'await' | 'watch';
  limitMs: number;
}

export interface ReplicaFacts {
  /** null: the container is gone. */
  container: RuntimeContainer | null;
  /** Restarted by the engine since the agent first saw this run. */
  restarted: boolean;
  /** A `die` event of the container the wait began with was seen since it began. */
  diedSinceStart: boolean;
  /** Exit code of the last `die` event seen of this container. */
  lastExitCode: number | null;
  /** The prober's status of the container; null while it is not probed. */
  probe: HealthStatus | null;
}

/** null: no verdict yet. `final`: time is up, a verdict is due. */
export function judgeReplica(
  terms: WaitTerms,
  facts: ReplicaFacts,
  final: boolean,
): ReplicaWaitResult | null {
  const { container, restarted, diedSinceStart: died } = facts;
  if (container === null)
    return { outcome: 'missing', replica: null, reason: `container ${terms.name} is gone` };
  const replica = toObservedReplica(container, terms.nodeName, facts.probe);
  const notYetStarted = container.state === 'created' || container.state === 'paused';
  if (notYetStarted && !restarted && !died) return final ? timedOut(terms, facts, container) : null;
  if (container.state !== 'running' || restarted || died) {
    return { outcome: 'exited', replica, reason: exitReason(container, facts.lastExitCode) };
  }
  const hasCheck = healthcheckFromLabels(container.labels) !== null;
  const status = hasCheck ? facts.probe : null;
  if (status?.health === 'unhealthy') {
    return { outcome: 'unhealthy', replica, reason: status.detail ?? 'health check failed' };
  }
  const ready = !hasCheck || status?.health === 'healthy';
  if (terms.mode === 'await') {
    if (ready) return { outcome: 'healthy', replica, reason: null };
    return final ? timedOut(terms, facts, container) : null;
  }
  return final ? { outcome: 'healthy', replica, reason: null } : null;
}

function timedOut(terms: WaitTerms, facts: ReplicaFacts, container: RuntimeContainer): ReplicaWaitResult {
  return {
    outcome: 'timeout',
    replica: toObservedReplica(container, terms.nodeName, facts.probe),
    reason: `not ready within ${terms.limitMs} ms${describeHealth(container, facts.probe)}`,
  };
}
