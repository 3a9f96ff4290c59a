import type { NodeAgent, ObservedState } from '../api/types.js';
import type { BerthPort } from '../core/berth-ports.js';
import type { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { DesiredState } from '../manifests/types.js';
import type { Plan } from '../plan/types.js';
import type { RolloutEvent, RolloutResult } from '../rollout/apply-plan.js';
import type { SecretReader } from '../secrets/secret-reader.js';
import type { MeshController } from './mesh-controller.js';
import type { RevisionSource } from './revision-source.js';
import type { OperatorState, StateStore } from './state-store.js';

export interface ReconcileDeps {
  source: RevisionSource;
  agents: () => ReadonlyMap<string, NodeAgent>;
  store: StateStore;
  log: Logger;
  readSecret: SecretReader | null;
  onEvent?: (event: RolloutEvent) => void;
  /** A rollout (or a rollback) is about to change the cluster; awaited before it starts. */
  onRollout?: (start: RolloutStart) => void | Promise<void>;
  signal?: AbortSignal;
  /** A run of a Job finished (for metrics). */
  onJobRun?: (outcome: 'succeeded' | 'failed' | 'lost') => void;
  /** A Job failed at a spec (its last allowed run failed): for the job-failed notification. */
  onJobFailed?: (job: { namespace: string; name: string; revision: string; reason: string }) => void;
  /** The routing mesh of `berth run`; one-shot commands have none. */
  mesh?: MeshController;
  /** The CronJob scheduler of `berth run`: told the revision each reconcile chose. */
  cronJobs?: { setDesired(desired: DesiredState): void };
  /** Replicas created and started at once per node (node-create-limit.ts); DEFAULT_CREATE_CONCURRENCY when absent. */
  createConcurrency?: number;
  /** Ports berth was configured to listen on (see reserved-ports.ts); a Service may not publish them. */
  berthPorts?: readonly BerthPort[];
}

/** What is about to change the cluster: a revision rolling out, or the way back to the last good one. */
export interface RolloutStart {
  revision: string;
  kind: 'rollout' | 'rollback' | 'saved plan';
  /** For people: `rolling out 3f2a9c1e0b7d`. */
  message: string;
}

/** `interrupted`: the infrastructure cut the rollout short; nothing is blamed on the revision. */
export type ReconcileOutcome =
  'unchanged' | 'succeeded' | 'interrupted' | 'rolled back' | 'failed' | 'invalid';

export interface ReconcileResult {
  reconcileId: string;
  /** What the branch (or the requested ref) points at. */
  headRevision: string;
  /** What this reconcile converged toward: the head, or the last good revision when the head failed. */
  targetRevision: string | null;
  outcome: ReconcileOutcome;
  reason: string | null;
  /** Why the cluster does not run the head (its code says what happens next); null when it does. */
  error: BerthError | null;
  plan: Plan | null;
  rollout: RolloutResult | null;
  rollback: RolloutResult | null;
  /** What this reconcile loaded as its target (its Notifiers are the ones in effect); absent when none. */
  desired?: DesiredState;
}

/** What one reconcile knows as it goes: read once, shared by its steps. */
export interface ReconcileContext {
  deps: ReconcileDeps;
  log: Logger;
  head: string;
  state: OperatorState;
  /** Every node, asked once per reconcile (lazily: a revision refused early needs no cluster). */
  observe(): Promise<{ agents: ReadonlyMap<string, NodeAgent>; observed: ObservedState }>;
}

/** A revision that passed preflight, with the plan that takes the cluster there. */
export interface Prepared {
  ok: true;
  revision: string;
  desired: DesiredState;
  plan: Plan;
}

export interface Refused {
  ok: false;
  error: BerthError;
  plan: Plan | null;
}

export type Target =
  | (Prepared & { /** Why the head is not the target; null when it is. */ headError: BerthError | null })
  | Refused;
