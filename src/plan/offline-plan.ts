import type { NodeSnapshot, ObservedReplica, ObservedState } from '../api/types.js';
import type { DesiredState } from '../manifests/types.js';
import { computePlan } from './compute-plan.js';
import { serviceKey } from './replica-name.js';
import { summariseService } from './spec-summary.js';
import type { Plan } from './types.js';

/** The one node an offline plan places everything on. */
export const OFFLINE_NODE = 'offline';

/**
 * Node-level placement cannot be known without the cluster, so an offline plan drops it: every
 * replica goes on one synthetic node with room for all. What an offline plan shows (fields,
 * replica counts, new and removed services) does not depend on which node a replica lands on.
 */
function withoutPlacement(desired: DesiredState): DesiredState {
  return {
    ...desired,
    services: desired.services.map((s) => ({
      ...s,
      placement: { constraints: [], spread: null, maxPerNode: 0 },
    })),
  };
}

function offlineNode(replicas: ObservedReplica[]): NodeSnapshot {
  return {
    name: OFFLINE_NODE,
    address: '',
    labels: {},
    capacity: { nanoCpus: Number.MAX_SAFE_INTEGER, memoryBytes: Number.MAX_SAFE_INTEGER },
    engineVersion: '',
    status: 'ready',
    images: [],
    replicas,
  };
}

/**
 * The cluster as it would be with `base` fully rolled out: every replica of every service
 * running and healthy, labelled with its spec hash and summary, exactly as a rollout leaves it.
 */
export function observedStateOf(base: DesiredState): ObservedState {
  const placed = withoutPlacement(base);
  const plan = computePlan(placed, { nodes: [offlineNode([])] });
  const specs = new Map(placed.services.map((s) => [serviceKey(s.namespace, s.name), s]));
  const replicas: ObservedReplica[] = [];
  for (const service of plan.services) {
    const spec = specs.get(serviceKey(service.namespace, service.name));
    if (!spec || service.specHash === null) continue;
    const specSummary = summariseService(spec, placed) as unknown as Record<string, unknown>;
    for (const step of service.batches.flat()) {
      if (step.action !== 'create') continue;
      replicas.push({
        name: step.name,
        id: step.name,
        node: OFFLINE_NODE,
        namespace: spec.namespace,
        service: spec.name,
        slot: step.slot,
        specHash: service.specHash,
        revision: base.revision,
        state: 'running',
        health: spec.healthcheck ? 'healthy' : 'none',
        healthDetail: null,
        exitCode: null,
        restartCount: 0,
        createdAt: '1970-01-01T00:00:00.000Z',
        startedAt: '1970-01-01T00:00:00.000Z',
        ports: [],
        specSummary,
      });
    }
  }
  return { nodes: [offlineNode(replicas)] };
}

/**
 * What moving from revision `base` to `desired` would change, from git alone: the plan of
 * `desired` against a cluster that runs exactly `base`. For pull requests on CI runners that
 * cannot reach the cluster.
 */
export function computeOfflinePlan(desired: DesiredState, base: DesiredState): Plan {
  return computePlan(withoutPlacement(desired), observedStateOf(base));
}
