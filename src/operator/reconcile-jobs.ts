/**
 * The Jobs step of a reconcile: before anything of a revision rolls, its Jobs run to completion
 * (rollout/run-jobs.ts), their records in state.json and every finished run in history. A Job a
 * Service depends on (`dependsOn`) that failed fails the revision: it is recorded as failed, as a
 * rollout that failed would be, nothing of it rolls, and what runs stays.
 */
import { BerthError } from '../core/errors.js';
import type { DesiredState, JobSpec } from '../manifests/types.js';
import {
  DEFAULT_BACKOFF,
  jobRecordKey,
  type BackoffTiming,
  type JobRecord,
  type JobRunRecord,
} from '../plan/job-plan.js';
import { runJobs, type JobRecordStore } from '../rollout/run-jobs.js';
import type { ReconcileContext } from './reconcile-types.js';
import type { HistoryEntry } from './state-store.js';

/** How often the nodes are asked while runs go on. */
const JOB_POLL_MS = 1_000;

/**
 * For tests only: the back-off base in ms (the cap scales with it), so a test of retries does
 * not wait 10 s, 20 s, 40 s. Never set it in production.
 */
export const TEST_JOB_BACKOFF_ENV = 'BERTH_TEST_JOB_BACKOFF_MS';

export type JobsVerdict =
  | { ok: true }
  | { ok: false; interrupted: true; error: BerthError }
  | { ok: false; interrupted: false; error: BerthError };

export async function runRevisionJobs(ctx: ReconcileContext, desired: DesiredState): Promise<JobsVerdict> {
  const { agents, observed } = await ctx.observe();
  // With no Job in git, only runs of Jobs that left it are left to remove (CronJob runs are the
  // cron scheduler's, cron-scheduler.ts).
  const runs = observed.nodes
    .flatMap((node) => node.jobRuns ?? [])
    .filter((run) => run.cronJob === undefined);
  if ((desired.jobs ?? []).length === 0 && runs.length === 0) return { ok: true };
  const result = await runJobs({
    agents,
    desired,
    records: recordStore(ctx),
    readSecret: ctx.deps.readSecret,
    log: ctx.log,
    backoff: backoffTiming(),
    pollMs: JOB_POLL_MS,
    onRunFinished: (job, record, run) => recordRun(ctx, job, record, run),
    ...(ctx.deps.signal ? { signal: ctx.deps.signal } : {}),
  });
  if (result.interrupted) {
    const error = new BerthError(
      'ERR_INTERNAL',
      'the operator stopped while Jobs ran; the next reconcile adopts them',
      {
        retryAfterMs: 1_000,
      },
    );
    return { ok: false, interrupted: true, error };
  }
  const blocking = blockingFailures(desired, result.records);
  if (blocking.length === 0) return { ok: true };
  const reason = blocking
    .map(({ job, record }) => `Job ${job} failed: ${record.reason ?? 'failed'}`)
    .join('; ');
  const error = new BerthError('ERR_JOB_FAILED', `${reason}; the Services that depend on it do not roll`);
  await recordFailedRevision(ctx, desired.revision, error);
  return { ok: false, interrupted: false, error };
}

/** Failed Jobs some Service depends on, with who depends on them. */
function blockingFailures(
  desired: DesiredState,
  records: ReadonlyMap<string, JobRecord>,
): { job: string; record: JobRecord }[] {
  const needed = new Set(
    desired.services.flatMap((service) =>
      (service.dependsOn ?? []).map((d) => `${service.namespace}/${d.job}`),
    ),
  );
  return [...records]
    .filter(([key, record]) => needed.has(key) && record.phase === 'failed')
    .map(([job, record]) => ({ job, record }));
}

export function backoffTiming(): BackoffTiming {
  const base = Number(process.env[TEST_JOB_BACKOFF_ENV]);
  if (!Number.isFinite(base) || base <= 0) return DEFAULT_BACKOFF;
  return { baseMs: base, maxMs: (base * DEFAULT_BACKOFF.maxMs) / DEFAULT_BACKOFF.baseMs };
}

function recordStore(ctx: ReconcileContext): JobRecordStore {
  return {
    read: async () => (await ctx.deps.store.read()).jobs ?? {},
    write: (records) =>
      ctx.deps.store
        .update((state) => {
          state.jobs ??= {};
          for (const record of records) {
            state.jobs[jobRecordKey(record.namespace, record.name, record.specHash)] = record;
          }
        })
        .then(() => undefined),
  };
}

async function recordRun(
  ctx: ReconcileContext,
  job: JobSpec,
  record: JobRecord,
  run: JobRunRecord,
): Promise<void> {
  const outcome = run.outcome === 'running' ? 'failed' : run.outcome;
  ctx.deps.onJobRun?.(outcome);
  // The run that failed the Job: told once, as the record turns failed with it.
  if (record.phase === 'failed' && outcome === 'failed') {
    const reason = record.reason ?? `exit code ${run.exitCode}`;
    ctx.deps.onJobFailed?.({ namespace: job.namespace, name: job.name, revision: record.revision, reason });
  }
  ctx.log.info(
    {
      job: `${job.namespace}/${job.name}`,
      attempt: run.attempt,
      exitCode: run.exitCode,
      outcome: run.outcome,
    },
    'job run finished',
  );
  await ctx.deps.store.appendHistory([jobRunHistoryEntry(job, record, run)]);
}

/** A finished run of a Job (or of a CronJob's run) as history records it. */
export function jobRunHistoryEntry(job: JobSpec, record: JobRecord, run: JobRunRecord): HistoryEntry {
  return {
    at: run.finishedAt ?? new Date().toISOString(),
    revision: record.revision,
    service: null,
    change: 'job run',
    // A lost run is the infrastructure's fault, recorded as a rollout cut short by a lost node is.
    outcome: run.outcome === 'lost' ? 'interrupted' : run.outcome === 'succeeded' ? 'succeeded' : 'failed',
    reason: run.outcome === 'succeeded' ? null : (run.output ?? `exit code ${run.exitCode}`),
    durationMs: run.durationMs ?? 0,
    started: [{ name: run.name, node: run.node }],
    removed: [],
    job: {
      namespace: job.namespace,
      name: job.name,
      ...(job.cronJob === undefined ? {} : { cronJob: job.cronJob }),
      specHash: record.specHash,
      attempt: run.attempt,
      node: run.node,
      exitCode: run.exitCode,
      output: run.output,
    },
  };
}

async function recordFailedRevision(
  ctx: ReconcileContext,
  revision: string,
  error: BerthError,
): Promise<void> {
  const at = new Date().toISOString();
  ctx.log.error({ code: error.code, reason: error.message }, 'a Job failed; the revision does not roll');
  await ctx.deps.store.update((state) => {
    state.failed[revision] = { at, reason: error.message, code: error.code };
  });
  await ctx.deps.store.appendHistory([
    {
      at,
      revision,
      service: null,
      change: 'none',
      outcome: 'failed',
      reason: error.message,
      durationMs: 0,
      started: [],
      removed: [],
    },
  ]);
}
