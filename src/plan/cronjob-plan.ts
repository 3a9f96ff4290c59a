/**
 * When a CronJob runs: from its schedule (in its time zone), what is recorded of it and of its runs,
 * and the clock, passed in. Pure: rollout/run-cronjobs.ts reads, writes and acts.
 *
 * Each run is a Job of its own, named after the schedule time it is for (`backup-1767236400`), so
 * a scheduled time gives at most one run whoever asks and however often: the name is recorded
 * before anything starts, and the agent creates a run's container only when none of that name exists.
 * Runs missed while the operator was down get at most one catch-up run (the latest of them, when
 * within startingDeadline); the others are recorded as missed.
 */
import { firesBetween, nextFireAfter, parseCronSchedule } from '../manifests/cron-schedule.js';
import type { CronJobSpec, DesiredState, JobSpec } from '../manifests/types.js';
import { jobSpecHash, type JobPhase } from './job-plan.js';

/** One run of a CronJob, as the CronJob's record keeps it (its Job record holds the rest). */
export interface CronRunRef {
  /** The run's Job name (label berth.job); its record is jobRecordKey(namespace, name, specHash). */
  name: string;
  specHash: string;
  /** The schedule time it is for; null for a run asked for by `berth job run`. */
  scheduledAt: string | null;
  startedAt: string;
  /** Its Job record's phase, copied on every step. */
  phase: JobPhase;
  finishedAt: string | null;
}

/** What is recorded of one CronJob (state.json `cronJobs`, key `namespace/name`). */
export interface CronJobState {
  namespace: string;
  name: string;
  /** When it was first scheduled: schedule times before are not missed, they predate it. */
  since: string;
  /** The latest schedule time dealt with (run, skipped or missed). */
  lastScheduleTime: string | null;
  /** Its runs still kept (within the history limits, and every unfinished one), oldest first. */
  runs: CronRunRef[];
  /** Schedule times skipped because a run was still running (concurrencyPolicy Forbid). */
  skipped: number;
  /** Schedule times that passed without a run while the operator was not there. */
  missed: number;
  lastMissed: { at: string; count: number; reason: string } | null;
  /** For `berth job ls`: the schedule as last seen, and its next run (null: suspended or never). */
  schedule: string;
  timeZone: string;
  suspend: boolean;
  nextRunAt: string | null;
  /** The spec hash of the template as last scheduled (a change shows in `berth plan`). */
  templateHash: string | null;
}

export interface CronJobDecisionInput {
  cronJob: CronJobSpec;
  specHash: string;
  /** null when it was never scheduled. */
  state: CronJobState | null;
  now: number;
  /** `berth job run` asked for a run now: it starts whatever the policy and suspend say. */
  manual: boolean;
}

export interface CronJobDecision {
  state: CronJobState;
  /** The runs to start now (already in `state.runs`). */
  start: CronRunRef[];
  /** Running runs to stop (Replace): their records fail, their containers go. */
  replace: CronRunRef[];
  /** Finished runs past the history limits: their records and containers go. */
  prune: CronRunRef[];
  /** Schedule times that passed without a run, for history; null when none did. */
  missed: { count: number; latest: string; reason: string } | null;
  /** A schedule time was skipped because a run still runs (Forbid). */
  skipped: boolean;
  /** When it should be looked at again for its schedule (suspended too); null: never. */
  nextRunAt: number | null;
}

/** `backup-1767236400`: the CronJob and the schedule time (s) of the run. */
export function cronRunName(cronJob: string, scheduledAtMs: number): string {
  return `${cronJob}-${Math.floor(scheduledAtMs / 1000)}`;
}

/** `backup-mt5z3k0`: a run asked for by hand, named after when (s, base 36, shorter). */
export function manualCronRunName(cronJob: string, nowMs: number): string {
  return `${cronJob}-m${Math.floor(nowMs / 1000).toString(36)}`;
}

/** The Job a run of the CronJob is: its template under the run's name, labelled with the CronJob. */
export function cronRunJob(cronJob: CronJobSpec, runName: string): JobSpec {
  return { ...cronJob.jobTemplate, name: runName, cronJob: cronJob.name };
}

export function cronJobSpecHash(
  cronJob: CronJobSpec,
  desired: Pick<DesiredState, 'configs' | 'secrets'>,
): string {
  return jobSpecHash(cronJob.jobTemplate, desired);
}

