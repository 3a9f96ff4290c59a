import { Command, Option } from 'commander';
import { createLogger } from '../log.js';
import { unsupportedFeatures } from '../operator/capabilities.js';
import { observeCluster } from '../operator/observe.js';
import { computePlan } from '../plan/compute-plan.js';
import { renderPlanJson, renderPlanMarkdown, renderPlanText } from '../plan/render-plan.js';
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
  format: 'text' | 'json' | 'markdown';
  verbose?: boolean;
}

export function registerPlanCommand(program: Command): void {
  const command = new Command('plan')
    .description(
      'show what applying a revision would change on the live cluster (exit 0: no changes, 2: changes, 1: error)',
    )
    .option('--ref <ref>', 'branch, tag or commit to plan (default: the --branch head)')
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
    const problems = loaded.ok
      ? unsupportedFeatures(loaded.desired)
      : loaded.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`);
    if (problems.length > 0 || !loaded.ok) {
      if (options.format === 'json') {
        process.stdout.write(`${JSON.stringify({ revision, valid: false, problems }, null, 2)}\n`);
      } else {
        process.stdout.write(
          `${revision.slice(0, 12)} cannot be applied:\n${problems.map((p) => `  ${p}`).join('\n')}\n`,
        );
      }
      process.exitCode = 1;
      return;
    }
    const agents = await openCluster(options, log);
    try {
      const plan = computePlan(loaded.desired, await observeCluster(agents, log));
      const render = {
        text: () => renderPlanText(plan, { verbose: options.verbose ?? false }),
        json: () => renderPlanJson(plan),
        markdown: () => renderPlanMarkdown(plan),
      };
      process.stdout.write(render[options.format]());
      process.exitCode = plan.hasChanges ? 2 : 0;
    } finally {
      await closeCluster(agents);
    }
  });
  program.addCommand(command);
}
