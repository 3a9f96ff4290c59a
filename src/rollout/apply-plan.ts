import type { NodeAgent, ReplicaWaitResult } from '../api/types.js';
import { asBerthError, type ErrorCode } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { MeshMembership } from '../api/types.js';
import { volumeLocations } from '../api/volume-locations.js';
import { serviceKey } from '../plan/replica-name.js';
import type { Plan, ReplicaRef, ReplicaStep, ServicePlan } from '../plan/types.js';
import type { SecretReader } from '../secrets/secret-reader.js';
import { faultSourceOf, infrastructureCause, InfrastructureFault, onNode } from './fault-attribution.js';
import { resolveReplicaRequest } from './planned-secrets.js';
import { createdAhead, type CreatedAhead } from './pre-creation.js';

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

/** What stopped a service's rollout that was not the revision's fault; node null: none in particular. */
export interface Interruption {
  node: string | null;
  code: ErrorCode;
  reason: string;
}

export interface ServiceOutcome {
  namespace: string;
  name: string;
  change: ServicePlan['change'];
  /**
   * `failed`: by the revision's own faults (past maxFailureRatio). `interrupted`: by the
   * infrastructure (a node lost, the operator stopping); nothing is blamed on the revision.
   * `aborted`: stopped because another service failed.
   */
  outcome: 'succeeded' | 'failed' | 'interrupted' | 'aborted';
  reason: string | null;
  /** Set when the outcome is `interrupted`. */
  interruption: Interruption | null;
  durationMs: number;
  /** Replicas started and removed, with their nodes: the audit trail of what changed. */
  started: { name: string; node: string }[];
  removed: { name: string; node: string }[];
}

export interface RolloutResult {
  /** `interrupted`: the infrastructure stopped it and the revision failed nowhere; the next reconcile goes on. */
  outcome: 'succeeded' | 'failed' | 'interrupted';
  services: ServiceOutcome[];
  /** The first failure of the revision that decided the outcome, and what the policy says to do about it. */
  failure: { service: string; reason: string; action: 'rollback' | 'pause' | 'continue' } | null;
  /** The first interruption by the infrastructure, whatever the outcome. */
  interruption: (Interruption & { service: string }) | null;
  durationMs: number;
}

export interface RolloutOptions {
  agents: ReadonlyMap<string, NodeAgent>;
  /** Resolves the plan's secret references to plaintext, per replica, at send time. */
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
  /** How long a replica seen dead is watched for its node going with it (NODE_SETTLE_MS). */
  nodeSettleMs?: number;
}

/** Used for a replica whose service left the desired state: Docker's own default grace. */
const DEFAULT_DRAIN_MS = 10_000;

class RolloutFailure extends Error {}

/**
 * Executes a plan: services in parallel, each service batch by batch. A batch is done when its
 * new replicas are healthy; with start-first the old replicas are removed only then, with
 * stop-first before. Every new replica stays under watch for the monitor window after it became
 * healthy (windows overlap with later batches, as in Swarm); the service is complete when the
 * last window has passed. The revision's own failures count against `maxFailureRatio`; past it
 * the service fails, the other services stop at their next step, and the caller applies the
 * failure action. A fault of the infrastructure (fault-attribution.ts) stops only its service, as
 * interrupted: nothing is blamed on the revision and the other services carry on.
 */