/** The next schedule time after `now` (and after the last one dealt with); null when suspended. */
export function nextCronRun(cronJob: CronJobSpec, state: CronJobState | null, now: number): number | null {
  if (cronJob.suspend) return null;
  const schedule = parseCronSchedule(cronJob.schedule, cronJob.timeZone);
  const last = state?.lastScheduleTime ? Date.parse(state.lastScheduleTime) : -Infinity;
  return nextFireAfter(schedule, Math.max(now, last));
}

export function decideCronJob(input: CronJobDecisionInput): CronJobDecision {
  const { cronJob, now } = input;
  const state = cloneState(input.state) ?? newState(cronJob, now);
  Object.assign(state, {
    schedule: cronJob.schedule,
    timeZone: cronJob.timeZone,
    suspend: cronJob.suspend,
    templateHash: input.specHash,
  });
  const decision: CronJobDecision = {
    state,
    start: [],
    replace: [],
    prune: [],
    missed: null,
    skipped: false,
    nextRunAt: null,
  };
  const schedule = parseCronSchedule(cronJob.schedule, cronJob.timeZone);
  const since = Date.parse(state.lastScheduleTime ?? state.since);
  const { latest, count } = firesBetween(schedule, since, now);
  if (input.manual) startRun(input, decision, manualCronRunName(cronJob.name, now), null);
  if (latest !== null) {
    state.lastScheduleTime = new Date(latest).toISOString();
    if (!cronJob.suspend) due(input, decision, latest, count);
  }
  decision.prune = overHistoryLimits(cronJob, state.runs);
  state.runs = state.runs.filter((run) => !decision.prune.includes(run));
  // A suspended CronJob is still looked at on schedule: its times are recorded as passed, so
  // resuming it does not catch up on the time it was suspended.
  decision.nextRunAt = nextFireAfter(schedule, Math.max(now, latest ?? since));
  state.nextRunAt =
    decision.nextRunAt === null || cronJob.suspend ? null : new Date(decision.nextRunAt).toISOString();
  return decision;
}

/** Schedule times passed: the latest runs if it is not too late; the earlier ones were missed. */
function due(input: CronJobDecisionInput, decision: CronJobDecision, latest: number, count: number): void {
  const { cronJob, now } = input;
  const lateMs = now - latest;
  const tooLate = cronJob.startingDeadlineMs !== null && lateMs > cronJob.startingDeadlineMs;
  const missedCount = tooLate ? count : count - 1;
  if (missedCount > 0) {
    const reason = tooLate
      ? `${lateMs} ms late, past its startingDeadline of ${cronJob.startingDeadlineMs} ms`
      : 'the operator was not running; one catch-up run started instead';
    decision.missed = { count: missedCount, latest: new Date(latest).toISOString(), reason };
    decision.state.missed += missedCount;
    decision.state.lastMissed = { at: decision.missed.latest, count: missedCount, reason };
  }
  if (tooLate) return;
  const running = decision.state.runs.filter((run) => run.phase === 'running');
  if (running.length > 0 && cronJob.concurrencyPolicy === 'Forbid') {
    decision.skipped = true;
    decision.state.skipped += 1;
    return;
  }
  if (cronJob.concurrencyPolicy === 'Replace') decision.replace.push(...running);
  startRun(input, decision, cronRunName(cronJob.name, latest), latest);
}

function startRun(
  input: CronJobDecisionInput,
  decision: CronJobDecision,
  name: string,
  scheduledAt: number | null,
): void {
  // The same name twice (two `berth job run` in one second) is the same run: started once.
  if (decision.state.runs.some((run) => run.name === name)) return;
  const run: CronRunRef = {
    name,
    specHash: input.specHash,
    scheduledAt: scheduledAt === null ? null : new Date(scheduledAt).toISOString(),
    startedAt: new Date(input.now).toISOString(),
    phase: 'running',
    finishedAt: null,
  };
  decision.state.runs.push(run);
  decision.start.push(run);
}

