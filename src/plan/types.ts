/**
 * A plan is data: `berth plan` prints it and `berth apply` executes this very object, so the
 * two can never disagree. Produced by computePlan() (pure, no I/O).
 */
import type { UpdatePolicySpec } from '../manifests/types.js';

export interface ReplicaRef {
  name: string;
  node: string;
  slot: string;
  specHash: string;
  revision: string;
}

export type ReplicaStep =
  /** A new replica in a slot that has none. */
  | { action: 'create'; slot: string; node: string; name: string }
  /** A new replica replaces an old one (different spec hash), ordered by the update policy. */
  | { action: 'replace'; slot: string; node: string; name: string; old: ReplicaRef }
  /** An old replica goes (scaled down, pruned, duplicate, stopped by hand, on a node it no longer belongs to). */
  | { action: 'remove'; old: ReplicaRef; reason: RemoveReason };

export type RemoveReason = 'pruned' | 'scaled-down' | 'duplicate' | 'not-running' | 'misplaced';

export type ServiceChange = 'create' | 'update' | 'scale' | 'repair' | 'remove' | 'unchanged';

export interface FieldChange {
  /** Dotted path into the spec summary, e.g. `image`, `env.GREETING`, `resources.limits.memoryBytes`. */
  path: string;
  from: unknown;
  to: unknown;
}

export interface ServicePlan {
  namespace: string;
  name: string;
  change: ServiceChange;
  /** The spec hash every replica should end with; null when the service is removed. */
  specHash: string | null;
  /** Replica count wanted (after placement) and how many are running and current now. */
  desiredReplicas: number;
  currentReplicas: number;
  fieldChanges: FieldChange[];
  /** Replicas already right: left alone. */
  keep: ReplicaRef[];
  /** Steps grouped into batches, run one batch after the other following `policy`. */
  batches: ReplicaStep[][];
  policy: UpdatePolicySpec;
  /** Replicas that fit on no node, with the reason. Never silently dropped. */
  pending: { slot: string; reason: string }[];
}

export interface Plan {
  /** The revision this plan moves the cluster to. */
  revision: string;
  services: ServicePlan[];
  /** Validation problems of the revision, for plans of a branch that does not load. */
  hasChanges: boolean;
}
