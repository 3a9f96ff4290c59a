import { BerthError } from '../core/errors.js';
import { computePlan } from '../plan/compute-plan.js';
import { shortRevision } from '../source/revision.js';
import { checkRevision, checkSecrets, revisionCheckError } from './preflight.js';
import { recordRefusal } from './reconcile-record.js';
import type { Prepared, ReconcileContext, Refused, Target } from './reconcile-types.js';
import { failedRevisionError } from './state-store.js';
import { targetRevision } from './target-revision.js';

/** Preflight of one revision: manifests load, nothing unsupported, plan, secrets deliverable. */
export async function prepareRevision(ctx: ReconcileContext, revision: string): Promise<Prepared | Refused> {
  // The nodes are asked while the manifests load (both are on the way to a rollout's first start);
  // what they say is only waited for, and a failure to ask them only thrown, once the revision
  // passed its checks.
  const observation = ctx.observe();
  observation.catch(() => undefined);
  const check = checkRevision(await ctx.deps.source.load(revision), ctx.deps.berthPorts);
  if (!check.ok) return { ok: false, error: revisionCheckError(check), plan: null };
  const plan = computePlan(check.desired, (await observation).observed);
  const secretError = await checkSecrets(plan, check.desired, ctx.deps.readSecret);
  if (secretError) return { ok: false, error: secretError, plan };
  return { ok: true, revision, desired: check.desired, plan };
}

/** The head if it passes preflight, else the last good revision (see targetRevision). */
export async function chooseTarget(ctx: ReconcileContext): Promise<Target> {
  const { head, state } = ctx;
  const recorded = state.failed[head];
  const atHead: Prepared | Refused = recorded
    ? { ok: false, error: failedRevisionError(recorded), plan: null }
    : await prepareRevision(ctx, head);
  if (atHead.ok) return { ...atHead, headError: null };
  if (!recorded) await recordRefusal(ctx, atHead.error);
  const fallback = targetRevision(head, true, state.lastGood?.revision ?? null);
  if (fallback === null) return atHead;
  const atFallback = await prepareRevision(ctx, fallback);
  if (atFallback.ok) return { ...atFallback, headError: atHead.error };
  const message = `${atHead.error.message}; the last good revision ${shortRevision(fallback)} cannot be applied either: ${atFallback.error.message}`;
  return { ok: false, error: new BerthError(atHead.error.code, message), plan: atFallback.plan };
}
