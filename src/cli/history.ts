import { Command, Option } from 'commander';
import { BerthError } from '../core/errors.js';
import { parseDuration } from '../manifests/units.js';
import type { HistoryEntry } from '../operator/state-store.js';
import { DEFAULT_STATE_DIR, openStateStore } from './context.js';

interface HistoryOptions {
  stateDir: string;
  limit: string;
  since?: string;
  format: 'text' | 'json';
}

export function registerHistoryCommand(program: Command): void {
  const command = new Command('history')
    .description('the rollout audit log: revision, author, outcome, replicas changed (newest last)')
    .argument('[service]', 'only this service or Job (NAME or NAMESPACE/NAME)')
    .option('--state-dir <dir>', 'operator state directory', DEFAULT_STATE_DIR)
    .option('-n, --limit <n>', 'entries to show (the newest)', '20')
    .option('--since <when>', 'only entries since a time (ISO 8601) or a while ago (90m, 24h, 7d)')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'));
  command.action(async (service: string | undefined, options: HistoryOptions) => {
    const limit = Number(options.limit);
    if (!Number.isInteger(limit) || limit < 1) {
      process.stderr.write(`berth: --limit wants a positive whole number, got "${options.limit}"\n`);
      process.exitCode = 1;
      return;
    }
    const since = options.since === undefined ? null : parseSince(options.since, new Date());
    const wanted = service === undefined ? null : service.includes('/') ? service : `default/${service}`;
    const entries = (await openStateStore(options.stateDir).readHistory())
      .filter((e) => wanted === null || (e.service ?? jobOf(e)) === wanted)
      .filter((e) => since === null || Date.parse(e.at) >= since)
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
      const what = e.service ?? (e.job ? `job ${jobOf(e)} run ${e.job.attempt}` : '(revision)');
      const replicas =
        e.started.length + e.removed.length > 0 ? ` +${e.started.length}/-${e.removed.length} replicas` : '';
      const nodes = [...new Set([...e.started, ...e.removed].map((r) => r.node))];
      process.stdout.write(
        `${e.at}  ${e.revision.slice(0, 12)}  ${what}  ${e.change}  ${e.outcome}  ${(e.durationMs / 1000).toFixed(1)}s${replicas}${nodes.length ? ` on ${nodes.join(',')}` : ''}\n`,
      );
      if (e.message || e.author)
        process.stdout.write(`    ${e.message ?? ''}${e.author ? ` (${e.author})` : ''}\n`);
      if (e.job) process.stdout.write(jobRunLines(e.job));
      else if (e.reason) process.stdout.write(`    reason: ${e.reason}\n`);
      if (e.rolledBackFrom) process.stdout.write(`    rollback from ${e.rolledBackFrom.slice(0, 12)}\n`);
    }
  });
  program.addCommand(command);
}

function jobOf(entry: HistoryEntry): string | null {
  return entry.job ? `${entry.job.namespace}/${entry.job.name}` : null;
}

/** A Job run's exit code and the last lines of its output, indented under its entry. */
function jobRunLines(run: NonNullable<HistoryEntry['job']>): string {
  const exit = run.exitCode === null ? 'no exit code' : `exit code ${run.exitCode}`;
  const output = (run.output ?? '').trimEnd();
  const lines = output === '' ? [] : output.split('\n').map((line) => `      ${line}`);
  return [`    ${exit} on ${run.node}${lines.length > 0 ? ', output:' : ''}`, ...lines, ''].join('\n');
}

/** `--since`: an ISO 8601 time, or a duration before `now` (`90m`, `24h`, `7d`); epoch ms. */
export function parseSince(text: string, now: Date): number {
  const days = /^([0-9]+)d$/.exec(text);
  const ago = days ? Number(days[1]) * 86_400_000 : parseDuration(text);
  if (ago !== null) return now.getTime() - ago;
  const at = Date.parse(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(at)) return at;
  throw new BerthError(
    'ERR_BAD_REQUEST',
    `--since wants an ISO 8601 time (2026-11-23T10:00:00Z) or a duration (90m, 24h, 7d), got "${text}"`,
  );
}
