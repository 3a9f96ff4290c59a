/**
 * The record step of a reconcile: the audit log (history.jsonl), the last good revision and the
 * failed revisions (state.json). What it writes is what the next reconcile's choice of target reads.
 */
import type { ObservedState } from '../api/types.js';
import { BerthError, type ErrorCode } from '../core/errors.js';
import type { RolloutResult, ServiceOutcome } from '../rollout/apply-plan.js';
import { shortRevision } from '../source/revision.js';
import { rollBack } from './reconcile-rollout.js';
import type { ReconcileContext, ReconcileResult } from './reconcile-types.js';
import { renderPlanText } from '../plan/render-plan.js';
import type { Plan } from '../plan/types.js';
import type { HistoryEntry } from './state-store.js';

type CommitSummary = { author?: string; message?: string };
type Finish = Pick<ReconcileResult, 'outcome' | 'reason' | 'error' | 'rollback'>;

/** The revision a rollout took the cluster to, as the record step needs it. */
export interface RecordTarget {
  revision: string;
  /** Why the head is not the target; null when it is. */
  headError: BerthError | null;
  /** Prefixes each history entry's change (`saved plan`), so the audit log says how it was applied. */
  via?: string;
}

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

/**
 * Keeps the plan a revision is about to be rolled out with, as `berth plan` prints it (the
 * dashboard's history shows it). Best effort: a state dir that cannot take it does not stop the
 * rollout, whose own records are what the next reconcile depends on.
 */
export async function recordPlan(ctx: ReconcileContext, plan: Plan): Promise<void> {
  const text = renderPlanText({ revision: plan.revision, against: null, plan, problems: [] });
  const at = new Date().toISOString();
  try {
    await ctx.deps.store.update((s) => {
      s.plans = { ...s.plans, [plan.revision]: { at, text } };
    });
  } catch (error) {
    ctx.log.warn({ err: error }, 'could not keep the plan in the state dir');
  }
}

/** The cluster already matches the target: the head becomes the last good revision if it is the target. */
export async function recordUnchanged(ctx: ReconcileContext, target: { revision: string }): Promise<void> {
  if (target.revision === ctx.head && ctx.state.lastGood?.revision !== ctx.head) await markLastGood(ctx);
  ctx.log.debug('nothing to change');
}

export async function recordRollout(
  ctx: ReconcileContext,
  target: RecordTarget,
  rollout: RolloutResult,
): Promise<Finish> {
  const { deps, log } = ctx;
  const commit = await commitSummary(ctx, target.revision);
  const entries = (outcome: HistoryEntry['outcome']): HistoryEntry[] =>
    historyEntries(target.revision, rollout, outcome, commit, target.via);
  if (rollout.outcome === 'succeeded') {
    await deps.store.appendHistory(entries('succeeded'));
    if (target.revision === ctx.head) await markLastGood(ctx);
    log.info({ ms: rollout.durationMs }, 'rollout succeeded');
    return target.headError === null
      ? { outcome: 'succeeded', reason: null, error: null, rollback: null }
      : { outcome: 'failed', reason: target.headError.message, error: target.headError, rollback: null };
  }
  if (rollout.outcome === 'interrupted') return recordInterruption(ctx, rollout, entries('interrupted'));
  if (rollout.failure === null) {
    // Failures under `failureAction: continue`: the revision is not rolled back and not held
    // as failed; it stays unconverged until a trigger tries it again.
    await deps.store.appendHistory(entries('failed'));
    const reason = rollout.services.find((s) => s.outcome === 'failed')?.reason ?? 'a service failed';
    const error = new BerthError('ERR_ROLLOUT_UNHEALTHY', reason);
    return { outcome: 'failed', reason, error, rollback: null };
  }
  return recordRolloutFailure(ctx, target, rollout, entries);
}

/**
 * The infrastructure stopped the rollout (a node lost, the operator stopping): nothing is blamed
 * on the revision. It is not recorded as failed and not rolled back; the history says what
 * happened, and the error is transient, so the operator reconciles again soon, observes the lost
 * node as down and places its replicas elsewhere, as it does for any node lost.
 */
async function recordInterruption(
  ctx: ReconcileContext,
  rollout: RolloutResult,
  entries: HistoryEntry[],
): Promise<Finish> {
  const interruption = rollout.interruption!;
  const { observed } = await ctx.observe();
  await ctx.deps.store.appendHistory(
    entries.map((e, i) => {
      const service = rollout.services[i]!;
      if (service.outcome === 'succeeded') return { ...e, outcome: 'succeeded' };
      return { ...e, reason: interruptionReason(service, observed) ?? e.reason };
    }),
  );
  const service = rollout.services.find((s) => `${s.namespace}/${s.name}` === interruption.service);
  const reason = `${interruption.service}: ${(service && interruptionReason(service, observed)) ?? interruption.reason}`;
  ctx.log.warn(
    { node: interruption.node, code: interruption.code, reason },
    'rollout interrupted by the infrastructure; retrying soon',
  );
  return {
    outcome: 'interrupted',
    reason,
    // A node lost mid-call is declared down (and its replicas moved) only after the heartbeat
    // timeout: a retry before then would be interrupted by the same node again.
    error: retryableError(
      interruption.code,
      `${reason}; the next reconcile goes on from what runs`,
      interruption.node === null ? 0 : NODE_LOSS_SETTLE_MS,
    ),
    rollback: null,
  };
}

