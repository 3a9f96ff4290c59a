/**
 * Runs the Jobs of a revision until each has succeeded or failed: observe every node, decide per
 * Job (plan/job-plan.ts, pure), write the records, then act (start runs, remove containers), and
 * again after a short wait. The records are written before anything is started or removed, so an
 * operator killed at any point finds, on its next reconcile, either the record of a run or its
 * container by its labels, and never starts a run twice.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { observeCluster } from '../api/observe-cluster.js';
import type { NodeAgent, ObservedJobRun, ReplicaRequest } from '../api/types.js';
import { asBerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { DesiredState, JobSpec } from '../manifests/types.js';
import {
  decideJob,
  failRunThatDidNotStart,
  jobRecordKey,
  jobSpecHash,
  type BackoffTiming,
  type JobDecision,
  type JobRecord,
  type JobRunRecord,
  type JobRunStart,
} from '../plan/job-plan.js';
import { planReplicaTemplate } from '../plan/replica-request.js';
import { summariseService } from '../plan/spec-summary.js';
import type { SecretReader } from '../secrets/secret-reader.js';
import { resolveReplicaRequest } from './planned-secrets.js';

/** Where Job records are kept (the operator's state.json). */
export interface JobRecordStore {
  read(): Promise<Record<string, JobRecord>>;
  /** Writes these records (by jobRecordKey) and leaves the others as they are. */
  write(records: readonly JobRecord[]): Promise<void>;
}

export interface RunJobsOptions {
  agents: ReadonlyMap<string, NodeAgent>;
  desired: DesiredState;
  records: JobRecordStore;
  readSecret: SecretReader | null;
  log: Logger;
  backoff: BackoffTiming;
  /** How often the nodes are asked while runs go on. */
  pollMs: number;
  /** A run finished (for history); awaited. */
  onRunFinished?: (job: JobSpec, record: JobRecord, run: JobRunRecord) => Promise<void>;
  signal?: AbortSignal;
  now?: () => number;
}

export interface RunJobsResult {
  /** The record of every Job of the revision, by `namespace/name`. */
  records: Map<string, JobRecord>;
  /** Stopped before every Job finished (the operator is shutting down). */
  interrupted: boolean;
}

export async function runJobs(options: RunJobsOptions): Promise<RunJobsResult> {
  const jobs = options.desired.jobs ?? [];
  const now = options.now ?? Date.now;
  const hashes = new Map(jobs.map((job) => [job, jobSpecHash(job, options.desired)]));
  for (;;) {
    const observed = await observeCluster(options.agents, options.log);
    const runs = observed.nodes.flatMap((node) => node.jobRuns ?? []);
    const stored = await options.records.read();
    const decisions = jobs.map((job) => {
      const specHash = hashes.get(job) ?? '';
      return {
        job,
        specHash,
        decision: decideJob({
          job,
          specHash,
          revision: options.desired.revision,
          record: stored[jobRecordKey(job.namespace, job.name, specHash)] ?? null,
          runs: runs.filter(
            (run) => run.cronJob === undefined && run.namespace === job.namespace && run.job === job.name,
          ),
          nodes: observed.nodes,
          now: now(),
          backoff: options.backoff,
        }),
      };
    });
    await options.records.write(decisions.map(({ decision }) => decision.record));
    for (const { job, decision } of decisions) {
      for (const run of decision.finished) await options.onRunFinished?.(job, decision.record, run);
    }
    await removeOrphanRuns(options, runs, jobs);
    await Promise.all(decisions.map((entry) => applyJobDecision(options, entry)));

    const records = new Map(
      decisions.map(({ job, decision }) => [`${job.namespace}/${job.name}`, decision.record]),
    );
    if (decisions.every(({ decision }) => decision.record.phase !== 'running'))
      return { records, interrupted: false };
    if (options.signal?.aborted) return { records, interrupted: true };
    const wakeInMs = Math.min(...decisions.map(({ decision }) => decision.wakeInMs ?? Infinity));
    await sleep(Math.max(50, Math.min(options.pollMs, wakeInMs)), undefined, {
      signal: options.signal,
    }).catch(() => undefined);
  }
}

