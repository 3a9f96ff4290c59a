import { observeCluster } from '../api/observe-cluster.js';
import type { NodeAgent } from '../api/types.js';
import type { Logger } from '../core/log.js';
import { computePlan } from '../plan/compute-plan.js';
import type { Plan } from '../plan/types.js';
import { applyPlan, type RolloutResult } from '../rollout/apply-plan.js';
import { shortRevision } from '../source/revision.js';
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
    agents: args.agents,
    readSecret: deps.readSecret,
    log: args.log,
    ...(deps.onEvent ? { onEvent: deps.onEvent } : {}),
    ...(interruptible && deps.signal ? { signal: deps.signal } : {}),
    ...(deps.mesh ? { mesh: deps.mesh } : {}),
  });
}

/**
 * Returns every replica to the last good revision through a normal plan (with each service's
 * rollback policy). Without a last good revision, the replicas this rollout started are removed:
 * what ran before it was never stopped (start-first) and keeps running. Null when no plan ran.
 */
export async function rollBack(
  deps: ReconcileDeps,
  args: { lastGood: string | null; rollout: RolloutResult; log: Logger },
): Promise<RolloutResult | null> {
  const { log } = args;
  const agents = deps.agents();
  if (args.lastGood === null) {
    log.warn('no earlier good revision: removing the replicas this rollout started');
    await Promise.all(
      args.rollout.services.flatMap((s) =>
        s.started.map(async (r) => {
          await agents.get(r.node)?.removeReplica(r.name);
        }),
      ),
    );
    return null;
  }
  const loaded = await deps.source.load(args.lastGood);
  if (!loaded.ok) {
    log.error('the last good revision no longer loads; cannot roll back');
    return null;
  }
  log.warn({ to: shortRevision(args.lastGood) }, 'rolling back');
  await deps.onRollout?.(`rolling back to ${shortRevision(args.lastGood)}`);
  deps.mesh?.setDesired(loaded.desired);
  const observed = await observeCluster(agents, log);
  const plan = computePlan(loaded.desired, observed, { policy: 'rollback' });
  return runPlan(deps, { plan, agents, log: log.child({ rollback: true }) }, false);
}
