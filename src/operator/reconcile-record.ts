/**
 * The record step of a reconcile: the audit log (history.jsonl), the last good revision and the
 * failed revisions (state.json). What it writes is what the next reconcile's choice of target reads.
 */
import { BerthError } from '../core/errors.js';
import type { RolloutResult } from '../rollout/apply-plan.js';
import { rollBack } from './reconcile-rollout.js';
import type { Prepared, ReconcileContext, ReconcileResult } from './reconcile-types.js';
import type { HistoryEntry } from './state-store.js';

type CommitSummary = { author?: string; message?: string };
type Finish = Pick<ReconcileResult, 'outcome' | 'reason' | 'error' | 'rollback'>;

/** The head was refused before anything was touched; it is not retried until a newer commit. */
export async function recordRefusal(ctx: ReconcileContext, error: BerthError): Promise<void> {
  const { deps, head, log } = ctx;
  log.error({ code: error.code, reason: error.message }, 'the revision is refused; it will not be applied');
  // A deployed revision whose secrets no longer decrypt lost its key, not its worth: it stays good.
  if (error.code === 'ERR_SECRET_UNREADABLE' && ctx.state.lastGood?.revision === head) return;
  const commit = await commitSummary(ctx, head);
  const at = new Date().toISOString();
  await deps.store.update((s) => {
    s.failed[head] = { at, reason: error.message, code: error.code };
  });
  const outcome = error.code === 'ERR_SECRET_UNREADABLE' ? 'failed' : 'invalid';
  await deps.store.appendHistory([
    {
      at,
      revision: head,
      ...commit,
      service: null,
      change: 'none',
      outcome,
      reason: error.message,
      durationMs: 0,
      started: [],
      removed: [],
    },
  ]);
  log.warn({ reason: error.message }, 'revision recorded as failed');
}

/** The cluster already matches the target: the head becomes the last good revision if it is the target. */
export async function recordUnchanged(ctx: ReconcileContext, target: Prepared): Promise<void> {
  if (target.revision === ctx.head && ctx.state.lastGood?.revision !== ctx.head) await markLastGood(ctx);
  ctx.log.debug('nothing to change');
}

export async function recordRollout(
  ctx: ReconcileContext,
  target: Prepared & { headError: BerthError | null },
  rollout: RolloutResult,
): Promise<Finish> {
  const { deps, log } = ctx;
  const commit = await commitSummary(ctx, target.revision);
  if (rollout.outcome === 'succeeded') {
    await deps.store.appendHistory(historyEntries(target.revision, rollout, 'succeeded', commit));
    if (target.revision === ctx.head) await markLastGood(ctx);
    log.info({ ms: rollout.durationMs }, 'rollout succeeded');
    return target.headError === null
      ? { outcome: 'succeeded', reason: null, error: null, rollback: null }
      : { outcome: 'failed', reason: target.headError.message, error: target.headError, rollback: null };
  }
  if (rollout.failure === null) {
    // Stopped (shutdown) before it finished: nothing failed; the next reconcile continues.
    await deps.store.appendHistory(historyEntries(target.revision, rollout, 'failed', commit, 'interrupted'));
    const error = new BerthError(
      'ERR_INTERNAL',
      'the rollout was interrupted; the next reconcile continues it',
    );
    return { outcome: 'failed', reason: 'rollout interrupted', error, rollback: null };
  }
  return recordRolloutFailure(ctx, target.revision, rollout, commit);
}

async function recordRolloutFailure(
  ctx: ReconcileContext,
  revision: string,
  rollout: RolloutResult,
  commit: CommitSummary,
): Promise<Finish> {
  const { deps, log } = ctx;
  const failure = rollout.failure!;
  const reason = `${failure.service}: ${failure.reason}`;
  const error = new BerthError('ERR_ROLLOUT_UNHEALTHY', reason);
  log.error({ reason, action: failure.action }, 'rollout failed');
  if (revision === ctx.head) {
    await deps.store.update((s) => {
      s.failed[revision] = { at: new Date().toISOString(), reason, code: error.code };
    });
  }
  if (failure.action !== 'rollback') {
    await deps.store.appendHistory(historyEntries(revision, rollout, 'failed', commit));
    return { outcome: 'failed', reason, error, rollback: null };
  }
  const lastGood = ctx.state.lastGood?.revision ?? null;
  const to = lastGood === revision ? null : lastGood;
  const rollback = await rollBack(deps, { lastGood: to, rollout, log });
  if (rollback !== null && to !== null)
    await deps.store.appendHistory(rollbackEntries(to, revision, rollback));
  const outcome = rollback === null || rollback.outcome === 'succeeded' ? 'rolled back' : 'rollback failed';
  await deps.store.appendHistory(
    historyEntries(revision, rollout, outcome, commit).map((e) => ({ ...e, reason: e.reason ?? reason })),
  );
  return { outcome: outcome === 'rolled back' ? 'rolled back' : 'failed', reason, error, rollback };
}

async function markLastGood(ctx: ReconcileContext): Promise<void> {
  await ctx.deps.store.update((s) => {
    s.lastGood = { revision: ctx.head, at: new Date().toISOString() };
  });
}

async function commitSummary(ctx: ReconcileContext, revision: string): Promise<CommitSummary> {
  const info = await ctx.deps.source.commitInfo(revision).catch(() => null);
  return info ? { author: info.author, message: info.message.split('\n')[0] ?? '' } : {};
}

function rollbackEntries(lastGood: string, failedRevision: string, result: RolloutResult): HistoryEntry[] {
  const outcome = result.outcome === 'succeeded' ? 'succeeded' : 'rollback failed';
  return historyEntries(lastGood, result, outcome, {}).map((e) => ({
    ...e,
    change: `rollback: ${e.change}`,
    rolledBackFrom: failedRevision,
  }));
}

function historyEntries(
  revision: string,
  result: RolloutResult,
  outcome: HistoryEntry['outcome'],
  commit: CommitSummary,
  reasonOverride?: string,
): HistoryEntry[] {
  const at = new Date().toISOString();
  return result.services.map((s) => ({
    at,
    revision,
    ...commit,
    service: `${s.namespace}/${s.name}`,
    change: s.change,
    // The whole revision shares one outcome (a rollback returns every service), except that a
    // service that failed inside an otherwise successful rollout says so.
    outcome: outcome === 'succeeded' && s.outcome !== 'succeeded' ? 'failed' : outcome,
    reason: reasonOverride ?? s.reason,
    durationMs: s.durationMs,
    started: s.started,
    removed: s.removed,
  }));
}