/** Removes and starts what a decision says; a run its node refuses is recorded as failed. */
export async function applyJobDecision(
  options: RunJobsOptions,
  entry: { job: JobSpec; specHash: string; decision: JobDecision },
): Promise<void> {
  const { job, decision } = entry;
  const log = options.log.child({ job: `${job.namespace}/${job.name}` });
  if (decision.waiting !== null) log.warn(decision.waiting);
  await Promise.all(
    decision.remove.map(async (removal) => {
      try {
        await options.agents.get(removal.node)?.removeReplica(removal.name);
        log.info({ container: removal.name, node: removal.node, why: removal.reason }, 'job run removed');
      } catch (error) {
        log.warn({ container: removal.name, err: error }, 'could not remove a job run; trying again later');
      }
    }),
  );
  const refused = await Promise.all(decision.start.map((start) => startRun(options, entry, start, log)));
  const failed = refused.flatMap((refusal) => (refusal === null ? [] : [refusal]));
  if (failed.length === 0) return;
  // A refused run (its image missing, say) counts as a failed run, so back-off and limit apply.
  for (const { start, reason } of failed) {
    const run = failRunThatDidNotStart(decision.record, start.name, reason, (options.now ?? Date.now)());
    if (run !== null) await options.onRunFinished?.(job, decision.record, run);
  }
  await options.records.write([decision.record]);
}

/** null when the run was asked for (or its node could not be reached: asked again later). */
async function startRun(
  options: RunJobsOptions,
  entry: { job: JobSpec; specHash: string },
  start: JobRunStart,
  log: Logger,
): Promise<{ start: JobRunStart; reason: string } | null> {
  const agent = options.agents.get(start.node);
  if (agent === undefined) return null;
  try {
    await agent.ensureReplica(await jobRunRequest(options, entry, start));
    log.info({ container: start.name, node: start.node, attempt: start.attempt }, 'job run started');
    return null;
  } catch (error) {
    const failure = asBerthError(error);
    if (failure.disposition !== 'terminal') {
      log.warn({ container: start.name, err: failure }, 'could not start a job run; trying again');
      return null;
    }
    log.warn({ container: start.name, reason: failure.message }, 'job run refused');
    return { start, reason: failure.message };
  }
}

async function jobRunRequest(
  options: RunJobsOptions,
  { job, specHash }: { job: JobSpec; specHash: string },
  start: JobRunStart,
): Promise<ReplicaRequest> {
  const ciphertexts: Record<string, string> = {};
  const summary = summariseService(job.container, options.desired);
  const template = planReplicaTemplate(job.container, options.desired, summary, specHash, ciphertexts);
  const planned = {
    ...template,
    name: start.name,
    slot: `run-${start.attempt}`,
    job: { name: job.name, attempt: start.attempt, ...(job.cronJob ? { cronJob: job.cronJob } : {}) },
  };
  return resolveReplicaRequest(planned, ciphertexts, options.readSecret);
}

/** Runs of Jobs no longer in git: their record stays, their containers go. CronJob runs are the scheduler's. */
async function removeOrphanRuns(
  options: RunJobsOptions,
  runs: readonly ObservedJobRun[],
  jobs: readonly JobSpec[],
): Promise<void> {
  const orphans = runs.filter(
    (run) =>
      run.cronJob === undefined &&
      !jobs.some((job) => job.namespace === run.namespace && job.name === run.job),
  );
  await Promise.all(
    orphans.map(async (run) => {
      try {
        await options.agents.get(run.node)?.removeReplica(run.name);
        options.log.info({ container: run.name, node: run.node }, 'removed a run of a Job no longer in git');
      } catch (error) {
        options.log.warn({ container: run.name, err: error }, 'could not remove a run of a removed Job');
      }
    }),
  );
}
