/**
 * A container as the operator sees a replica: its identity from the labels, its state, and its
 * health from the prober's verdict. Pure: the probe status is passed in.
 */
import { LABELS, type ObservedReplica, type ReplicaHealth } from '../api/types.js';
import { healthcheckFromLabels, type HealthStatus } from './health-prober.js';
import type { RuntimeContainer } from './runtime.js';

export function toObservedReplica(
  container: RuntimeContainer,
  nodeName: string,
  probe: HealthStatus | null,
): ObservedReplica {
  const { health, detail } = replicaHealth(container, probe);
  const label = (name: string) => container.labels[name] ?? '';
  return {
    name: container.name,
    id: container.id,
    node: nodeName,
    namespace: label(LABELS.namespace),
    service: label(LABELS.service),
    slot: label(LABELS.slot),
    specHash: label(LABELS.specHash),
    revision: label(LABELS.revision),
    state: container.state,
    health,
    healthDetail: detail,
    exitCode: container.exitCode,
    restartCount: container.restartCount,
    createdAt: container.createdAt,
    startedAt: container.startedAt,
    ports: container.ports,
    specSummary: parseSummary(container.labels[LABELS.specSummary]),
  };
}

/** `probe` is the prober's status of this container; null while it is not being probed. */
export function replicaHealth(
  container: RuntimeContainer,
  probe: HealthStatus | null,
): { health: ReplicaHealth; detail: string | null } {
  const hasCheck = healthcheckFromLabels(container.labels) !== null;
  switch (container.state) {
    case 'running': {
      if (!hasCheck) return { health: 'none', detail: null };
      return probe ?? { health: 'starting', detail: null };
    }
    case 'created':
      return { health: hasCheck ? 'starting' : 'none', detail: null };
    default:
      return { health: 'unhealthy', detail: exitReason(container) };
  }
}

/** Why a container is not serving; `lastExitCode` is from the last `die` event, for restarted ones. */
export function exitReason(container: RuntimeContainer, lastExitCode: number | null = null): string {
  const parts: string[] = [stateWords(container)];
  const exitCode = container.exitCode ?? lastExitCode;
  if (exitCode !== null) parts.push(`exit code ${exitCode}`);
  if (container.oomKilled) parts.push('killed: out of memory');
  if (container.restartCount > 0) parts.push(`${container.restartCount} restarts`);
  if (container.error !== null) parts.push(container.error);
  return `container ${parts.join(', ')}`;
}

function stateWords(container: RuntimeContainer): string {
  switch (container.state) {
    case 'restarting':
    case 'paused':
      return container.state;
    case 'removing':
      return 'being removed';
    case 'running':
      return 'exited and was restarted';
    case 'dead':
      return 'dead';
    default:
      return 'exited';
  }
}

/** ` (state running, health starting)`, for the reason of a wait that ran out of time. */
export function describeHealth(container: RuntimeContainer | null, probe: HealthStatus | null): string {
  if (container === null) return '';
  const { health, detail } = replicaHealth(container, probe);
  return ` (state ${container.state}, health ${health}${detail === null ? '' : `: ${detail}`})`;
}

function parseSummary(raw: string | undefined): Record<string, unknown> | null {
  if (raw === undefined) return null;
  try {
    const parsed: unknown = JSON.parse(raw);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}
