import { Command, Option } from 'commander';
import { BerthError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import type { LoadResult } from '../manifests/types.js';
import { unsupportedFeatures } from '../operator/capabilities.js';
import type { NodeAgent } from '../api/types.js';
import { openAdminClientIfClustered } from '../cluster/admin-client.js';
import { observeCluster } from '../api/observe-cluster.js';
import { computePlan } from '../plan/compute-plan.js';
import { computeOfflinePlan } from '../plan/offline-plan.js';
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
  addClusterOptions,
  addSourceOptions,
  closeCluster,
  openCluster,
  openRevisionSource,
  type ClusterOptions,
  type SourceOptions,
} from './context.js';

interface PlanOptions extends SourceOptions, ClusterOptions {
  ref?: string;
  against?: string;
  format: 'text' | 'json' | 'markdown';
  verbose?: boolean;
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
    .option('--ref <ref>', 'branch, tag or commit to plan (default: the --branch head)')
    .option(
      '--against <ref>',
      'plan against this revision instead of the live cluster, from git alone (for CI without cluster access)',
    )
    .addOption(
      new Option('--format <format>', 'output format').choices(['text', 'json', 'markdown']).default('text'),
    )
    .option('-v, --verbose', 'also list unchanged services');
  addSourceOptions(command);
  addClusterOptions(command);
  command.action(async (options: PlanOptions) => {
    const log = createLogger({ level: process.env['BERTH_LOG_LEVEL'] ?? 'warn' });
    const source = await openRevisionSource(options, log);
    const revision = await source.resolve(options.ref ?? options.branch);
    const loaded = await source.load(revision);
    const problems = problemsOf(loaded);
    const against = options.against === undefined ? null : await source.resolve(options.against);

    let plan: Plan | null = null;
    if (problems.length === 0 && loaded.ok) {
      if (against !== null) {
        const base = await source.load(against);
        if (!base.ok) {
          throw new BerthError(
            'ERR_MANIFEST_INVALID',
            `cannot plan against ${options.against} (${shortRevision(against)}): its manifests do not load (see \`berth validate\`)`,
          );
        }
        plan = computeOfflinePlan(loaded.desired, base.desired);
      } else {
        // A state dir whose operator listens for agents: observe through it, it knows every node.
        const operator = await openAdminClientIfClustered(options.stateDir);
        const agents = operator ? new Map<string, NodeAgent>() : await openCluster(options, log);
        try {
          const observed = operator ? await operator.observed() : await observeCluster(agents, log);
          plan = computePlan(loaded.desired, observed);
        } finally {
          await closeCluster(agents);
        }
      }
    }
    const report: PlanReport = { revision, against, plan, problems };
    const render = {
      text: () => renderPlanText(report, { verbose: options.verbose ?? false }),
      json: () => renderPlanJson(report),
      markdown: () => renderPlanMarkdown(report),
    };
    process.stdout.write(render[options.format]());
    process.exitCode = plan === null ? 1 : plan.hasChanges ? 2 : 0;
  });
  program.addCommand(command);
}
