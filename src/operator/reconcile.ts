/**
 * One reconcile, as a controller: choose the target revision (the head, or the last good one when
 * the head failed), preflight it, plan, roll out, record. Level-triggered: it starts from what is
 * observed, so running it twice changes nothing the second time, and a reconcile after a crash
 * simply continues an interrupted rollout.
 */
import { randomUUID } from 'node:crypto';
import type { NodeAgent, ObservedState } from '../api/types.js';
import type { Logger } from '../core/log.js';
import { shortRevision } from '../source/revision.js';
import { observeNodes } from './observe-nodes.js';
import { runRevisionJobs } from './reconcile-jobs.js';
import { recordPlan, recordRollout, recordUnchanged } from './reconcile-record.js';
import { runPlan } from './reconcile-rollout.js';
import { chooseTarget } from './reconcile-target.js';
import type { ReconcileContext, ReconcileDeps, ReconcileResult } from './reconcile-types.js';

export type { ReconcileDeps, ReconcileOutcome, ReconcileResult } from './reconcile-types.js';

export async function reconcile(
  deps: ReconcileDeps,
  options: { ref?: string } = {},
): Promise<ReconcileResult> {
  const reconcileId = randomUUID().slice(0, 8);
  const head = options.ref === undefined ? await deps.source.head() : await deps.source.resolve(options.ref);
  const log = deps.log.child({ reconcileId, revision: shortRevision(head) });
  const ctx: ReconcileContext = {
    deps,
    log,
    head,
    state: await deps.store.read(),
    observe: observeOnce(deps, log),
  };
  const base = { reconcileId, headRevision: head, rollout: null, rollback: null };

  const target = await chooseTarget(ctx);
  if (!target.ok) {
    return {
      ...base,
      plan: target.plan,
      targetRevision: null,
      outcome: 'failed',
      reason: target.error.message,
      error: target.error,
    };
  }
  deps.mesh?.setDesired(target.desired);
  deps.cronJobs?.setDesired(target.desired);
  const { plan } = target;
  // Jobs first: a Service that depends on one rolls only once it succeeded at this revision.
  const jobs = await runRevisionJobs(ctx, target.desired);
  if (!jobs.ok) {
    const outcome = jobs.interrupted ? 'interrupted' : 'failed';
    return {
      ...base,
      plan,
      desired: target.desired,
      targetRevision: target.revision,
      outcome,
      reason: jobs.error.message,
      error: jobs.error,
    };
  }
  if (!plan.hasChanges) {
    await recordUnchanged(ctx, target);
    const failed = target.headError;
    return {
      ...base,
      plan,
      desired: target.desired,
      targetRevision: target.revision,
      ...(failed === null
        ? { outcome: 'unchanged', reason: null, error: null }
        : { outcome: 'failed', reason: failed.message, error: failed }),
    };
  }

  const changes = plan.services.filter((s) => s.change !== 'unchanged');
  log.info({ services: changes.map((s) => `${s.namespace}/${s.name}:${s.change}`) }, 'rolling out');
  await recordPlan(ctx, plan);
  await deps.onRollout?.({
    revision: target.revision,
    kind: 'rollout',
    message: `rolling out ${shortRevision(target.revision)}`,
  });
  const { agents } = await ctx.observe();
  const rollout = await runPlan(deps, { plan, agents, log }, true);
  const finish = await recordRollout(ctx, target, rollout);
  return { ...base, plan, desired: target.desired, rollout, targetRevision: target.revision, ...finish };
}

/** The nodes are asked at most once per reconcile, as soon as a revision is to be planned. */
function observeOnce(deps: ReconcileDeps, log: Logger): ReconcileContext['observe'] {
  let observation: Promise<{ agents: ReadonlyMap<string, NodeAgent>; observed: ObservedState }> | null = null;
  return () => {
    observation ??= (async () => {
      const agents = deps.agents();
      return { agents, observed: await observeNodes(agents, log) };
    })();
    return observation;
  };
}
