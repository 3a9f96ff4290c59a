import { observeCluster } from '../api/observe-cluster.js';
import type { NodeAgent } from '../api/types.js';
import type { Logger } from '../core/log.js';
import { computePlan } from '../plan/compute-plan.js';
import type { Plan } from '../plan/types.js';
import { applyPlan, type RolloutResult } from '../rollout/apply-plan.js';
import { shortRevision } from '../source/revision.js';
import { DEFAULT_CREATE_CONCURRENCY, limitCreatesPerNode } from './node-create-limit.js';
import type { ReconcileDeps } from './reconcile-types.js';

/**
 * The one call into the rollout engine: the plan carries every replica request, so nothing of
 * the desired state travels beside it. A rollback is not interruptible: once begun it finishes,
 * so a shutdown never leaves the cluster between a failed and a good revision.
 */
export function runPlan(
  deps: ReconcileDeps,
  args: { plan: Plan; agents: ReadonlyMap<string, NodeAgent>; log: Logger },
  interruptible: boolean,
): Promise<RolloutResult> {
  return applyPlan(args.plan, {
    agents: limitCreatesPerNode(args.agents, deps.createConcurrency ?? DEFAULT_CREATE_CONCURRENCY),
    readSecret: deps.readSecret,
    log: args.log,
    ...(deps.onEvent ? { onEvent: deps.onEvent } : {}),
    ...(interruptible && deps.signal ? { signal: deps.signal } : {}),
    ...(deps.mesh ? { mesh: deps.mesh } : {}),
  });
}

/**
 * Returns every replica to the last good revision through a normal plan (with each service's
 * rollback policy). Without a last good revision, only the replicas this rollout started are
 * removed: what ran before it was never stopped (start-first) and keeps running, and a rollback
 * never removes what it did not add. Null when no plan ran.
 */
export async function rollBack(
  deps: ReconcileDeps,
  args: { lastGood: string | null; rollout: RolloutResult; log: Logger },
): Promise<RolloutResult | null> {
  const { log } = args;
  const agents = deps.agents();
  if (args.lastGood === null) {
    await removeStarted(agents, args.rollout, log);
    return null;
  }
  const loaded = await deps.source.load(args.lastGood);
  if (!loaded.ok) {
    log.error('the last good revision no longer loads; cannot roll back');
    return null;
  }
  log.warn({ to: shortRevision(args.lastGood) }, 'rolling back');
  await deps.onRollout?.({
    revision: args.lastGood,
    kind: 'rollback',
    message: `rolling back to ${shortRevision(args.lastGood)}`,
  });
  deps.mesh?.setDesired(loaded.desired);
  const observed = await observeCluster(agents, log);
  const plan = computePlan(loaded.desired, observed, { policy: 'rollback' });
  return runPlan(deps, { plan, agents, log: log.child({ rollback: true }) }, false);
}

/**
 * Removes the replicas a failed rollout started (a replica already gone is fine). One whose node
 * does not answer is left: the next reconcile sees it as what it is, a replica of a failed revision.
 */
async function removeStarted(
  agents: ReadonlyMap<string, NodeAgent>,
  rollout: RolloutResult,
  log: Logger,
): Promise<void> {
  const started = rollout.services.flatMap((s) => s.started);
  log.warn(
    { replicas: started.length },
    'no earlier good revision: removing the replicas this rollout started',
  );
  const removals = await Promise.allSettled(
    started.map(async (r) => {
      const agent = agents.get(r.node);
      if (!agent) throw new Error(`node ${r.node} is not connected`);
      await agent.removeReplica(r.name);
    }),
  );
  for (const [i, removal] of removals.entries()) {
    if (removal.status === 'rejected')
      log.warn(
        { replica: started[i]?.name, node: started[i]?.node, err: removal.reason },
        'could not remove a replica the failed rollout started',
      );
  }
}
