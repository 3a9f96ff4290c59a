import { randomUUID } from 'node:crypto';
import type { NodeAgent } from '../api/types.js';
import type { Logger } from '../core/log.js';
import type { DesiredState, LoadResult } from '../manifests/types.js';
import { computePlan } from '../plan/compute-plan.js';
import type { MeshController } from './mesh-controller.js';
import type { Plan } from '../plan/types.js';
import { applyPlan, type RolloutEvent, type RolloutResult } from '../rollout/apply-plan.js';
import type { SecretReader } from '../secrets/secret-reader.js';
import { shortRevision } from '../source/revision.js';
import { unsupportedFeatures } from './capabilities.js';
import { observeCluster } from '../api/observe-cluster.js';
import { unreadableSecrets } from './secret-check.js';
import type { RevisionSource } from './revision-source.js';
import type { HistoryEntry, StateStore } from './state-store.js';

export interface ReconcileDeps {
  source: RevisionSource;
  agents: () => ReadonlyMap<string, NodeAgent>;
  store: StateStore;
  log: Logger;
  readSecret: SecretReader | null;
  onEvent?: (event: RolloutEvent) => void;
  signal?: AbortSignal;
  /** The routing mesh of `berth run`; one-shot commands have none. */
  mesh?: MeshController;
}

export type ReconcileOutcome = 'unchanged' | 'succeeded' | 'rolled back' | 'failed' | 'invalid';

export interface ReconcileResult {
  reconcileId: string;
  /** What the branch (or the requested ref) points at. */
  headRevision: string;
  /** What this reconcile converged toward: the head, or the last good revision when the head failed. */
  targetRevision: string | null;
  outcome: ReconcileOutcome;
  reason: string | null;
  plan: Plan | null;
  rollout: RolloutResult | null;
  rollback: RolloutResult | null;
}

