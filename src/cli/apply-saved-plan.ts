import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { observeCluster } from '../api/observe-cluster.js';
import type { NodeAgent, ObservedState } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/log.js';
import { reconcileSavedPlan } from '../operator/reconcile-saved-plan.js';
import type { RevisionSource } from '../operator/revision-source.js';
import type { StateStore } from '../operator/state-store.js';
import { clusterChanges, fingerprintCluster } from '../plan/cluster-fingerprint.js';
import { parsePlanFile, withoutCredential, type PlanFile } from '../plan/plan-file.js';
import type { RolloutEvent } from '../rollout/apply-plan.js';
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
): Promise<ObservedState> {
  const observed = await observeCluster(agents, log);
  const changes = clusterChanges(saved.observed, fingerprintCluster(observed));
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
  return observed;
}

interface SavedPlanRun {
  saved: PlanFile;
  observed: ObservedState;
  source: RevisionSource;
  store: StateStore;
  agents: ReadonlyMap<string, NodeAgent>;
  readSecret: SecretReader | null;
  log: Logger;
  print: (line: string) => void;
  onEvent: (event: RolloutEvent) => void;
}

/** Runs the saved plan through the operator's record and rollback steps; prints how it ended. */
async function executeSavedPlan(run: SavedPlanRun): Promise<boolean> {
  const { saved, observed, source, store, agents, readSecret, log, print, onEvent } = run;
  const revision = saved.source.revision;
  const result = await reconcileSavedPlan(
    { source, agents: () => agents, store, log, readSecret, onEvent },
    { plan: saved.plan, revision, observed },
  );
  const reason = result.reason ?? '';
  switch (result.outcome) {
    case 'unchanged':
      print(`Nothing to change: the cluster runs ${shortRevision(revision)}.`);
      return true;
    case 'succeeded':
      print(
        `Converged on ${shortRevision(revision)} in ${((result.rollout?.durationMs ?? 0) / 1000).toFixed(1)}s.`,
      );
      return true;
    case 'rolled back': {
      const lastGood = (await store.read()).lastGood?.revision;
      const how =
        result.rollback === null || lastGood === undefined
          ? 'the replicas it started were removed'
          : `the cluster is back on ${shortRevision(lastGood)}`;
      print(`The saved plan failed and was rolled back (${how}): ${reason}`);
      return false;
    }
    case 'interrupted':
      print(`The saved plan was interrupted by the infrastructure, not failed: ${reason}`);
      print('Nothing was rolled back; make a new plan with berth plan --out to go on.');
      return false;
    default:
      print(`The saved plan failed: ${result.error?.message ?? reason}`);
      return false;
  }
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
    const observed = await refuseMovedCluster(saved, agents, readSecret, log);
    await store.update((s) => void delete s.failed[revision]);
    print(
      `Applying the saved plan ${options.plan ?? ''} (${shortRevision(revision)} from ${source.description})`,
    );
    const onEvent = (event: RolloutEvent): void => {
      const line = formatRolloutEvent(event);
      if (line) print(line);
    };
    const ok = await executeSavedPlan({
      ...{ saved, observed, source, store, agents },
      ...{ readSecret, log, print, onEvent },
    });
    process.exitCode = ok ? 0 : 1;
  } finally {
    await closeCluster(agents);
  }
}
