/**
 * One step of the CronJob scheduler: observe every node, decide per CronJob (plan/cronjob-plan.ts)
 * and per run (plan/job-plan.ts, each run being a Job of its own), write the records, then act.
 * The records are written before anything starts, so a run is started at most once: an operator
 * killed after the write finds the run recorded and asks for it again by the same name, which the
 * agent creates only when absent. Only the operator calls this, never the agents.
 */
import { observeCluster } from '../api/observe-cluster.js';
import type { NodeAgent, NodeSnapshot, ObservedJobRun } from '../api/types.js';
import type { Logger } from '../core/log.js';
import type { CronJobSpec, DesiredState, JobSpec } from '../manifests/types.js';
import {
  cronJobSpecHash,
  cronRunJob,
  decideCronJob,
  type CronJobDecision,
  type CronJobState,
  type CronRunRef,
} from '../plan/cronjob-plan.js';
import {
  decideJob,
  jobRecordKey,
  type BackoffTiming,
  type JobDecision,
  type JobRecord,
  type JobRunRecord,
} from '../plan/job-plan.js';
import type { SecretReader } from '../secrets/secret-reader.js';
import { applyJobDecision } from './run-jobs.js';

/** Where CronJob states and the records of their runs are kept (the operator's state.json). */
export interface CronJobStore {
  read(): Promise<{ cronJobs: Record<string, CronJobState>; jobs: Record<string, JobRecord> }>;
  /** Writes these (by key) and deletes the named ones; leaves the others as they are. */
  write(change: CronJobStoreChange): Promise<void>;
}

export interface CronJobStoreChange {
  cronJobs: CronJobState[];
  records: JobRecord[];
  /** `namespace/name` of CronJobs gone from git. */
  deleteCronJobs: string[];
  /** jobRecordKey() of runs pruned by the history limits, or of CronJobs gone from git. */
  deleteRecords: string[];
}

export interface CronStepOptions {
  agents: ReadonlyMap<string, NodeAgent>;
  desired: DesiredState;
  store: CronJobStore;
  readSecret: SecretReader | null;
  log: Logger;
  backoff: BackoffTiming;
  /** CronJobs (`namespace/name`) `berth job run` asked to run now. */
  manual: ReadonlySet<string>;
  onRunFinished?: (job: JobSpec, record: JobRecord, run: JobRunRecord) => Promise<void>;
  /** Schedule times passed without a run (the operator was down, or too late to start). */
  onMissed?: (cronJob: CronJobSpec, missed: NonNullable<CronJobDecision['missed']>) => Promise<void>;
  now?: () => number;
}

export interface CronStepResult {
  /** The runs started, by CronJob (`namespace/name`). */
  started: Map<string, string[]>;
  /** Look again in this many ms (a schedule time, a back-off); null: nothing timed. */
  wakeInMs: number | null;
  /** Some run is running: its end is only seen by asking the nodes. */
  running: boolean;
}

interface RunStep {
  job: JobSpec;
  specHash: string;
  decision: JobDecision;
}

interface CronJobStep {
  cronJob: CronJobSpec;
  decision: CronJobDecision;
  runs: RunStep[];
  /** Containers to remove: of replaced runs, of pruned runs, of runs nobody records. */
  remove: ObservedJobRun[];
}

export async function stepCronJobs(options: CronStepOptions): Promise<CronStepResult> {
  const now = (options.now ?? Date.now)();
  const observed = await observeCluster(options.agents, options.log);
  const runs = observed.nodes
    .flatMap((node) => node.jobRuns ?? [])
    .filter((run) => run.cronJob !== undefined);
  const stored = await options.store.read();
  const cronJobs = options.desired.cronJobs ?? [];
  const steps = cronJobs.map((cronJob) => stepCronJob(options, cronJob, stored, runs, observed.nodes, now));
  const gone = Object.values(stored.cronJobs).filter(
    (state) => !cronJobs.some((c) => c.namespace === state.namespace && c.name === state.name),
  );
  const orphans = runs.filter(
    (run) => !cronJobs.some((c) => c.namespace === run.namespace && c.name === run.cronJob),
  );
  await options.store.write({
    cronJobs: steps.map((step) => step.decision.state),
    records: steps.flatMap((step) => step.runs.map((run) => run.decision.record)),
    deleteCronJobs: gone.map((state) => `${state.namespace}/${state.name}`),
    deleteRecords: [
      ...steps.flatMap((step) => step.decision.prune.map((ref) => recordKeyOf(step.cronJob.namespace, ref))),
      ...gone.flatMap((state) => state.runs.map((ref) => recordKeyOf(state.namespace, ref))),
    ],
  });
  for (const step of steps) {
    if (step.decision.missed !== null) await options.onMissed?.(step.cronJob, step.decision.missed);
    for (const run of step.runs) {
      for (const finished of run.decision.finished)
        await options.onRunFinished?.(run.job, run.decision.record, finished);
    }
  }
  await removeRuns(options, [...steps.flatMap((step) => step.remove), ...orphans]);
  await Promise.all(
    steps.flatMap((step) => step.runs.map((run) => applyJobDecision(jobOptions(options), run))),
  );
  return resultOf(steps, now);
}

