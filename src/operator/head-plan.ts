import type { ObservedState } from '../api/types.js';
import { computePlan } from '../plan/compute-plan.js';
import { planJobs } from '../plan/job-plan.js';
import { renderPlanText, type PlanProblem } from '../plan/render-plan.js';
import { shortRevision } from '../source/revision.js';
import { unsupportedFeatures } from './capabilities.js';
import type { Operator } from './operator.js';
import type { RevisionSource } from './revision-source.js';
import type { OperatorState, StateStore } from './state-store.js';

/** The branch head against the live cluster, as the dashboard shows it. */
export interface HeadPlan {
  /** What the branch points at now. */
  revision: string;
  /** The last good revision (what the cluster was last fully rolled out to). */
  deployed: string | null;
  /** `berth plan` for the head against the live cluster (or why the head cannot be applied). */
  text: string;
  /** null when the head cannot be applied at all. */
  hasChanges: boolean | null;
  /** Why the cluster does not run the head; empty when it does. */
  why: string[];
  /** Set when the head failed and is held as failed (the dashboard offers to retry it). */
  failed: { at: string; reason: string } | null;
}

export interface HeadPlanArgs {
  source: Pick<RevisionSource, 'head' | 'load'>;
  store: Pick<StateStore, 'read'>;
  operator: Pick<Operator, 'lastResult' | 'conditions'>;
  observe(): Promise<ObservedState>;
}

/**
 * What `berth plan` would print for the branch head now (text format, without the Configs and
 * Secrets it compares), computed from git and the nodes as observed, with the reasons head and
 * deployed differ: a failed head, a rollout under way, the operator stalled, a commit not yet seen.
 */
export async function headPlan(args: HeadPlanArgs): Promise<HeadPlan> {
  const [revision, state] = await Promise.all([args.source.head(), args.store.read()]);
  const loaded = await args.source.load(revision);
  const problems: PlanProblem[] = loaded.ok
    ? unsupportedFeatures(loaded.desired).map((message) => ({ file: null, line: null, col: null, message }))
    : loaded.problems.map((p) => ({ ...p }));
  const base = { revision, deployed: state.lastGood?.revision ?? null };
  const why = reasons(args, state, revision);
  const failedAt = state.failed[revision];
  const failed = failedAt ? { at: failedAt.at, reason: failedAt.reason } : null;
  if (!loaded.ok || problems.length > 0) {
    const text = renderPlanText({ revision, against: null, plan: null, problems });
    return { ...base, text, hasChanges: null, why, failed };
  }
  const plan = computePlan(loaded.desired, await args.observe());
  const jobs = planJobs(loaded.desired, state.jobs ?? {});
  const text = renderPlanText({ revision, against: null, plan, problems: [], jobs });
  return { ...base, text, hasChanges: plan.hasChanges || jobs.some((j) => j.action === 'run'), why, failed };
}

function reasons(args: HeadPlanArgs, state: OperatorState, head: string): string[] {
  const why: string[] = [];
  const last = args.operator.lastResult;
  const failed = state.failed[head];
  if (failed) {
    why.push(
      `${shortRevision(head)} failed at ${failed.at} and is not tried again until a newer commit or a retry: ${failed.reason}`,
    );
  }
  if (last !== null && last.headRevision !== head) {
    why.push(
      `the operator has not reconciled ${shortRevision(head)} yet (its last reconcile saw ${shortRevision(last.headRevision)})`,
    );
  }
  const holding = args.operator.conditions.find((c) => c.status === 'True');
  if (holding?.type === 'Reconciling') why.push(`in progress: ${holding.message}`);
  if (holding?.type === 'Stalled') why.push(`stalled (${holding.reason}): ${holding.message}`);
  if (!failed && last?.error) why.push(last.error.message);
  if (state.lastGood?.revision !== head && why.length === 0) {
    why.push(
      `the last good revision is ${state.lastGood ? shortRevision(state.lastGood.revision) : 'none yet'}`,
    );
  }
  return why;
}
