import { Command, Option } from 'commander';
import { BerthError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import type { DesiredState, LoadResult } from '../manifests/types.js';
import { unsupportedFeatures } from '../operator/capabilities.js';
import type { NodeAgent, ObservedState } from '../api/types.js';
import { writeFileAtomic } from '../core/atomic-file.js';
import type { Logger } from '../core/log.js';
import type { RevisionSource } from '../operator/revision-source.js';
import { fingerprintCluster } from '../plan/cluster-fingerprint.js';
import { renderPlanFile } from '../plan/plan-file.js';
import { openAdminClientIfClustered } from '../cluster/admin-client.js';
import { observeCluster } from '../api/observe-cluster.js';
import { computePlan } from '../plan/compute-plan.js';
import { computeResourceChanges } from '../plan/resource-changes.js';
import { addPlanCommentOptions, postPlanComment, type PlanCommentOptions } from './plan-comment.js';
import { computeOfflinePlan } from '../plan/offline-plan.js';
import { planCronJobs, scheduledStatesOf, type PlannedCronJob } from '../plan/cronjob-plan.js';
import { planJobs, succeededRecordsOf, type PlannedJob } from '../plan/job-plan.js';
import {
  renderPlanJson,
  renderPlanMarkdown,
  renderPlanText,
  type PlanProblem,
  type PlanReport,
} from '../plan/render-plan.js';
import type { Plan } from '../plan/types.js';
import { shortRevision } from '../source/revision.js';
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

interface PlanOptions extends SourceOptions, ClusterOptions, PlanCommentOptions {
  ref?: string;
  against?: string;
  format: 'text' | 'json' | 'markdown';
  verbose?: boolean;
  out?: string;
}

/** Why a loaded revision cannot be applied: manifest problems, or features refused as a whole. */
function problemsOf(loaded: LoadResult): PlanProblem[] {
  if (!loaded.ok) return loaded.problems.map((p) => ({ ...p }));
  return unsupportedFeatures(loaded.desired).map((message) => ({
    file: null,
    line: null,
    col: null,
    message,
  }));
}

export function registerPlanCommand(program: Command): void {
  const command = new Command('plan')
    .description(
      'show what applying a revision would change on the live cluster, or against another revision with --against (exit 0: no changes, 2: changes, 1: error or invalid)',
    )
    .option(
      '--ref <ref>',
      'branch, tag, commit or git revision expression (HEAD~1, main^, origin/main) to plan (default: the --branch head)',
    )
    .option(
      '--against <ref>',
      'plan against this revision (same forms as --ref) instead of the live cluster, from git alone (for CI without cluster access)',
    )
    .addOption(
      new Option('--format <format>', 'output format').choices(['text', 'json', 'markdown']).default('text'),
    )
    .option('-v, --verbose', 'also list unchanged services')
    .option(
      '--out <file>',
      'also save the plan to FILE, for `berth apply --plan FILE` to execute exactly it (not with --against)',
    );
  addSourceOptions(command);
  addClusterOptions(command);
  addPlanCommentOptions(command);
  command.action(async (options: PlanOptions) => {
    if (options.out !== undefined && options.against !== undefined) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        '--out saves a plan against the live cluster; a plan --against another revision cannot be applied',
      );
    }
    const log = createLogger({ level: process.env['BERTH_LOG_LEVEL'] ?? 'warn' });
    const source = await openRevisionSource(options, log);
    const revision = await source.resolve(options.ref ?? options.branch);
    const loaded = await source.load(revision);
    const problems = problemsOf(loaded);
    const against = options.against === undefined ? null : await source.resolve(options.against);

    let plan: Plan | null = null;
    let resources: PlanReport['resources'] = null;
    let jobs: PlannedJob[] = [];
    let cronJobs: PlannedCronJob[] = [];
    if (problems.length === 0 && loaded.ok) {
      if (against !== null) {
        const base = await loadAgainst(source, options.against ?? '', against);
        jobs = planJobs(loaded.desired, succeededRecordsOf(base));
        cronJobs = planCronJobs(loaded.desired, scheduledStatesOf(base, Date.now()), Date.now());
        plan = computeOfflinePlan(loaded.desired, base);
        resources = computeResourceChanges(base, loaded.desired, plan.services);
      } else {
        const recorded = await openStateStore(options.stateDir).read();
        jobs = planJobs(loaded.desired, recorded.jobs ?? {});
        cronJobs = planCronJobs(loaded.desired, recorded.cronJobs ?? {}, Date.now());
        const { observed, plan: live } = await planAgainstCluster(options, loaded.desired, log);
        plan = live;
        const running = await runningDesiredState(source, observed, log);
        resources = running === null ? null : computeResourceChanges(running, loaded.desired, plan.services);
        if (options.out !== undefined) await savePlan(options.out, options, plan, observed);
      }
    }
    const report: PlanReport = { revision, against, plan, problems, resources, jobs, cronJobs };
    const render = {
      text: () => renderPlanText(report, { verbose: options.verbose ?? false }),
      json: () => renderPlanJson(report),
      markdown: () => renderPlanMarkdown(report),
    };
    process.stdout.write(render[options.format]());
    if (options.comment === true) {
      const { result, where } = await postPlanComment(options, render.markdown());
      process.stderr.write(`berth plan: comment ${result.action} on ${where}\n`);
    }
    const jobsRun =
      jobs.some((job) => job.action === 'run') || cronJobs.some((cronJob) => cronJob.action !== 'unchanged');
    process.exitCode = plan === null ? 1 : plan.hasChanges || jobsRun ? 2 : 0;
  });
  program.addCommand(command);
}