/** What interrupted a service, for the audit log: the node, why, and how many replicas were on it. */
function interruptionReason(service: ServiceOutcome, observed: ObservedState): string | null {
  const interruption = service.interruption;
  if (interruption === null) return null;
  if (interruption.node === null) return `interrupted: ${interruption.reason}`;
  const node = interruption.node;
  const on = new Set(
    observed.nodes
      .find((n) => n.name === node)
      ?.replicas.filter((r) => r.namespace === service.namespace && r.service === service.name)
      .map((r) => r.name) ?? [],
  );
  for (const r of service.started) if (r.node === node) on.add(r.name);
  for (const r of service.removed) if (r.node === node) on.delete(r.name);
  // Counted by slot: a slot whose old and new replica were both on the node moves once.
  const slots = new Set([...on].map(slotOf)).size;
  const moved = slots === 1 ? '1 replica on it moves' : `${slots} replicas on it move`;
  return `node ${node} lost during the rollout (${interruption.reason}); ${moved} to the other nodes`;
}

/** The slot part of a replica name (`berth.<namespace>.<service>.<slot>.<hash>`, see replicaName). */
function slotOf(name: string): string {
  return name.split('.').slice(0, -1).join('.');
}

/** An error the operator retries with back-off: the fault's own code when it is transient. */
/**
 * How long a retry after losing a node mid-call waits at least: a joined node is declared down
 * (and its replicas moved) once it missed its heartbeats for this long (the cluster's
 * NODE_DOWN_AFTER_MS, which this layer cannot import).
 */
const NODE_LOSS_SETTLE_MS = 5_000;

function retryableError(code: ErrorCode, message: string, retryAfterMs: number): BerthError {
  const own = new BerthError(code, message, { retryAfterMs });
  return own.disposition === 'transient'
    ? own
    : new BerthError('ERR_AGENT_UNREACHABLE', message, { retryAfterMs });
}

async function recordRolloutFailure(
  ctx: ReconcileContext,
  target: RecordTarget,
  rollout: RolloutResult,
  entries: (outcome: HistoryEntry['outcome']) => HistoryEntry[],
): Promise<Finish> {
  const { deps, log } = ctx;
  const { revision } = target;
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
    await deps.store.appendHistory(entries('failed'));
    return { outcome: 'failed', reason, error, rollback: null };
  }
  const lastGood = ctx.state.lastGood?.revision ?? null;
  const to = lastGood === revision ? null : lastGood;
  const rollback = await rollBack(deps, { lastGood: to, rollout, log });
  if (rollback !== null && to !== null)
    await deps.store.appendHistory(rollbackEntries(to, revision, rollback, target.via));
  const outcome =
    rollback === null || rollback.outcome === 'succeeded'
      ? 'rolled back'
      : rollback.outcome === 'interrupted'
        ? 'rollback interrupted'
        : 'rollback failed';
  await deps.store.appendHistory(entries(outcome).map((e) => ({ ...e, reason: e.reason ?? reason })));
  if (outcome === 'rollback interrupted') {
    // The revision failed on its own; only the way back was cut short: the next reconcile
    // (soon, the error is transient) converges on the last good revision from what runs.
    const cut = rollback!.interruption!;
    const message = `${reason}; the rollback to ${shortRevision(to!)} was interrupted (${cut.reason}); the next reconcile finishes it`;
    return {
      outcome: 'failed',
      reason,
      error: retryableError(cut.code, message, cut.node === null ? 0 : NODE_LOSS_SETTLE_MS),
      rollback,
    };
  }
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

function rollbackEntries(
  lastGood: string,
  failedRevision: string,
  result: RolloutResult,
  via: string | undefined,
): HistoryEntry[] {
  const outcome =
    result.outcome === 'succeeded'
      ? 'succeeded'
      : result.outcome === 'interrupted'
        ? 'interrupted'
        : 'rollback failed';
  return historyEntries(lastGood, result, outcome, {}, via).map((e) => ({
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
  via: string | undefined,
): HistoryEntry[] {
  const at = new Date().toISOString();
  return result.services.map((s) => ({
    at,
    revision,
    ...commit,
    service: `${s.namespace}/${s.name}`,
    change: via === undefined ? s.change : `${via}: ${s.change}`,
    // The whole revision shares one outcome (a rollback returns every service), except that a
    // service that failed or was interrupted inside an otherwise successful rollout says so.
    outcome:
      outcome !== 'succeeded' || s.outcome === 'succeeded'
        ? outcome
        : s.outcome === 'interrupted'
          ? 'interrupted'
          : 'failed',
    reason: s.reason,
    durationMs: s.durationMs,
    started: s.started,
    removed: s.removed,
  }));
}
