/**
 * A saved plan (`berth apply --plan FILE`), once the CLI has checked that neither the revision nor
 * the cluster moved since it was computed: it runs and is recorded by the very steps a reconcile
 * uses, so a saved plan's failure is rolled back, and a fault of the infrastructure is not blamed
 * on its revision, exactly as in a reconcile.
 */
import { randomUUID } from 'node:crypto';
import type { ObservedState } from '../api/types.js';
import type { Plan } from '../plan/types.js';
import { shortRevision } from '../source/revision.js';
import { checkRevision, revisionCheckError } from './preflight.js';
import { runRevisionJobs } from './reconcile-jobs.js';
import { recordPlan, recordRollout, recordUnchanged } from './reconcile-record.js';
import { runPlan } from './reconcile-rollout.js';
import type { ReconcileContext, ReconcileDeps, ReconcileResult } from './reconcile-types.js';

export async function reconcileSavedPlan(
  deps: ReconcileDeps,
  saved: { plan: Plan; revision: string; observed: ObservedState },
): Promise<ReconcileResult> {
  const { plan, revision, observed } = saved;
  const reconcileId = randomUUID().slice(0, 8);
  const log = deps.log.child({ reconcileId, revision: shortRevision(revision), savedPlan: true });
  const agents = deps.agents();
  const ctx: ReconcileContext = {
    deps,
    log,
    head: revision,
    state: await deps.store.read(),
    // The observation the plan was checked against: what ran when the rollout began.
    observe: () => Promise.resolve({ agents, observed }),
  };
  const base = { reconcileId, headRevision: revision, targetRevision: revision, plan };
  // The plan holds the Services' steps; the revision's Jobs (a migration a Service depends on)
  // run first, exactly as in a reconcile. The revision is the one checked unmoved, so its Jobs are
  // the ones `berth plan` showed.
  const check = checkRevision(await deps.source.load(revision), deps.berthPorts);
  if (!check.ok) {
    const error = revisionCheckError(check);
    return { ...base, outcome: 'failed', reason: error.message, error, rollout: null, rollback: null };
  }
  const jobs = await runRevisionJobs(ctx, check.desired);
  if (!jobs.ok) {
    const outcome = jobs.interrupted ? 'interrupted' : 'failed';
    return { ...base, outcome, reason: jobs.error.message, error: jobs.error, rollout: null, rollback: null };
  }
  if (!plan.hasChanges) {
    await recordUnchanged(ctx, { revision });
    return { ...base, outcome: 'unchanged', reason: null, error: null, rollout: null, rollback: null };
  }
  await recordPlan(ctx, plan);
  await deps.onRollout?.({
    revision,
    kind: 'saved plan',
    message: `applying the saved plan of ${shortRevision(revision)}`,
  });
  const rollout = await runPlan(deps, { plan, agents, log }, true);
  const finish = await recordRollout(ctx, { revision, headError: null, via: 'saved plan' }, rollout);
  return { ...base, rollout, ...finish };
}
