/**
 * A plan is data: `berth plan` prints it and `berth apply` executes this very object, so the
 * two can never disagree. Produced by computePlan() (pure, no I/O).
 */
import type { ReplicaFile, ReplicaRequest } from '../api/types.js';
import type { UpdatePolicySpec } from '../manifests/types.js';

export interface ReplicaRef {
  name: string;
  node: string;
  slot: string;
  specHash: string;
  revision: string;
}

/**
 * A Secret entry a replica mounts, named, never its value: the rollout turns it into plaintext
 * only on the way to the node (see SecretReader). `digest` is the SHA-256 of the armored
 * ciphertext, the key of that ciphertext in `Plan.secretCiphertexts`.
 */
export interface SecretEntryRef {
  namespace: string;
  name: string;
  key: string;
  digest: string;
  /** The manifest file the Secret was read from, for error messages. */
  file?: string;
}

/** A file of a planned replica: config contents as they are, a secret as a reference. */
export type PlannedFile =
  | (Omit<ReplicaFile, 'secret'> & { secret: false })
  | (Omit<ReplicaFile, 'secret' | 'contentBase64'> & { secret: true; ref: SecretEntryRef });

/** The exact request an agent gets for a new replica, with its secret files still references. */
export interface PlannedReplicaRequest extends Omit<ReplicaRequest, 'files'> {
  files: PlannedFile[];
}

export type ReplicaStep =
  /** A new replica in a slot that has none. */
  | { action: 'create'; slot: string; node: string; name: string; request: PlannedReplicaRequest }
  /** A new replica replaces an old one (different spec hash), ordered by the update policy. */
  | {
      action: 'replace';
      slot: string;
      node: string;
      name: string;
      old: ReplicaRef;
      request: PlannedReplicaRequest;
    }
  /** An old replica goes (scaled down, pruned, duplicate, stopped by hand, on a node it no longer belongs to). */
  | { action: 'remove'; old: ReplicaRef; reason: RemoveReason };

/** `never-started`: created ahead of its batch (prepareReplica) by a rollout that did not get to start it. */
export type RemoveReason =
  'pruned' | 'scaled-down' | 'duplicate' | 'not-running' | 'misplaced' | 'never-started';

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
  /**
   * How long an old replica may drain before it is stopped: the desired spec's stop grace
   * period, or null for a service that leaves the desired state (Docker's default applies).
   */
  stopGracePeriodMs: number | null;
  /** Replicas that fit on no node, with the reason. Never silently dropped. */
  pending: { slot: string; reason: string }[];
  /**
   * Volumes removed once the replicas are gone: only for a Service removed from git whose
   * replicas say volumeReclaim: delete. Absent otherwise (and in plans of older berths).
   */
  deleteVolumes?: { node: string; name: string }[];
}

export interface Plan {
  /** The revision this plan moves the cluster to. */
  revision: string;
  services: ServicePlan[];
  /**
   * The armored age ciphertext of every Secret entry a planned replica mounts, by the SHA-256
   * of that ciphertext (SecretEntryRef.digest). The plan carries the ciphertext itself rather than
   * the revision to read it from, so that executing a plan needs no git access and no desired
   * state: the ciphertext is as safe here as it is in git, and only the operator's key opens it.
   */
  secretCiphertexts: Record<string, string>;
  /** Whether any service changes. */
  hasChanges: boolean;
}