export async function applyPlan(plan: Plan, options: RolloutOptions): Promise<RolloutResult> {
  const started = Date.now();
  const stop = new AbortController();
  const onOuterAbort = (): void => stop.abort();
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  if (options.signal?.aborted) stop.abort();
  let failure: RolloutResult['failure'] = null;

  const work = plan.services
    .filter((s) => s.batches.length > 0)
    .map(async (servicePlan) => {
      const outcome = await rollService(servicePlan, options, plan.secretCiphertexts, stop.signal);
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
  const interrupted = services.find((s) => s.interruption !== null);
  const interruption = interrupted?.interruption
    ? { service: serviceKey(interrupted.namespace, interrupted.name), ...interrupted.interruption }
    : null;
  const outcome: RolloutResult['outcome'] =
    failure === null && services.every((s) => s.outcome === 'succeeded')
      ? 'succeeded'
      : failure === null && services.every((s) => s.outcome === 'succeeded' || s.outcome === 'interrupted')
        ? 'interrupted'
        : 'failed';
  return { outcome, services, failure, interruption, durationMs: Date.now() - started };
}

/** One service's rollout as it runs: what it reports, its failures and its pending work. */
interface ServiceRun {
  plan: ServicePlan;
  options: RolloutOptions;
  ciphertexts: Readonly<Record<string, string>>;
  signal: AbortSignal;
  service: string;
  log: Logger;
  deadline: number;
  result: ServiceOutcome;
  allowedFailures: number;
  failures: string[];
  /** Monitor windows still open. */
  monitors: Promise<void>[];
  /** A failure seen by a monitor window ends the rollout at the next step, not only at the end. */
  monitorFailure: RolloutFailure | null;
  /** Likewise a node lost under a monitor window. */
  monitorInterruption: InfrastructureFault | null;
  /** Old replicas being stopped in the background (start-first). */
  stopping: Promise<void>[];
  /** Containers of the next batch created ahead (pre-creation.ts): what is left of them goes. */
  ahead: CreatedAhead;
}

type StartStep = Extract<ReplicaStep, { action: 'create' | 'replace' }>;
type RemoveStep = Extract<ReplicaStep, { action: 'remove' }>;

function emit(run: ServiceRun, event: RolloutEvent): void {
  run.options.onEvent?.(event);
}

function newServiceRun(
  plan: ServicePlan,
  options: RolloutOptions,
  ciphertexts: Readonly<Record<string, string>>,
  signal: AbortSignal,
): ServiceRun {
  const service = serviceKey(plan.namespace, plan.name);
  const totalNew = plan.batches.flat().filter((s) => s.action !== 'remove').length;
  return {
    plan,
    options,
    ciphertexts,
    signal,
    service,
    log: options.log.child({ service }),
    deadline: Date.now() + plan.policy.progressDeadlineMs,
    result: {
      namespace: plan.namespace,
      name: plan.name,
      change: plan.change,
      outcome: 'succeeded',
      reason: null,
      interruption: null,
      durationMs: 0,
      started: [],
      removed: [],
    },
    allowedFailures: Math.floor(plan.policy.maxFailureRatio * totalNew),
    failures: [],
    monitors: [],
    monitorFailure: null,
    monitorInterruption: null,
    stopping: [],
    ahead: createdAhead(),
  };
}

function agentFor(run: ServiceRun, node: string): NodeAgent {
  const agent = run.options.agents.get(node);
  if (!agent) throw new InfrastructureFault(node, 'ERR_AGENT_UNREACHABLE', `node ${node} is not connected`);
  return agent;
}

function recordFailure(run: ServiceRun, step: StartStep, reason: string): void {
  run.failures.push(`${step.name} on ${step.node}: ${reason}`);
  emit(run, {
    type: 'replica-failed',
    service: run.service,
    name: step.name,
    node: step.node,
    slot: step.slot,
    reason,
  });
  run.log.warn({ replica: step.name, node: step.node, reason }, 'replica failed');
  if (run.failures.length > run.allowedFailures)
    throw new RolloutFailure(`${step.name} on ${step.node}: ${reason}`);
}

async function removeReplica(run: ServiceRun, old: ReplicaRef, reason: string): Promise<void> {
  const agent = agentFor(run, old.node);
  await run.options.mesh?.withdraw(old, run.plan.stopGracePeriodMs ?? DEFAULT_DRAIN_MS);
  await onNode(old.node, () => agent.removeReplica(old.name));
  run.result.removed.push({ name: old.name, node: old.node });
  emit(run, { type: 'replica-removed', service: run.service, name: old.name, node: old.node, reason });
}

/** A removal that fails is left for the next reconcile, which sees the old replica as a duplicate. */
function removeInBackground(run: ServiceRun, old: ReplicaRef, reason: string): void {
  run.stopping.push(
    removeReplica(run, old, reason).catch((error: unknown) => {
      run.log.warn(
        { replica: old.name, node: old.node, err: error },
        'could not remove an old replica; the next reconcile retries',
      );
    }),
  );
}

/**
 * Sends the step's planned request and waits for the replica. A request the node refuses as
 * invalid (its image missing, say) is the replica's failure (`refused`: there is no container
 * whose node could be asked about it); a node lost meanwhile is thrown as an InfrastructureFault.
 */
async function sendAndAwait(
  run: ServiceRun,
  step: StartStep,
  agent: NodeAgent,
  sent: () => void,
): Promise<ReplicaWaitResult & { refused?: true }> {
  const request = await resolveReplicaRequest(step.request, run.ciphertexts, run.options.readSecret);
  run.ahead.taken(step.name);
  if (request.volumes !== undefined && request.volumes.length > 0) {
    volumeLocations().placed(step.node, request);
    await volumeLocations().save(run.log);
  }
  const ensured = onNode(step.node, () => agent.ensureReplica(request));
  sent();
  try {
    await ensured;
  } catch (error) {
    if (error instanceof InfrastructureFault) throw error;
    return { outcome: 'unhealthy', replica: null, reason: asBerthError(error).message, refused: true };
  }
  run.result.started.push({ name: step.name, node: step.node });
  const timeoutMs = Math.max(1, run.deadline - Date.now());
  return onNode(step.node, () => agent.awaitReplica(step.name, { timeoutMs }));
}

/**
 * Creates the containers of `batch` ahead of their start: only for start-first services without
 * volumes (stop-first must free what the old replica holds before anything new exists), and only
 * new names (a replica recreated in place under its own name cannot be created beside itself). A
 * creation that fails is no failure: the start does it again and reports what stops it.
 */
function createAhead(run: ServiceRun, batch: ReplicaStep[]): void {
  if (run.plan.policy.order !== 'start-first' || run.signal.aborted) return;
  for (const step of batch) {
    if (step.action === 'remove' || (step.request.volumes ?? []).length > 0) continue;
    if (step.action === 'replace' && step.old.name === step.name && step.old.node === step.node) continue;
    const agent = run.options.agents.get(step.node);
    if (!agent) continue;
    run.ahead.create(step, async () => {
      const request = await resolveReplicaRequest(step.request, run.ciphertexts, run.options.readSecret);
      await agent.prepareReplica(request);
    });
  }
}

/** Removes the containers created ahead that no start took (the rollout stopped before their batch). */
async function removeLeftAhead(run: ServiceRun): Promise<void> {
  for (const left of await run.ahead.untaken()) {
    await onNode(left.node, () => agentFor(run, left.node).removeReplica(left.name)).catch((error: unknown) =>
      run.log.warn(
        { replica: left.name, node: left.node, err: error },
        'could not remove a container created ahead; the next plan removes it',
      ),
    );
  }
}

/** A wait that did not end healthy: the revision's failure (recorded), or its node's (thrown). */
async function judgeFailedWait(
  run: ServiceRun,
  step: StartStep,
  agent: NodeAgent,
  wait: ReplicaWaitResult,
  reason: string,
): Promise<void> {
  const fault = await infrastructureCause(agent, step.name, wait, run.options.nodeSettleMs);
  if (fault) throw fault;
  recordFailure(run, step, reason);
}

/** Keeps a healthy new replica under watch for the monitor window, in the background. */
function watchMonitorWindow(run: ServiceRun, step: StartStep, agent: NodeAgent): void {
  if (run.plan.policy.monitorMs <= 0) return;
  const durationMs = run.plan.policy.monitorMs;
  run.monitors.push(
    onNode(step.node, () => agent.watchReplica(step.name, { durationMs }))
      .then(async (watched) => {
        if (watched.outcome === 'healthy') return;
        const reason = `failed within the monitor window: ${watched.reason ?? watched.outcome}`;
        await judgeFailedWait(run, step, agent, watched, reason);
      })
      .catch((error: unknown) => {
        if (error instanceof InfrastructureFault) run.monitorInterruption ??= error;
        else
          run.monitorFailure ??=
            error instanceof RolloutFailure ? error : new RolloutFailure(asBerthError(error).message);
      }),
  );
}

/** Starts the new replica of a step and waits until it is healthy; false if it failed. */
async function startReplica(run: ServiceRun, step: StartStep, sent: () => void): Promise<boolean> {
  const agent = agentFor(run, step.node);
  const begin = Date.now();
  const { service } = run;
  emit(run, { type: 'replica-starting', service, name: step.name, node: step.node, slot: step.slot });
  // Its creation, when done ahead, counts in its time from nothing to healthy.
  const aheadMs = run.ahead.msOf(step.name);
  const wait = await sendAndAwait(run, step, agent, sent);
  if (wait.outcome !== 'healthy') {
    const reason =
      wait.outcome === 'timeout'
        ? `not healthy within the progress deadline (${run.plan.policy.progressDeadlineMs} ms)`
        : (wait.reason ?? wait.outcome);
    if (wait.refused) recordFailure(run, step, reason);
    else await judgeFailedWait(run, step, agent, wait, reason);
    return false;
  }
  if (wait.replica) await run.options.mesh?.admit(wait.replica);
  const ms = Date.now() - begin + aheadMs;
  emit(run, { type: 'replica-healthy', service, name: step.name, node: step.node, slot: step.slot, ms });
  watchMonitorWindow(run, step, agent);
  return true;
}

/**
 * The old replica of a step is removed unless it is the very container being recreated (same
 * name on the same node; a slot moved off a drained node keeps its name).
 */
function oldOf(step: StartStep): ReplicaRef | null {
  return step.action === 'replace' && (step.old.name !== step.name || step.old.node !== step.node)
    ? step.old
    : null;
}

/**
 * Starts a batch's replicas and waits for every one of them, so that what the batch started is
 * known in full before anything is decided (a rollback removes exactly that). Throws what stopped
 * one of them, the revision's own failure before a fault of the infrastructure.
 */
async function startAll(run: ServiceRun, starts: StartStep[], onSent: () => void): Promise<boolean[]> {
  let unsent = starts.length;
  const sent = (): void => {
    if (--unsent === 0) onSent();
  };
  const settled = await Promise.allSettled(starts.map((s) => startReplica(run, s, sent)));
  const errors = settled.flatMap((s) => (s.status === 'rejected' ? [asError(s.reason)] : []));
  const first = errors.find((e) => e instanceof RolloutFailure) ?? errors[0];
  if (first !== undefined) throw first;
  return settled.map((s) => s.status === 'fulfilled' && s.value);
}

/** `onSent`: every new replica of the batch was sent, and the wait for their health begins. */
async function runBatch(run: ServiceRun, batch: ReplicaStep[], onSent: () => void): Promise<void> {
  const starts = batch.filter((s): s is StartStep => s.action !== 'remove');
  const removals = batch.filter((s): s is RemoveStep => s.action === 'remove');
  if (run.plan.policy.order === 'stop-first') {
    await Promise.all([
      ...starts
        .map(oldOf)
        .filter((o): o is ReplicaRef => o !== null)
        .map((o) => removeReplica(run, o, 'replaced')),
      ...removals.map((r) => removeReplica(run, r.old, r.reason)),
    ]);
    await startAll(run, starts, onSent);
    return;
  }
  const healthy = await startAll(run, starts, onSent);
  // A replica whose replacement failed keeps running: what ran before keeps serving. Old
  // replicas stop in the background (a stop can take the whole grace period) while the next
  // batch starts; the service is complete only once they are gone.
  for (const [i, s] of starts.entries()) {
    const old = oldOf(s);
    if (healthy[i] && old) removeInBackground(run, old, 'replaced');
  }
  for (const r of removals) removeInBackground(run, r.old, r.reason);
}

/** What the monitor windows saw so far, thrown: the revision's failure first. */
function throwMonitorOutcome(run: ServiceRun): void {
  if (run.monitorFailure) throw run.monitorFailure;
  if (run.monitorInterruption) throw run.monitorInterruption;
}

/** Runs the batches one after the other; throws the failure or fault that ends the service's rollout. */
async function runBatches(run: ServiceRun): Promise<void> {
  const { plan, signal } = run;
  for (const [index, batch] of plan.batches.entries()) {
    throwMonitorOutcome(run);
    if (signal.aborted) {
      // The operator stopping is no fault of the revision; another service failing ends this one too.
      if (run.options.signal?.aborted)
        throw new InfrastructureFault(null, 'ERR_INTERNAL', 'the operator is stopping');
      run.result.outcome = 'aborted';
      run.result.reason = 'rollout stopped';
      return;
    }
    const next = plan.batches[index + 1];
    // While this batch is checked, the next one's containers are created (not started).
    await runBatch(run, batch, () => {
      if (next) createAhead(run, next);
    });
    emit(run, { type: 'batch-done', service: run.service, batch: index + 1, batches: plan.batches.length });
    if (plan.policy.delayMs > 0 && index < plan.batches.length - 1) await sleep(plan.policy.delayMs, signal);
  }
  await Promise.all([...run.monitors, ...run.stopping]);
  throwMonitorOutcome(run);
  // Only once every replica is gone: Docker refuses to remove a volume a container still uses.
  await Promise.all(
    (plan.deleteVolumes ?? []).map(({ node, name }) =>
      onNode(node, () => agentFor(run, node).removeVolume(name)),
    ),
  );
}

/** Ends the service's rollout with what stopped it: the revision failed, or the infrastructure interrupted it. */
function settleStopped(run: ServiceRun, error: unknown): void {
  const { result } = run;
  if (
    error instanceof RolloutFailure ||
    !(error instanceof InfrastructureFault || faultSourceOf(error) === 'infrastructure')
  ) {
    result.outcome = 'failed';
    result.reason = error instanceof Error ? error.message : String(error);
    return;
  }
  const fault =
    error instanceof InfrastructureFault ? error : InfrastructureFault.of(null, asBerthError(error));
  result.outcome = 'interrupted';
  result.reason = fault.message;
  result.interruption = { node: fault.node, code: fault.code, reason: fault.message };
  run.log.warn(
    { node: fault.node, code: fault.code, reason: fault.message },
    'rollout interrupted by the infrastructure',
  );
}

async function rollService(
  plan: ServicePlan,
  options: RolloutOptions,
  ciphertexts: Readonly<Record<string, string>>,
  signal: AbortSignal,
): Promise<ServiceOutcome> {
  const t0 = Date.now();
  const run = newServiceRun(plan, options, ciphertexts, signal);
  const { result } = run;
  emit(run, {
    type: 'service-started',
    service: run.service,
    change: plan.change,
    batches: plan.batches.length,
  });
  try {
    await runBatches(run).finally(() => removeLeftAhead(run));
  } catch (error) {
    // Stops already under way finish (they were decided on healthy replacements).
    await Promise.allSettled(run.stopping);
    // Monitors still running are not awaited: a rollback should start at once.
    settleStopped(run, error);
  }
  if (result.outcome === 'succeeded' && run.failures.length > 0) {
    run.log.warn({ failures: run.failures }, 'rollout finished with failures within maxFailureRatio');
  }
  result.durationMs = Date.now() - t0;
  emit(run, {
    type: 'service-finished',
    service: run.service,
    outcome: result.outcome,
    reason: result.reason,
    ms: result.durationMs,
  });
  return result;
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : asBerthError(reason);
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
