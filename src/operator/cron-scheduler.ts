/**
 * The CronJob scheduler of `berth run`: only the operator schedules (never the agents), one step at
 * a time, so a run never starts twice. Each step (rollout/run-cronjobs.ts) re-reads the nodes and
 * state.json; it runs at the next schedule time, every second while a run goes on, and at once
 * when a reconcile loads a revision or `berth job run` asks. The CronJobs are those of the
 * revision the last reconcile chose; until one has, nothing is scheduled, and runs missed
 * meanwhile are caught up (at most one) by the first step.
 */
import type { NodeAgent } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { CronJobSpec, DesiredState, JobSpec } from '../manifests/types.js';
import { jobRecordKey, jobSpecHash, type JobRecord, type JobRunRecord } from '../plan/job-plan.js';
import { stepCronJobs, type CronJobStore, type CronStepResult } from '../rollout/run-cronjobs.js';
import type { SecretReader } from '../secrets/secret-reader.js';
import { backoffTiming, jobRunHistoryEntry } from './reconcile-jobs.js';
import type { StateStore } from './state-store.js';

/** How often the nodes are asked while a run goes on; and the longest sleep when idle. */
const RUNNING_POLL_MS = 1_000;
const IDLE_POLL_MS = 60_000;
/** A step that failed is tried again after 1 s, doubling up to 30 s while it keeps failing. */
const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 30_000;

export interface CronSchedulerDeps {
  agents: () => ReadonlyMap<string, NodeAgent>;
  store: StateStore;
  log: Logger;
  readSecret: SecretReader | null;
  onJobRun?: (outcome: 'succeeded' | 'failed') => void;
  /** A Job was asked to run again: a reconcile runs it. */
  triggerReconcile: (reason: string) => void;
  now?: () => number;
}

/** What `berth job run` started. */
export interface JobRunStarted {
  kind: 'CronJob' | 'Job';
  namespace: string;
  name: string;
  /** The run's name (label berth.job) for a CronJob; null for a Job (its reconcile runs it). */
  run: string | null;
}

export class CronScheduler {
  private readonly deps: CronSchedulerDeps;
  private desired: DesiredState | null = null;
  private readonly manual = new Map<string, ((names: string[]) => void)[]>();
  private wakeUp: (() => void) | null = null;
  /** Something changed while a step ran: the next sleep is skipped. */
  private poked = false;
  private stopped = false;
  private loop: Promise<void> | null = null;

  constructor(deps: CronSchedulerDeps) {
    this.deps = deps;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.poke();
    await this.loop;
    for (const waiters of this.manual.values()) for (const resolve of waiters) resolve([]);
  }

  /** The CronJobs to schedule from now on: those of the revision a reconcile chose. */
  setDesired(desired: DesiredState): void {
    this.desired = desired;
    this.poke();
  }