async function loadAgainst(
  source: RevisionSource,
  againstRef: string,
  against: string,
): Promise<DesiredState> {
  const base = await source.load(against);
  if (!base.ok) {
    throw new BerthError(
      'ERR_MANIFEST_INVALID',
      `cannot plan against ${againstRef} (${shortRevision(against)}): its manifests do not load (see \`berth validate\`)`,
    );
  }
  return base.desired;
}

/**
 * What the cluster runs, as git has it: the revision most of the observed replicas were started
 * from (nothing, on an empty cluster). Null when that revision no longer loads: then Configs and
 * Secrets are not compared (`resources: null` in JSON).
 */
async function runningDesiredState(
  source: RevisionSource,
  observed: ObservedState,
  log: Logger,
): Promise<DesiredState | null> {
  const counts = new Map<string, number>();
  for (const r of observed.nodes.flatMap((n) => n.replicas))
    counts.set(r.revision, (counts.get(r.revision) ?? 0) + 1);
  const [running] = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  // Nothing runs yet: every Namespace, Config and Secret of the revision is new.
  if (running === undefined)
    return { revision: '', services: [], jobs: [], configs: [], secrets: [], namespaces: [] };
  try {
    const loaded = await source.load(running[0]);
    return loaded.ok ? loaded.desired : null;
  } catch (error) {
    log.warn(
      { revision: shortRevision(running[0]), err: error },
      'cannot read the revision the cluster runs; Configs and Secrets are not compared',
    );
    return null;
  }
}

async function planAgainstCluster(
  options: PlanOptions,
  desired: DesiredState,
  log: Logger,
): Promise<{ observed: ObservedState; plan: Plan }> {
  // A state dir whose operator listens for agents: observe through it, it knows every node.
  const operator = await openAdminClientIfClustered(options.stateDir);
  const agents = operator ? new Map<string, NodeAgent>() : await openCluster(options, log);
  try {
    const observed = operator ? await operator.observed() : await observeCluster(agents, log);
    return { observed, plan: computePlan(desired, observed) };
  } finally {
    await closeCluster(agents);
  }
}

/** `--out`: the plan with what it was computed from, for `berth apply --plan` to check and run. */
async function savePlan(
  out: string,
  options: PlanOptions,
  plan: Plan,
  observed: ObservedState,
): Promise<void> {
  const text = renderPlanFile({
    createdAt: new Date().toISOString(),
    source: {
      repo: repoIdentity(options.repo),
      path: options.path,
      ref: options.ref ?? options.branch,
      revision: plan.revision,
    },
    observed: fingerprintCluster(observed),
    plan,
  });
  await writeFileAtomic(out, text);
  process.stderr.write(`Saved the plan to ${out}; run it with: berth apply --plan ${out}\n`);
}