/** Finished runs beyond the newest `successfulJobsHistoryLimit` succeeded and `failedJobsHistoryLimit` failed. */
function overHistoryLimits(cronJob: CronJobSpec, runs: readonly CronRunRef[]): CronRunRef[] {
  const newestFirst = (a: CronRunRef, b: CronRunRef) => {
    const at = (run: CronRunRef) => run.finishedAt ?? run.startedAt;
    return at(a) < at(b) ? 1 : at(a) > at(b) ? -1 : 0;
  };
  const over = (phase: JobPhase, limit: number) =>
    runs
      .filter((run) => run.phase === phase)
      .sort(newestFirst)
      .slice(limit);
  return [
    ...over('succeeded', cronJob.successfulJobsHistoryLimit),
    ...over('failed', cronJob.failedJobsHistoryLimit),
  ];
}

function newState(cronJob: CronJobSpec, now: number): CronJobState {
  return {
    namespace: cronJob.namespace,
    name: cronJob.name,
    since: new Date(now).toISOString(),
    lastScheduleTime: null,
    runs: [],
    skipped: 0,
    missed: 0,
    lastMissed: null,
    schedule: cronJob.schedule,
    timeZone: cronJob.timeZone,
    suspend: cronJob.suspend,
    nextRunAt: null,
    templateHash: null,
  };
}

function cloneState(state: CronJobState | null): CronJobState | null {
  return state === null ? null : { ...state, runs: state.runs.map((run) => ({ ...run })) };
}

/** A CronJob as `berth plan` shows it. */
export interface PlannedCronJob {
  namespace: string;
  name: string;
  /** `create`: not scheduled yet; `change`: its schedule or template changed; `remove`: gone from git. */
  action: 'create' | 'change' | 'remove' | 'unchanged';
  schedule: string;
  timeZone: string;
  suspend: boolean;
  /** ISO time of its next run (null: suspended, removed, or never). */
  nextRunAt: string | null;
  /** What changed, for `change`: `schedule`, `timeZone`, `suspend`, `jobTemplate` ... */
  changes: string[];
}

/**
 * The CronJobs of `desired` against what the operator scheduled (state.json `cronJobs`), with the
 * spec hash each last ran at. A template change applies from the next run: running ones go on.
 */
export function planCronJobs(
  desired: DesiredState,
  scheduled: Readonly<Record<string, CronJobState>>,
  now: number,
): PlannedCronJob[] {
  const planned = (desired.cronJobs ?? []).map((cronJob): PlannedCronJob => {
    const state = scheduled[`${cronJob.namespace}/${cronJob.name}`] ?? null;
    const specHash = cronJobSpecHash(cronJob, desired);
    const changes =
      state === null
        ? []
        : [
            ...(state.schedule !== cronJob.schedule ? ['schedule'] : []),
            ...(state.timeZone !== cronJob.timeZone ? ['timeZone'] : []),
            ...(state.suspend !== cronJob.suspend ? ['suspend'] : []),
            ...(state.templateHash !== null && state.templateHash !== specHash ? ['jobTemplate'] : []),
          ];
    const next = nextCronRun(cronJob, state, now);
    return {
      namespace: cronJob.namespace,
      name: cronJob.name,
      action: state === null ? 'create' : changes.length > 0 ? 'change' : 'unchanged',
      schedule: cronJob.schedule,
      timeZone: cronJob.timeZone,
      suspend: cronJob.suspend,
      nextRunAt: next === null ? null : new Date(next).toISOString(),
      changes,
    };
  });
  const gone = Object.values(scheduled).filter(
    (state) =>
      !(desired.cronJobs ?? []).some((c) => c.namespace === state.namespace && c.name === state.name),
  );
  for (const state of gone) {
    planned.push({
      namespace: state.namespace,
      name: state.name,
      action: 'remove',
      schedule: state.schedule,
      timeZone: state.timeZone,
      suspend: state.suspend,
      nextRunAt: null,
      changes: [],
    });
  }
  return planned.sort((a, b) => (a.namespace + '/' + a.name < b.namespace + '/' + b.name ? -1 : 1));
}

/** What an offline plan takes as scheduled: the CronJobs of the revision it compares with. */
export function scheduledStatesOf(base: DesiredState, now: number): Record<string, CronJobState> {
  return Object.fromEntries(
    (base.cronJobs ?? []).map((cronJob) => {
      const state = newState(cronJob, now);
      state.templateHash = cronJobSpecHash(cronJob, base);
      return [`${cronJob.namespace}/${cronJob.name}`, state];
    }),
  );
}