function problemsOf(result: LoadResult): string[] {
  if (!result.ok) return result.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`);
  return unsupportedFeatures(result.desired);
}

/**
 * One reconcile: read git at the branch head, observe every node, plan, roll out, record.
 * Level-triggered: it starts from what is observed, so running it twice changes nothing the
 * second time, and a reconcile after a crash simply continues an interrupted rollout.
 */
export async function reconcile(
  deps: ReconcileDeps,
  options: { ref?: string } = {},
): Promise<ReconcileResult> {
  const reconcileId = randomUUID().slice(0, 8);
  const head = options.ref === undefined ? await deps.source.head() : await deps.source.resolve(options.ref);
  const log = deps.log.child({ reconcileId, revision: shortRevision(head) });
  const state = await deps.store.read();
  const base: Omit<ReconcileResult, 'outcome' | 'reason' | 'targetRevision'> = {
    reconcileId,
    headRevision: head,
    plan: null,
    rollout: null,
    rollback: null,
  };
  const lastGood = state.lastGood?.revision ?? null;

  // A revision that failed is not retried until a newer commit arrives; meanwhile the last
  // good revision is the desired state, so drift is still repaired.
  let target = head;
  let headFailure: string | null = state.failed[head]?.reason ?? null;
  let desired: DesiredState | null = null;
  if (headFailure === null) {
    const loaded = await deps.source.load(head);
    const problems = problemsOf(loaded);
    if (problems.length > 0) {
      headFailure = `invalid manifests: ${problems.join('; ')}`;
      log.error({ problems }, 'revision does not load; it will not be applied');
      await recordFailure(deps, head, headFailure, 'invalid', log);
    } else if (loaded.ok) {
      desired = loaded.desired;
    }
  }
  if (headFailure !== null) {
    if (lastGood === null || lastGood === head) {
      return { ...base, targetRevision: null, outcome: 'failed', reason: headFailure };
    }
    target = lastGood;
    const loaded = await deps.source.load(lastGood);
    if (!loaded.ok || problemsOf(loaded).length > 0) {
      return {
        ...base,
        targetRevision: null,
        outcome: 'failed',
        reason: `last good revision ${shortRevision(lastGood)} no longer loads`,
      };
    }
    desired = loaded.desired;
  }
  if (desired === null) throw new Error('unreachable: desired state not loaded');
  deps.mesh?.setDesired(desired);

  const agents = deps.agents();
  const observed = await observeCluster(agents, log);
  let plan = computePlan(desired, observed);
  const secretProblems = await unreadableSecrets(plan, desired, deps.readSecret);
  if (secretProblems.length > 0) {
    const reason = `secrets cannot be delivered: ${secretProblems.join('; ')}`;
    log.error({ problems: secretProblems }, 'secrets cannot be read; the revision will not be applied');
    // Only a revision that was never applied is recorded as failed: when the deployed revision
    // itself cannot be delivered any more (the key went away), nothing is changed and it stays good.
    if (target !== head || lastGood === head) {
      return { ...base, plan, targetRevision: null, outcome: 'failed', reason };
    }
    headFailure = reason;
    await recordFailure(deps, head, reason, 'failed', log);
    if (lastGood === null) return { ...base, plan, targetRevision: null, outcome: 'failed', reason };
    target = lastGood;
    const loaded = await deps.source.load(lastGood);
    if (!loaded.ok || problemsOf(loaded).length > 0) {
      return { ...base, targetRevision: null, outcome: 'failed', reason };
    }
    desired = loaded.desired;
    deps.mesh?.setDesired(desired);
    plan = computePlan(desired, observed);
    const lastGoodProblems = await unreadableSecrets(plan, desired, deps.readSecret);
    if (lastGoodProblems.length > 0) {
      return { ...base, plan, targetRevision: null, outcome: 'failed', reason };
    }
  }
  if (!plan.hasChanges) {
    if (target === head && lastGood !== head) {
      await deps.store.update((s) => {
        s.lastGood = { revision: head, at: new Date().toISOString() };
      });
    }
    log.debug('nothing to change');
    return {
      ...base,
      plan,
      targetRevision: target,
      outcome: headFailure === null ? 'unchanged' : 'failed',
      reason: headFailure,
    };
  }

  log.info(
    {
      services: plan.services
        .filter((s) => s.change !== 'unchanged')
        .map((s) => `${s.namespace}/${s.name}:${s.change}`),
    },
    'rolling out',
  );
  const rollout = await applyPlan(plan, {
    agents,
    readSecret: deps.readSecret,
    log,
    ...(deps.onEvent ? { onEvent: deps.onEvent } : {}),
    ...(deps.signal ? { signal: deps.signal } : {}),
    ...(deps.mesh ? { mesh: deps.mesh } : {}),
  });
  const info = await deps.source.commitInfo(target).catch(() => null);
  const commit = info ? { author: info.author, message: info.message.split('\n')[0] ?? '' } : {};

  if (rollout.outcome === 'succeeded') {
    await deps.store.appendHistory(historyEntries(target, rollout, 'succeeded', commit));
    if (target === head) {
      await deps.store.update((s) => {
        s.lastGood = { revision: head, at: new Date().toISOString() };
      });
    }
    log.info({ ms: rollout.durationMs }, 'rollout succeeded');
    return {
      ...base,
      plan,
      rollout,
      targetRevision: target,
      outcome: headFailure === null ? 'succeeded' : 'failed',
      reason: headFailure,
    };
  }

  if (rollout.failure === null) {
    // Stopped (shutdown) before it finished: nothing failed; the next reconcile continues.
    await deps.store.appendHistory(historyEntries(target, rollout, 'failed', commit, 'interrupted'));
    return {
      ...base,
      plan,
      rollout,
      targetRevision: target,
      outcome: 'failed',
      reason: 'rollout interrupted',
    };
  }

  const reason = `${rollout.failure.service}: ${rollout.failure.reason}`;
  log.error({ reason, action: rollout.failure.action }, 'rollout failed');
  if (target === head) {
    await deps.store.update((s) => {
      s.failed[head] = { at: new Date().toISOString(), reason };
    });
  }
  if (rollout.failure.action !== 'rollback') {
    await deps.store.appendHistory(historyEntries(target, rollout, 'failed', commit));
    return { ...base, plan, rollout, targetRevision: target, outcome: 'failed', reason };
  }

  const rollback = await rollBack(deps, {
    failedRevision: target,
    lastGood: target === lastGood ? null : lastGood,
    rollout,
    log,
  });
  const outcome = rollback === null || rollback.outcome === 'succeeded' ? 'rolled back' : 'rollback failed';
  await deps.store.appendHistory(
    historyEntries(target, rollout, outcome, commit).map((e) => ({ ...e, reason: e.reason ?? reason })),
  );
  return {
    ...base,
    plan,
    rollout,
    rollback,
    targetRevision: target,
    outcome: outcome === 'rolled back' ? 'rolled back' : 'failed',
    reason,
  };
}

/**
 * Returns every replica to the last good revision through a normal plan (with each service's
 * rollback policy). Without a last good revision, the replicas this rollout started are removed:
 * what ran before it was never stopped (start-first) and keeps running.
 */
async function rollBack(
  deps: ReconcileDeps,
  args: { failedRevision: string; lastGood: string | null; rollout: RolloutResult; log: Logger },
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
  deps.mesh?.setDesired(loaded.desired);
  const observed = await observeCluster(agents, log);
  const plan = computePlan(loaded.desired, observed, { policy: 'rollback' });
  const result = await applyPlan(plan, {
    agents,
    readSecret: deps.readSecret,
    log: log.child({ rollback: true }),
    ...(deps.onEvent ? { onEvent: deps.onEvent } : {}),
    ...(deps.mesh ? { mesh: deps.mesh } : {}),
  });
  await deps.store.appendHistory(
    historyEntries(
      args.lastGood,
      result,
      result.outcome === 'succeeded' ? 'succeeded' : 'rollback failed',
      {},
    ).map((e) => ({
      ...e,
      change: `rollback: ${e.change}`,
      rolledBackFrom: args.failedRevision,
    })),
  );
  return result;
}

async function recordFailure(
  deps: ReconcileDeps,
  revision: string,
  reason: string,
  outcome: HistoryEntry['outcome'],
  log: Logger,
): Promise<void> {
  const info = await deps.source.commitInfo(revision).catch(() => null);
  await deps.store.update((s) => {
    s.failed[revision] = { at: new Date().toISOString(), reason };
  });
  await deps.store.appendHistory([
    {
      at: new Date().toISOString(),
      revision,
      ...(info ? { author: info.author, message: info.message.split('\n')[0] ?? '' } : {}),
      service: null,
      change: 'none',
      outcome,
      reason,
      durationMs: 0,
      started: [],
      removed: [],
    },
  ]);
  log.warn({ reason }, 'revision recorded as failed');
}

function historyEntries(
  revision: string,
  result: RolloutResult,
  outcome: HistoryEntry['outcome'],
  commit: { author?: string; message?: string },
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
