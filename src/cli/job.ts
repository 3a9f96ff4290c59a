/**
 * `berth job ls`: Jobs and CronJobs with their last run, its outcome and the next run, read from
 * the state dir (what the operator recorded). `berth job run NAME`: a CronJob runs now, or a Job
 * runs again, through the running operator's admin API: only the operator starts runs.
 */
import { Command, Option } from 'commander';
import { openAdminClientIfClustered } from '../cluster/admin-client.js';
import { BerthError } from '../core/errors.js';
import { DEFAULT_NAMESPACE } from '../manifests/defaults.js';
import type { CronJobState } from '../plan/cronjob-plan.js';
import { jobRecordKey, type JobRecord } from '../plan/job-plan.js';
import type { OperatorState } from '../operator/state-store.js';
import { DEFAULT_STATE_DIR, openStateStore } from './context.js';
import { alignColumns } from './columns.js';

/** One row of `berth job ls`; the `--format json` document is a list of these. */
export interface JobRow {
  kind: 'Job' | 'CronJob';
  namespace: string;
  name: string;
  /** CronJobs: the schedule and its time zone; null for a Job. */
  schedule: string | null;
  timeZone: string | null;
  suspend: boolean;
  /** When the last run started (ISO); null: never ran. */
  lastRun: string | null;
  /** The last run's outcome; null: never ran. */
  outcome: 'running' | 'succeeded' | 'failed' | null;
  /** Runs going on now. */
  active: number;
  /** When the next run is due (ISO): CronJobs only; null when suspended or never. */
  nextRun: string | null;
  /** CronJobs: schedule times that passed without a run (the operator was down, or too late). */
  missed: number;
}

export function registerJobCommand(program: Command): void {
  const job = new Command('job').description('Jobs and CronJobs: list them, run one now');
  const stateDir = () => new Option('--state-dir <dir>', 'the operator state dir').default(DEFAULT_STATE_DIR);
  job.addCommand(
    new Command('ls')
      .description('Jobs and CronJobs: last run, its outcome, runs going on, next run (from the state dir)')
      .addOption(stateDir())
      .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
      .action(async (options: { stateDir: string; format: 'text' | 'json' }) => {
        const rows = jobRows(await openStateStore(options.stateDir).read());
        process.stdout.write(
          options.format === 'json' ? `${JSON.stringify(rows, null, 2)}\n` : formatRows(rows),
        );
      }),
  );
  job.addCommand(
    new Command('run')
      .description(
        'run a CronJob now (whatever its schedule, concurrencyPolicy and suspend say), or a Job again at its spec; asks the running operator over its cluster endpoint (berth run --cluster-listen)',
      )
      .argument('<name>', 'the Job or CronJob, NAME or NAMESPACE/NAME')
      .option('-n, --namespace <namespace>', 'its namespace', DEFAULT_NAMESPACE)
      .addOption(stateDir())
      .addHelpText('after', '\nExamples:\n  berth job run backup\n  berth job run shop/migrate')
      .action(async (target: string, options: { stateDir: string; namespace: string }) => {
        const [namespace, name] = target.includes('/') ? target.split('/', 2) : [options.namespace, target];
        const started = await runJob(options.stateDir, namespace ?? options.namespace, name ?? target);
        process.stdout.write(
          started.kind === 'CronJob'
            ? `cronjob ${started.namespace}/${started.name}: started run ${started.run ?? '?'}\n`
            : `job ${started.namespace}/${started.name}: runs again (the operator's reconcile starts it)\n`,
        );
      }),
  );
  program.addCommand(job);
}

async function runJob(
  stateDir: string,
  namespace: string,
  name: string,
): Promise<{ kind: string; namespace: string; name: string; run: string | null }> {
  const operator = await openAdminClientIfClustered(stateDir);
  if (operator === null) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `no operator with a cluster endpoint has run with --state-dir ${stateDir}: berth job run asks the running operator, started with berth run --cluster-listen HOST:PORT`,
    );
  }
  try {
    return (await operator.runJob(namespace, name)) as Awaited<ReturnType<typeof runJob>>;
  } catch (error) {
    if (error instanceof BerthError && error.code === 'ERR_AGENT_UNREACHABLE') {
      throw new BerthError(
        'ERR_AGENT_UNREACHABLE',
        `no operator is running for --state-dir ${stateDir} (${error.message}); start it with berth run`,
      );
    }
    throw error;
  }
}

export function jobRows(state: OperatorState): JobRow[] {
  const cronJobs = Object.values(state.cronJobs ?? {});
  const cronRunKeys = new Set(
    cronJobs.flatMap((cron) => cron.runs.map((run) => jobRecordKey(cron.namespace, run.name, run.specHash))),
  );
  const newestJobs = new Map<string, JobRecord>();
  for (const [key, record] of Object.entries(state.jobs ?? {})) {
    if (cronRunKeys.has(key)) continue;
    const id = `${record.namespace}/${record.name}`;
    const seen = newestJobs.get(id);
    if (seen === undefined || (seen.startedAt ?? '') < (record.startedAt ?? '')) newestJobs.set(id, record);
  }
  const rows = [...[...newestJobs.values()].map(jobRow), ...cronJobs.map(cronJobRow)];
  return rows.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
}

function jobRow(record: JobRecord): JobRow {
  return {
    kind: 'Job',
    namespace: record.namespace,
    name: record.name,
    schedule: null,
    timeZone: null,
    suspend: false,
    lastRun: record.runs.at(-1)?.startedAt ?? record.startedAt,
    outcome: record.phase,
    active: record.runs.filter((run) => run.outcome === 'running').length,
    nextRun: null,
    missed: 0,
  };
}

function cronJobRow(state: CronJobState): JobRow {
  const last = state.runs.at(-1);
  return {
    kind: 'CronJob',
    namespace: state.namespace,
    name: state.name,
    schedule: state.schedule,
    timeZone: state.timeZone,
    suspend: state.suspend,
    lastRun: last?.startedAt ?? null,
    outcome: last?.phase ?? null,
    active: state.runs.filter((run) => run.phase === 'running').length,
    nextRun: state.nextRunAt,
    missed: state.missed,
  };
}

function formatRows(rows: readonly JobRow[]): string {
  if (rows.length === 0) return 'No Jobs or CronJobs recorded in this state dir.\n';
  const table = [
    ['KIND', 'NAME', 'SCHEDULE', 'LAST RUN', 'OUTCOME', 'ACTIVE', 'NEXT RUN'],
    ...rows.map((r) => [
      r.kind,
      `${r.namespace}/${r.name}`,
      r.schedule === null ? '-' : `${r.schedule} (${r.timeZone ?? 'UTC'})${r.suspend ? ' suspended' : ''}`,
      r.lastRun ?? '-',
      (r.outcome ?? '-') + (r.missed > 0 ? ` (${r.missed} missed)` : ''),
      String(r.active),
      r.nextRun ?? '-',
    ]),
  ];
  return `${alignColumns(table).join('\n')}\n`;
}
