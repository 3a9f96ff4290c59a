import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { observeCluster } from '../api/observe-cluster.js';
import type { NodeAgent } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/log.js';
import { reconcile } from '../operator/reconcile.js';
import type { RevisionSource } from '../operator/revision-source.js';
import type { HistoryEntry, StateStore } from '../operator/state-store.js';
import { clusterChanges, fingerprintCluster } from '../plan/cluster-fingerprint.js';
import { parsePlanFile, withoutCredential, type PlanFile } from '../plan/plan-file.js';
import { applyPlan, type RolloutEvent, type RolloutResult } from '../rollout/apply-plan.js';
import { undeliverablePlannedSecrets } from '../rollout/planned-secrets.js';
import { openSecretReader, type SecretReader } from '../secrets/secret-reader.js';
import { shortRevision } from '../source/revision.js';
import {
  absoluteRepo,
  closeCluster,
  openCluster,
  openRevisionSource,
  openStateStore,
  type ClusterOptions,
} from './context.js';
import { formatRolloutEvent } from './progress.js';

export interface SavedPlanOptions extends ClusterOptions {
  repo?: string;
  path: string;
  branch: string;
  ref?: string;
  retry?: boolean;
  plan?: string;
}

/**
 * Reads `--plan FILE`. The file names its repository, path and ref, so `--plan` alone is enough;
 * `--repo`, `--path` and `--ref` given as well must name the same (a --repo may carry the
 * credential the file leaves out).
 */
export async function readSavedPlan(
  file: string,
  options: SavedPlanOptions,
  command: Command,
): Promise<PlanFile> {
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `cannot read the plan ${file}: ${error instanceof Error ? error.message : String(error)}`,
    );
  });
  const saved = parsePlanFile(text, file);
  const { source } = saved;
  const mismatch = (what: string, given: string, planned: string): BerthError =>
    new BerthError('ERR_BAD_REQUEST', `${what} ${given} is not the plan's ${what} ${planned} (${file})`);
  if (options.repo !== undefined && withoutCredential(absoluteRepo(options.repo)) !== source.repo)
    throw mismatch('--repo', withoutCredential(options.repo), source.repo);
  if (command.getOptionValueSource('path') === 'cli' && options.path !== source.path)
    throw mismatch('--path', options.path, source.path);
  if (options.ref !== undefined && options.ref !== source.ref)
    throw mismatch('--ref', options.ref, source.ref);
  return saved;
}

/** Refuses a plan whose ref has moved: it was computed from another revision. */
async function refuseMovedRevision(source: RevisionSource, saved: PlanFile): Promise<void> {
  const now = await source.resolve(saved.source.ref);
  if (now !== saved.source.revision) {
    throw new BerthError(
      'ERR_STATE',
      `the plan was computed at revision ${shortRevision(saved.source.revision)} but ${saved.source.ref} is now ${shortRevision(now)}; make a new plan with berth plan --out`,
    );
  }
}

/** Refuses a plan whose cluster has moved, naming every change, or whose secrets cannot be read. */
async function refuseMovedCluster(
  saved: PlanFile,
  agents: ReadonlyMap<string, NodeAgent>,
  readSecret: SecretReader | null,
  log: Logger,
): Promise<void> {
  const changes = clusterChanges(saved.observed, fingerprintCluster(await observeCluster(agents, log)));
  if (changes.length > 0) {
    throw new BerthError(
      'ERR_STATE',
      `the cluster changed since the plan was computed; make a new plan with berth plan --out:\n${changes.map((c) => `  ${c}`).join('\n')}`,
    );
  }
  const problems = await undeliverablePlannedSecrets(saved.plan, readSecret);
  if (problems.length > 0) {
    throw new BerthError('ERR_SECRET_UNREADABLE', `secrets cannot be delivered: ${problems.join('; ')}`);
  }
}

function historyOf(
  revision: string,
  rollout: RolloutResult,
  outcome: HistoryEntry['outcome'],
): HistoryEntry[] {
  const at = new Date().toISOString();
  return rollout.services.map((s) => ({
    at,
    revision,
    service: `${s.namespace}/${s.name}`,
    change: `saved plan: ${s.change}`,
    outcome: outcome === 'succeeded' && s.outcome !== 'succeeded' ? 'failed' : outcome,
    reason: s.reason,
    durationMs: s.durationMs,
    started: s.started,
    removed: s.removed,
  }));
}

interface SavedPlanRun {
  saved: PlanFile;
  source: RevisionSource;
  store: StateStore;
  agents: ReadonlyMap<string, NodeAgent>;
  readSecret: SecretReader | null;
  log: Logger;
  print: (line: string) => void;
  onEvent: (event: RolloutEvent) => void;
}

