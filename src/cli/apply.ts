import { Command } from 'commander';
import { BerthError } from '../core/errors.js';
import { isClusterStateDir } from '../cluster/cluster-identity.js';
import { createLogger } from '../core/log.js';
import { reconcile } from '../operator/reconcile.js';
import { acquireStateLock } from '../operator/state-lock.js';
import { openSecretReader } from '../secrets/secret-reader.js';
import { applySavedPlan, readSavedPlan } from './apply-saved-plan.js';
import {
  repoIdentity,
  addClusterOptions,
  addSourceOptions,
  closeCluster,
  openCluster,
  openRevisionSource,
  openStateStore,
  type ClusterOptions,
  type SourceOptions,
} from './context.js';
import { formatRolloutEvent } from './progress.js';

interface ApplyOptions extends Omit<SourceOptions, 'repo'>, ClusterOptions {
  /** Required unless --plan names the repository. */
  repo?: string;
  ref?: string;
  retry?: boolean;
  plan?: string;
}

export function registerApplyCommand(program: Command): void {
  const command = new Command('apply')
    .description('run one reconcile and wait for the rollout (exit 0: converged, 1: failed and rolled back)')
    .option(
      '--ref <ref>',
      'branch, tag, commit or git revision expression (HEAD~1, main^) to apply (default: the --branch head)',
    )
    .option(
      '--retry',
      'apply a revision even if it failed before (failed revisions are otherwise not retried)',
    )
    .option(
      '--plan <file>',
      'execute exactly the plan saved by `berth plan --out FILE` (it names the repository, path and revision); refused when the revision or the cluster moved since',
    );
  addSourceOptions(command, { repoRequired: false });
  addClusterOptions(command);
  command.action(async (options: ApplyOptions) => {
    const saved = options.plan === undefined ? null : await readSavedPlan(options.plan, options, command);
    if (saved === null && options.repo === undefined) {
      command.error("error: required option '--repo <repo>' not specified");
    }
    // One process drives a cluster at a time: a running `berth run` on this state dir wins.
    const lock = await acquireStateLock(options.stateDir, 'apply');
    try {
      await refuseClusterStateDir(options.stateDir);
      if (saved === null) await applyOnce({ ...options, repo: options.repo ?? '' });
      else await applySavedPlan(saved, options);
    } finally {
      await lock.release();
    }
  });
  program.addCommand(command);
}

async function refuseClusterStateDir(stateDir: string): Promise<void> {
  if (await isClusterStateDir(stateDir)) {
    // Its joined nodes only talk to the operator; applying to the local node alone would be wrong.
    throw new BerthError(
      'ERR_STATE',
      `${stateDir} belongs to a cluster operator (berth run --cluster-listen): commit and let it reconcile, or start it`,
    );
  }
}

async function applyOnce(options: ApplyOptions & SourceOptions): Promise<void> {
  const log = createLogger({ level: process.env['BERTH_LOG_LEVEL'] ?? 'warn' });
  const store = openStateStore(options.stateDir);
  const source = await openRevisionSource(options, log);
  const readSecret = await openSecretReader();
  const ref = options.ref ?? options.branch;
  const revision = await source.resolve(ref);
  await store.update((s) => {
    s.source = { repo: repoIdentity(options.repo), path: options.path, branch: options.branch };
    if (options.retry) delete s.failed[revision];
  });
  const agents = await openCluster(options, log);
  const print = (line: string): void => void process.stdout.write(`${line}\n`);
  try {
    print(`Applying ${revision.slice(0, 12)} from ${source.description}`);
    const result = await reconcile(
      {
        source,
        agents: () => agents,
        store,
        log,
        readSecret,
        onEvent: (event) => {
          const line = formatRolloutEvent(event);
          if (line) print(line);
        },
      },
      { ref: revision },
    );
    switch (result.outcome) {
      case 'unchanged':
        print(`Nothing to change: the cluster runs ${revision.slice(0, 12)}.`);
        break;
      case 'succeeded':
        print(
          `Converged on ${revision.slice(0, 12)} in ${((result.rollout?.durationMs ?? 0) / 1000).toFixed(1)}s.`,
        );
        break;
      case 'rolled back':
        print(`Rollout of ${revision.slice(0, 12)} failed and was rolled back: ${result.reason ?? ''}`);
        break;
      default:
        print(`Not applied: ${result.reason ?? result.outcome}`);
        if (result.targetRevision && result.targetRevision !== revision) {
          print(
            `The cluster was kept on the last good revision ${result.targetRevision.slice(0, 12)}. Use --retry to try ${revision.slice(0, 12)} again.`,
          );
        }
    }
    process.exitCode = result.outcome === 'unchanged' || result.outcome === 'succeeded' ? 0 : 1;
  } finally {
    await closeCluster(agents);
  }
}