  /** `berth job run NAME`: a CronJob runs now; a Job runs again at its spec. */
  async runNow(namespace: string, name: string): Promise<JobRunStarted> {
    const desired = this.desired;
    if (desired === null) {
      throw new BerthError('ERR_INTERNAL', 'the operator has not loaded a revision yet; try again shortly', {
        retryAfterMs: 1_000,
      });
    }
    const cronJob = (desired.cronJobs ?? []).find((c) => c.namespace === namespace && c.name === name);
    if (cronJob !== undefined) return this.runCronJobNow(cronJob);
    const job = (desired.jobs ?? []).find((j) => j.namespace === namespace && j.name === name);
    if (job !== undefined) return this.runJobAgain(desired, job);
    const known = [...(desired.cronJobs ?? []), ...(desired.jobs ?? [])]
      .filter((j) => j.namespace === namespace)
      .map((j) => j.name);
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `no Job or CronJob ${JSON.stringify(name)} in namespace ${JSON.stringify(namespace)} at the revision the operator runs${known.length > 0 ? ` (there: ${known.join(', ')})` : ''}`,
    );
  }

  private async runCronJobNow(cronJob: CronJobSpec): Promise<JobRunStarted> {
    const key = `${cronJob.namespace}/${cronJob.name}`;
    const started = new Promise<string[]>((resolve) => {
      this.manual.set(key, [...(this.manual.get(key) ?? []), resolve]);
    });
    this.poke();
    const names = await started;
    if (names.length === 0)
      throw new BerthError('ERR_INTERNAL', 'the operator stopped before the run started');
    return { kind: 'CronJob', namespace: cronJob.namespace, name: cronJob.name, run: names.at(-1) ?? null };
  }

  /** Its record at this spec starts over (earlier runs stay in it, numbered on); a reconcile runs it. */
  private async runJobAgain(desired: DesiredState, job: JobSpec): Promise<JobRunStarted> {
    const key = jobRecordKey(job.namespace, job.name, jobSpecHash(job, desired));
    await this.deps.store.update((state) => {
      const record = state.jobs?.[key];
      if (record === undefined || record.phase === 'running') return;
      Object.assign(record, {
        phase: 'running',
        reason: null,
        succeeded: 0,
        failed: 0,
        startedAt: null,
        finishedAt: null,
      });
    });
    this.deps.triggerReconcile('job run');
    return { kind: 'Job', namespace: job.namespace, name: job.name, run: null };
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      let result: CronStepResult | null = null;
      const manual = new Map(this.manual);
      this.manual.clear();
      try {
        result = await this.step(new Set(manual.keys()));
        failures = 0;
      } catch (error) {
        failures += 1;
        const retryMs = Math.min(RETRY_FIRST_MS * 2 ** (failures - 1), RETRY_MAX_MS);
        this.deps.log.warn({ err: error, retryMs }, 'cron job step failed; trying again');
        // Asked for but not started: asked again in the next step.
        for (const [key, waiters] of manual)
          this.manual.set(key, [...waiters, ...(this.manual.get(key) ?? [])]);
        manual.clear();
        // Not the idle poll: a schedule time must not wait a minute for a passing fault.
        await this.sleep(retryMs);
        continue;
      }
      for (const [key, waiters] of manual)
        for (const resolve of waiters) resolve(result?.started.get(key) ?? []);
      if (this.stopped) return;
      const pollMs = result?.running || this.manual.size > 0 ? RUNNING_POLL_MS : IDLE_POLL_MS;
      await this.sleep(Math.min(pollMs, result?.wakeInMs ?? Infinity));
    }
  }

  private async step(manual: ReadonlySet<string>): Promise<CronStepResult | null> {
    const desired = this.desired;
    if (desired === null) return null;
    const scheduled = (await this.deps.store.read()).cronJobs ?? {};
    if ((desired.cronJobs ?? []).length === 0 && Object.keys(scheduled).length === 0) return null;
    return stepCronJobs({
      agents: this.deps.agents(),
      desired,
      store: this.recordStore(),
      readSecret: this.deps.readSecret,
      log: this.deps.log,
      backoff: backoffTiming(),
      manual,
      onRunFinished: (job, record, run) => this.recordRun(job, record, run),
      onMissed: async (cronJob, missed) => {
        this.deps.log.warn(
          { cronJob: `${cronJob.namespace}/${cronJob.name}`, ...missed },
          'cron job runs missed',
        );
        await this.deps.store.appendHistory([
          {
            at: new Date(this.now()).toISOString(),
            revision: desired.revision,
            service: null,
            change: `cronjob ${cronJob.namespace}/${cronJob.name}: ${missed.count} run(s) missed, the latest at ${missed.latest}`,
            outcome: 'failed',
            reason: missed.reason,
            durationMs: 0,
            started: [],
            removed: [],
          },
        ]);
      },
      now: () => this.now(),
    });
  }

  private async recordRun(job: JobSpec, record: JobRecord, run: JobRunRecord): Promise<void> {
    this.deps.onJobRun?.(run.outcome === 'succeeded' ? 'succeeded' : 'failed');
    this.deps.log.info(
      {
        job: `${job.namespace}/${job.name}`,
        cronJob: job.cronJob,
        exitCode: run.exitCode,
        outcome: run.outcome,
      },
      'cron job run finished',
    );
    await this.deps.store.appendHistory([jobRunHistoryEntry(job, record, run)]);
  }

  private recordStore(): CronJobStore {
    const { store } = this.deps;
    return {
      read: async () => {
        const state = await store.read();
        return { cronJobs: state.cronJobs ?? {}, jobs: state.jobs ?? {} };
      },
      write: async (change) => {
        await store.update((state) => {
          state.cronJobs ??= {};
          state.jobs ??= {};
          for (const cron of change.cronJobs) state.cronJobs[`${cron.namespace}/${cron.name}`] = cron;
          for (const record of change.records)
            state.jobs[jobRecordKey(record.namespace, record.name, record.specHash)] = record;
          for (const key of change.deleteCronJobs) delete state.cronJobs[key];
          for (const key of change.deleteRecords) delete state.jobs[key];
        });
      },
    };
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  private poke(): void {
    this.poked = true;
    this.wakeUp?.();
  }

  private sleep(ms: number): Promise<void> {
    if (this.poked) {
      this.poked = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(0, ms));
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = null;
        this.poked = false;
        done();
      };
    });
  }
}