/**
 * A saved plan that failed is answered as a reconcile answers a failed revision: the revision is
 * recorded as failed, and a reconcile then returns the cluster to the last good revision (or,
 * with none, removes the replicas this plan started; what ran before keeps running).
 */
async function rollBackSavedPlan(run: SavedPlanRun, rollout: RolloutResult, reason: string): Promise<string> {
  const revision = run.saved.source.revision;
  const state = await run.store.read();
  const lastGood = state.lastGood?.revision ?? null;
  if (lastGood === null || lastGood === revision) {
    await Promise.all(
      rollout.services.flatMap((s) =>
        s.started.map(async (r) => {
          await run.agents.get(r.node)?.removeReplica(r.name);
        }),
      ),
    );
    return 'the replicas it started were removed';
  }
  const { source, store, log, readSecret, onEvent } = run;
  const back = await reconcile(
    { source, agents: () => run.agents, store, log, readSecret, onEvent },
    { ref: revision },
  );
  log.info({ outcome: back.outcome, reason }, 'saved plan rolled back');
  return back.rollout?.outcome === 'failed'
    ? `rolling back to ${shortRevision(lastGood)} failed too`
    : `the cluster is back on ${shortRevision(lastGood)}`;
}

async function executeSavedPlan(run: SavedPlanRun): Promise<boolean> {
  const { saved, store, print } = run;
  const revision = saved.source.revision;
  if (!saved.plan.hasChanges) {
    print(`Nothing to change: the cluster runs ${shortRevision(revision)}.`);
    await store.update((s) => void (s.lastGood = { revision, at: new Date().toISOString() }));
    return true;
  }
  const { agents, readSecret, log, onEvent } = run;
  const rollout = await applyPlan(saved.plan, { agents, readSecret, log, onEvent });
  if (rollout.outcome === 'succeeded') {
    await store.appendHistory(historyOf(revision, rollout, 'succeeded'));
    await store.update((s) => void (s.lastGood = { revision, at: new Date().toISOString() }));
    print(`Converged on ${shortRevision(revision)} in ${(rollout.durationMs / 1000).toFixed(1)}s.`);
    return true;
  }
  const reason = rollout.failure
    ? `${rollout.failure.service}: ${rollout.failure.reason}`
    : 'rollout did not finish';
  await store.update((s) => void (s.failed[revision] = { at: new Date().toISOString(), reason }));
  if (rollout.failure?.action !== 'rollback') {
    await store.appendHistory(historyOf(revision, rollout, 'failed'));
    print(`The saved plan failed: ${reason}`);
    return false;
  }
  await store.appendHistory(historyOf(revision, rollout, 'rolled back'));
  print(
    `The saved plan failed and was rolled back (${await rollBackSavedPlan(run, rollout, reason)}): ${reason}`,
  );
  return false;
}

/**
 * `berth apply --plan FILE`: executes exactly the saved plan and nothing else. Before touching
 * anything it resolves the ref again and observes the cluster again, and refuses when either
 * moved since the plan was computed.
 */
export async function applySavedPlan(saved: PlanFile, options: SavedPlanOptions): Promise<void> {
  const log = createLogger({ level: process.env['BERTH_LOG_LEVEL'] ?? 'warn' });
  const store = openStateStore(options.stateDir);
  const repo = options.repo ?? saved.source.repo;
  const source = await openRevisionSource({ ...options, repo, path: saved.source.path }, log);
  await refuseMovedRevision(source, saved);
  const revision = saved.source.revision;
  const failed = (await store.read()).failed[revision];
  if (failed !== undefined && !options.retry) {
    throw new BerthError(
      'ERR_STATE',
      `revision ${shortRevision(revision)} failed before (${failed.reason}); use --retry to apply this plan anyway`,
    );
  }
  const readSecret = await openSecretReader();
  const agents = await openCluster(options, log);
  const print = (line: string): void => void process.stdout.write(`${line}\n`);
  try {
    await refuseMovedCluster(saved, agents, readSecret, log);
    await store.update((s) => void delete s.failed[revision]);
    print(
      `Applying the saved plan ${options.plan ?? ''} (${shortRevision(revision)} from ${source.description})`,
    );
    const onEvent = (event: RolloutEvent): void => {
      const line = formatRolloutEvent(event);
      if (line) print(line);
    };
    const ok = await executeSavedPlan({ saved, source, store, agents, readSecret, log, print, onEvent });
    process.exitCode = ok ? 0 : 1;
  } finally {
    await closeCluster(agents);
  }
}
