import type { NodeAgent, ReplicaWaitResult } from '../api/types.js';
import { asBerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { DesiredState, ServiceSpec } from '../manifests/types.js';
import type { MeshMembership } from '../api/types.js';
import { serviceKey } from '../plan/replica-name.js';
import type { Plan, ReplicaRef, ReplicaStep, ServicePlan } from '../plan/types.js';
import type { SecretReader } from '../secrets/secret-reader.js';
import { buildReplicaRequest } from './replica-request.js';

export type RolloutEvent =
  | { type: 'service-started'; service: string; change: string; batches: number }
  | { type: 'replica-starting'; service: string; name: string; node: string; slot: string }
  | { type: 'replica-healthy'; service: string; name: string; node: string; slot: string; ms: number }
  | { type: 'replica-failed'; service: string; name: string; node: string; slot: string; reason: string }
  | { type: 'replica-removed'; service: string; name: string; node: string; reason: string }
  | { type: 'batch-done'; service: string; batch: number; batches: number }
  | {
      type: 'service-finished';
      service: string;
      outcome: ServiceOutcome['outcome'];
      reason: string | null;
      ms: number;
    };

export interface ServiceOutcome {
  namespace: string;
  name: string;
  change: ServicePlan['change'];
  outcome: 'succeeded' | 'failed' | 'aborted';
  reason: string | null;
  durationMs: number;
  /** Replicas started and removed, with their nodes: the audit trail of what changed. */
  started: { name: string; node: string }[];
  removed: { name: string; node: string }[];
}

export interface RolloutResult {
  outcome: 'succeeded' | 'failed';
  services: ServiceOutcome[];
  /** The first failure that decided the outcome, and what the policy says to do about it. */
  failure: { service: string; reason: string; action: 'rollback' | 'pause' | 'continue' } | null;
  durationMs: number;
}

export interface RolloutOptions {
  agents: ReadonlyMap<string, NodeAgent>;
  desired: DesiredState;
  readSecret: SecretReader | null;
  log: Logger;
  onEvent?: (event: RolloutEvent) => void;
  /** Aborts between steps (shutdown); replicas already started keep running. */
  signal?: AbortSignal;
  /**
   * The routing mesh, when one runs: a new replica joins it once healthy, an old one leaves it
   * and is drained (bounded by its stop grace period) before it is stopped.
   */
  mesh?: MeshMembership;
}

/** Used for a replica whose service left the desired state: Docker's own default grace. */
const DEFAULT_DRAIN_MS = 10_000;

class RolloutFailure extends Error {}

/**
 * Executes a plan: services in parallel, each service batch by batch. A batch is done when its
 * new replicas are healthy; with start-first the old replicas are removed only then, with
 * stop-first before. Every new replica stays under watch for the monitor window after it became
 * healthy (windows overlap with later batches, as in Swarm); the service is complete when the
 * last window has passed. Failures count against `maxFailureRatio`; past it the service fails,
 * the other services stop at their next step, and the caller applies the failure action.
 */
export async function applyPlan(plan: Plan, options: RolloutOptions): Promise<RolloutResult> {
  const started = Date.now();
  const specs = new Map(options.desired.services.map((s) => [serviceKey(s.namespace, s.name), s]));
  const stop = new AbortController();
  const onOuterAbort = (): void => stop.abort();
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  let failure: RolloutResult['failure'] = null;

  const work = plan.services
    .filter((s) => s.batches.length > 0)
    .map(async (servicePlan) => {
      const outcome = await rollService(
        servicePlan,
        specs.get(serviceKey(servicePlan.namespace, servicePlan.name)),
        options,
        stop.signal,
      );
      if (
        outcome.outcome === 'failed' &&
        servicePlan.policy.failureAction !== 'continue' &&
        failure === null
      ) {
        failure = {
          service: serviceKey(servicePlan.namespace, servicePlan.name),
          reason: outcome.reason ?? 'failed',
          action: servicePlan.policy.failureAction,
        };
        stop.abort();
      }
      return outcome;
    });
  const services = await Promise.all(work);
  options.signal?.removeEventListener('abort', onOuterAbort);
  const failed = failure !== null || services.some((s) => s.outcome !== 'succeeded');
  return { outcome: failed ? 'failed' : 'succeeded', services, failure, durationMs: Date.now() - started };
}

async function rollService(
  plan: ServicePlan,
  spec: ServiceSpec | undefined,
  options: RolloutOptions,
  signal: AbortSignal,
): Promise<ServiceOutcome> {
  const service = serviceKey(plan.namespace, plan.name);
  const log = options.log.child({ service });
  const emit = (event: RolloutEvent): void => options.onEvent?.(event);
  const t0 = Date.now();
  const deadline = t0 + plan.policy.progressDeadlineMs;
  const result: ServiceOutcome = {
    namespace: plan.namespace,
    name: plan.name,
    change: plan.change,
    outcome: 'succeeded',
    reason: null,
    durationMs: 0,
    started: [],
    removed: [],
  };
  const totalNew = plan.batches.flat().filter((s) => s.action !== 'remove').length;
  const allowedFailures = Math.floor(plan.policy.maxFailureRatio * totalNew);
  const failures: string[] = [];
  const monitors: Promise<void>[] = [];
  // A failure seen by a monitor window ends the rollout at the next step, not only at the end.
  const monitor: { failure: RolloutFailure | null } = { failure: null };
  const stopping: Promise<void>[] = [];

  const agentFor = (node: string): NodeAgent => {
    const agent = options.agents.get(node);
    if (!agent) throw new RolloutFailure(`node ${node} is not connected`);
    return agent;
  };

  const recordFailure = (step: { name: string; node: string; slot: string }, reason: string): void => {
    failures.push(`${step.name} on ${step.node}: ${reason}`);
    emit({ type: 'replica-failed', service, name: step.name, node: step.node, slot: step.slot, reason });
    log.warn({ replica: step.name, node: step.node, reason }, 'replica failed');
    if (failures.length > allowedFailures)
      throw new RolloutFailure(`${step.name} on ${step.node}: ${reason}`);
  };

  const remove = async (old: ReplicaRef, reason: string): Promise<void> => {
    const agent = agentFor(old.node);
    await options.mesh?.withdraw(old, spec?.stopGracePeriodMs ?? DEFAULT_DRAIN_MS);
    await agent.removeReplica(old.name);
    result.removed.push({ name: old.name, node: old.node });
    emit({ type: 'replica-removed', service, name: old.name, node: old.node, reason });
  };

  /** A removal that fails is left for the next reconcile, which sees the old replica as a duplicate. */
  const removeInBackground = (old: ReplicaRef, reason: string): Promise<void> =>
    remove(old, reason).catch((error: unknown) => {
      log.warn(
        { replica: old.name, node: old.node, err: error },
        'could not remove an old replica; the next reconcile retries',
      );
    });

  /** Starts the new replica of a step and waits until it is healthy; false if it failed. */
  const startReplica = async (
    step: Extract<ReplicaStep, { action: 'create' | 'replace' }>,
  ): Promise<boolean> => {
    if (!spec) throw new RolloutFailure(`no spec for ${service}`);
    const agent = agentFor(step.node);
    const request = await buildReplicaRequest(spec, options.desired, step, options.readSecret);
    const begin = Date.now();
    emit({ type: 'replica-starting', service, name: step.name, node: step.node, slot: step.slot });
    let wait: ReplicaWaitResult;
    try {
      await agent.ensureReplica(request);
      result.started.push({ name: step.name, node: step.node });
      wait = await agent.awaitReplica(step.name, { timeoutMs: Math.max(1, deadline - Date.now()) });
    } catch (error) {
      const e = asBerthError(error);
      if (e.disposition === 'terminal') {
        recordFailure(step, e.message);
        return false;
      }
      throw new RolloutFailure(e.message);
    }
    if (wait.outcome !== 'healthy') {
      const reason =
        wait.outcome === 'timeout'
          ? `not healthy within the progress deadline (${plan.policy.progressDeadlineMs} ms)`
          : (wait.reason ?? wait.outcome);
      recordFailure(step, reason);
      return false;
    }
    if (wait.replica) await options.mesh?.admit(wait.replica);
    emit({
      type: 'replica-healthy',
      service,
      name: step.name,
      node: step.node,
      slot: step.slot,
      ms: Date.now() - begin,
    });
    if (plan.policy.monitorMs > 0) {
      monitors.push(
        agent
          .watchReplica(step.name, { durationMs: plan.policy.monitorMs })
          .then((watched) => {
            if (watched.outcome !== 'healthy') {
              recordFailure(step, `failed within the monitor window: ${watched.reason ?? watched.outcome}`);
            }
          })
          .catch((error: unknown) => {
            monitor.failure ??=
              error instanceof RolloutFailure ? error : new RolloutFailure(asBerthError(error).message);
          }),
      );
    }
    return true;
  };

  emit({ type: 'service-started', service, change: plan.change, batches: plan.batches.length });
  try {
    for (const [index, batch] of plan.batches.entries()) {
      if (monitor.failure) throw monitor.failure;
      if (signal.aborted) {
        result.outcome = 'aborted';
        result.reason = 'rollout stopped';
        break;
      }
      const starts = batch.filter(
        (s): s is Extract<ReplicaStep, { action: 'create' | 'replace' }> => s.action !== 'remove',
      );
      const removals = batch.filter(
        (s): s is Extract<ReplicaStep, { action: 'remove' }> => s.action === 'remove',
      );
      // The old replica of a step is removed unless it is the very container being recreated
      // (same name on the same node; a slot moved off a drained node keeps its name).
      const oldOf = (s: (typeof starts)[number]): ReplicaRef | null =>
        s.action === 'replace' && (s.old.name !== s.name || s.old.node !== s.node) ? s.old : null;

      if (plan.policy.order === 'stop-first') {
        await Promise.all([
          ...starts
            .map((s) => oldOf(s))
            .filter((o): o is ReplicaRef => o !== null)
            .map((o) => remove(o, 'replaced')),
          ...removals.map((r) => remove(r.old, r.reason)),
        ]);
        await Promise.all(starts.map(startReplica));
      } else {
        const healthy = await Promise.all(starts.map(startReplica));
        // A replica whose replacement failed keeps running: what ran before keeps serving.
        // Old replicas stop in the background (a stop can take the whole grace period) while
        // the next batch starts; the service is complete only once they are gone.
        for (const [i, s] of starts.entries()) {
          const old = oldOf(s);
          if (healthy[i] && old) stopping.push(removeInBackground(old, 'replaced'));
        }
        for (const r of removals) stopping.push(removeInBackground(r.old, r.reason));
      }
      emit({ type: 'batch-done', service, batch: index + 1, batches: plan.batches.length });
      if (plan.policy.delayMs > 0 && index < plan.batches.length - 1)
        await sleep(plan.policy.delayMs, signal);
    }
    await Promise.all([...monitors, ...stopping]);
    if (monitor.failure) throw monitor.failure;
  } catch (error) {
    // Stops already under way finish (they were decided on healthy replacements).
    await Promise.allSettled(stopping);
    // Monitors still running are not awaited: a rollback should start at once.
    result.outcome = 'failed';
    result.reason = error instanceof RolloutFailure ? error.message : asBerthError(error).message;
  }
  if (result.outcome === 'succeeded' && failures.length > 0) {
    log.warn({ failures }, 'rollout finished with failures within maxFailureRatio');
  }
  result.durationMs = Date.now() - t0;
  emit({
    type: 'service-finished',
    service,
    outcome: result.outcome,
    reason: result.reason,
    ms: result.durationMs,
  });
  return result;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
