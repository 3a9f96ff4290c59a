import { Command, Option } from 'commander';
import { DEFAULT_STATE_DIR, openStateStore } from './context.js';

interface HistoryOptions {
  stateDir: string;
  limit: string;
  format: 'text' | 'json';
}

export function registerHistoryCommand(program: Command): void {
  const command = new Command('history')
    .description('the rollout audit log: revision, author, outcome, replicas changed (newest last)')
    .argument('[service]', 'only this service (NAME or NAMESPACE/NAME)')
    .option('--state-dir <dir>', 'operator state directory', DEFAULT_STATE_DIR)
    .option('-n, --limit <n>', 'entries to show', '20')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'));
  command.action(async (service: string | undefined, options: HistoryOptions) => {
    const limit = Number(options.limit);
    if (!Number.isInteger(limit) || limit < 1) {
      process.stderr.write(`berth: --limit wants a positive whole number, got "${options.limit}"\n`);
      process.exitCode = 1;
      return;
    }
    const wanted = service === undefined ? null : service.includes('/') ? service : `default/${service}`;
    const entries = (await openStateStore(options.stateDir).readHistory())
      .filter((e) => wanted === null || e.service === wanted)
      .slice(-limit);
    if (options.format === 'json') {
      process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
      return;
    }
    if (entries.length === 0) {
      process.stdout.write('No history yet.\n');
      return;
    }
    for (const e of entries) {
      const what = e.service ?? '(revision)';
      const replicas =
        e.started.length + e.removed.length > 0 ? ` +${e.started.length}/-${e.removed.length} replicas` : '';
      const nodes = [...new Set([...e.started, ...e.removed].map((r) => r.node))];
      process.stdout.write(
        `${e.at}  ${e.revision.slice(0, 12)}  ${what}  ${e.change}  ${e.outcome}  ${(e.durationMs / 1000).toFixed(1)}s${replicas}${nodes.length ? ` on ${nodes.join(',')}` : ''}\n`,
      );
      if (e.message || e.author)
        process.stdout.write(`    ${e.message ?? ''}${e.author ? ` (${e.author})` : ''}\n`);
      if (e.reason) process.stdout.write(`    reason: ${e.reason}\n`);
      if (e.rolledBackFrom) process.stdout.write(`    rollback from ${e.rolledBackFrom.slice(0, 12)}\n`);
    }
  });
  program.addCommand(command);
}