function stepCronJob(
  options: CronStepOptions,
  cronJob: CronJobSpec,
  stored: { cronJobs: Record<string, CronJobState>; jobs: Record<string, JobRecord> },
  observed: readonly ObservedJobRun[],
  nodes: readonly NodeSnapshot[],
  now: number,
): CronJobStep {
  const key = `${cronJob.namespace}/${cronJob.name}`;
  const specHash = cronJobSpecHash(cronJob, options.desired);
  const mine = observed.filter((run) => run.namespace === cronJob.namespace && run.cronJob === cronJob.name);
  const decideRun = (ref: CronRunRef): RunStep => {
    const job = cronRunJob(cronJob, ref.name);
    const decision = decideJob({
      job,
      specHash: ref.specHash,
      revision: options.desired.revision,
      record: stored.jobs[recordKeyOf(cronJob.namespace, ref)] ?? null,
      runs: mine.filter((run) => run.job === ref.name),
      nodes,
      now,
      backoff: options.backoff,
    });
    // A run goes on with the template it started with: no new attempt of an older template.
    if (ref.specHash !== specHash) holdOutdatedRun(decision, now);
    ref.phase = decision.record.phase;
    ref.finishedAt = decision.record.finishedAt;
    return { job, specHash: ref.specHash, decision };
  };
  const state = cloneState(stored.cronJobs[key] ?? null);
  const runs = (state?.runs ?? []).filter((ref) => ref.phase === 'running').map(decideRun);
  const decision = decideCronJob({ cronJob, specHash, state, now, manual: options.manual.has(key) });
  runs.push(...decision.start.map(decideRun));
  const remove: ObservedJobRun[] = [];
  for (const ref of decision.replace) {
    const run = runs.find((r) => r.job.name === ref.name);
    if (run !== undefined) stopReplacedRun(run.decision, now);
    ref.phase = 'failed';
    ref.finishedAt = new Date(now).toISOString();
    remove.push(...mine.filter((r) => r.job === ref.name));
  }
  for (const ref of decision.prune) remove.push(...mine.filter((r) => r.job === ref.name));
  // Finished containers of runs no longer recorded (pruned before a removal went through).
  remove.push(...mine.filter((r) => isFinished(r) && !decision.state.runs.some((ref) => ref.name === r.job)));
  return { cronJob, decision, runs, remove };
}

/** An outdated run starts no new attempt; once none runs it is over (failed if not done). */
function holdOutdatedRun(decision: JobDecision, now: number): void {
  decision.start = [];
  const record = decision.record;
  if (record.phase !== 'running' || record.runs.some((run) => run.outcome === 'running' && run.seen)) return;
  record.phase = 'failed';
  record.reason = "its CronJob's jobTemplate changed before it completed; the next run uses the new one";
  record.finishedAt = new Date(now).toISOString();
}

/** Replace: the running run is stopped and counts as failed. */
function stopReplacedRun(decision: JobDecision, now: number): void {
  const at = new Date(now).toISOString();
  decision.start = [];
  for (const run of decision.record.runs) {
    if (run.outcome !== 'running') continue;
    Object.assign(run, { outcome: 'failed', finishedAt: at, output: 'stopped: replaced by a newer run' });
    decision.record.failed += 1;
    decision.finished.push(run);
  }
  Object.assign(decision.record, {
    phase: 'failed',
    reason: 'replaced by a newer run (concurrencyPolicy Replace)',
    finishedAt: at,
  });
}

async function removeRuns(options: CronStepOptions, runs: readonly ObservedJobRun[]): Promise<void> {
  await Promise.all(
    runs.map(async (run) => {
      try {
        await options.agents.get(run.node)?.removeReplica(run.name);
        options.log.info(
          { container: run.name, node: run.node, cronJob: run.cronJob },
          'cron job run removed',
        );
      } catch (error) {
        options.log.warn(
          { container: run.name, err: error },
          'could not remove a cron job run; trying again',
        );
      }
    }),
  );
}

function jobOptions(options: CronStepOptions): Parameters<typeof applyJobDecision>[0] {
  return {
    agents: options.agents,
    desired: options.desired,
    readSecret: options.readSecret,
    log: options.log,
    backoff: options.backoff,
    pollMs: 1_000,
    records: {
      read: async () => (await options.store.read()).jobs,
      write: (records) =>
        options.store.write({ cronJobs: [], records: [...records], deleteCronJobs: [], deleteRecords: [] }),
    },
    ...(options.onRunFinished ? { onRunFinished: options.onRunFinished } : {}),
    ...(options.now ? { now: options.now } : {}),
  };
}

function resultOf(steps: readonly CronJobStep[], now: number): CronStepResult {
  const started = new Map(
    steps.map((step) => [
      `${step.cronJob.namespace}/${step.cronJob.name}`,
      step.decision.start.map((ref) => ref.name),
    ]),
  );
  const wakes = steps.flatMap((step) => [
    step.decision.nextRunAt === null ? Infinity : step.decision.nextRunAt - now,
    ...step.runs.map((run) => run.decision.wakeInMs ?? Infinity),
  ]);
  const wakeInMs = Math.min(...wakes);
  const running = steps.some((step) => step.decision.state.runs.some((ref) => ref.phase === 'running'));
  return { started, wakeInMs: Number.isFinite(wakeInMs) ? Math.max(0, wakeInMs) : null, running };
}

function recordKeyOf(namespace: string, ref: CronRunRef): string {
  return jobRecordKey(namespace, ref.name, ref.specHash);
}

function isFinished(run: ObservedJobRun): boolean {
  return run.state === 'exited' || run.state === 'dead';
}

function cloneState(state: CronJobState | null): CronJobState | null {
  return state === null ? null : { ...state, runs: state.runs.map((run) => ({ ...run })) };
}
