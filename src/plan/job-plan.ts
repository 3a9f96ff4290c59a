/**
 * What a Job should do next, from what is recorded of it and what the nodes report: which runs to
 * start, which containers to remove, and whether it has succeeded or failed. Pure: the clock is
 * passed in, nothing is read or written here (rollout/run-jobs.ts does that).
 *
 * A Job runs once per spec hash. Its runs are numbered (attempt 1, 2, ...) and each number names
 * one container, so a run is started at most once: a run recorded before its container was seen
 * is asked for again under the same name (the agent creates it only if absent), a running
 * container found by its labels is adopted, and a finished one is read for its exit code.
 */
import type { NodeSnapshot, ObservedJobRun } from '../api/types.js';
import { JOB_BACKOFF_BASE_MS, JOB_BACKOFF_MAX_MS } from '../manifests/defaults.js';
import type { DesiredState, JobSpec } from '../manifests/types.js';
import { matchesConstraint } from './placement.js';
import { canonicalJson, sha256Hex, summariseService } from './spec-summary.js';

export type JobPhase = 'running' | 'succeeded' | 'failed';

export interface JobRunRecord {
  attempt: number;
  /** Container name, see jobRunName(). */
  name: string;
  node: string;
  /**
   * `lost`: its node went down under it. An infrastructure fault, not the Job's: it is not
   * counted as a failure (nor against backoffLimit) and the run is started again elsewhere.
   */
  outcome: 'running' | 'succeeded' | 'failed' | 'lost';
  /** null while it runs, and for a run that never ran (its container could not be created, or vanished). */
  exitCode: number | null;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  /** The last lines of its output, or why it failed without running. */
  output: string | null;
  /** A node reported its container at least once (so its absence now means it was lost). */
  seen: boolean;
  /** While it runs: since when its node has been seen down (absent: its node answers). */
  nodeDownSince?: string;
}

/** Everything recorded of one Job at one spec hash (state.json, key jobRecordKey()). */
export interface JobRecord {
  namespace: string;
  name: string;
  specHash: string;
  /** The revision it first ran at. */
  revision: string;
  phase: JobPhase;
  reason: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  succeeded: number;
  failed: number;
  /** Successful runs needed (the spec's `completions`); absent from records of an older berth. */
  completions?: number;
  /** The highest attempt number given out: the next run is this + 1. */
  lastAttempt: number;
  /** The newest runs (at most MAX_RECORDED_RUNS); the counts above cover every run. */
  runs: JobRunRecord[];
}

/** Runs kept per record in state.json; older ones are in history.jsonl. */
export const MAX_RECORDED_RUNS = 20;

export interface BackoffTiming {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffTiming = { baseMs: JOB_BACKOFF_BASE_MS, maxMs: JOB_BACKOFF_MAX_MS };

/**
 * A run whose node has been down this long is taken as lost and run again elsewhere. A node that
 * joined the cluster counts as down only after its own grace (cluster/rpc-protocol.ts); this one
 * is for an agent named by URL, which is down from its first unanswered call, so a blip of the
 * network does not run a Job twice at once.
 */
export const JOB_RUN_LOST_AFTER_MS = 10_000;

export interface JobDecisionInput {
  job: JobSpec;
  specHash: string;
  revision: string;
  /** The record of this Job at this spec hash; null when it never ran. */
  record: JobRecord | null;
  /** Every run of this Job the nodes report, of any spec hash. */
  runs: readonly ObservedJobRun[];
  nodes: readonly NodeSnapshot[];
  now: number;
  backoff: BackoffTiming;
}

export interface JobRunStart {
  attempt: number;
  name: string;
  node: string;
}

export interface JobRunRemoval {
  name: string;
  node: string;
  reason: 'finished' | 'deadline' | 'superseded';
}

export interface JobDecision {
  record: JobRecord;
  start: JobRunStart[];
  remove: JobRunRemoval[];
  /** Runs that finished since the record was last written, for history. */
  finished: JobRunRecord[];
  /** Something is due in this many ms (a back-off ends, a deadline passes); null: nothing timed. */
  wakeInMs: number | null;
  /** Why a run that is due cannot start (no node fits); null when none is held back. */
  waiting: string | null;
}

export function jobRecordKey(namespace: string, name: string, specHash: string): string {
  return `${namespace}/${name}@${specHash.slice(0, 12)}`;
}

/** Dots separate the parts as in replicaName(): names are DNS labels, which contain none. */
export function jobRunName(namespace: string, job: string, specHash: string, attempt: number): string {
  return `berth.${namespace}.${job}.run-${attempt}.${specHash.slice(0, 12)}`;
}

/** What a Job runs and how: a change of any of it runs the Job again. The TTL is not part of it. */
export function jobSpecHash(job: JobSpec, desired: Pick<DesiredState, 'configs' | 'secrets'>): string {
  return sha256Hex(
    canonicalJson({
      container: summariseService(job.container, desired),
      completions: job.completions,
      parallelism: job.parallelism,
      backoffLimit: job.backoffLimit,
      activeDeadlineMs: job.activeDeadlineMs,
    }),
  );
}

/** 10 s, 20 s, 40 s ... after the 1st, 2nd, 3rd failure, never more than the cap. */
export function backoffDelayMs(failures: number, backoff: BackoffTiming): number {
  if (failures <= 0) return 0;
  return Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(failures - 1, 30));
}

export function decideJob(input: JobDecisionInput): JobDecision {
  const { specHash, now } = input;
  const record = cloneRecord(input.record) ?? newRecord(input);
  const current = input.runs.filter((run) => run.specHash === specHash);
  const finished = foldObservedRuns(record, current, input.nodes, now);
  const decision: JobDecision = { record, start: [], remove: [], finished, wakeInMs: null, waiting: null };
  noteLostNodes(decision, input.nodes, now);
  // A run recorded but never seen: its start was cut short, so it is asked for again, same name.
  for (const run of record.runs) {
    if (run.outcome !== 'running' || run.seen) continue;
    if (current.some((observed) => observed.name === run.name)) continue;
    if (isReady(input.nodes, run.node))
      decision.start.push({ attempt: run.attempt, name: run.name, node: run.node });
  }
  for (const run of input.runs) {
    if (run.state === 'exited' || run.state === 'dead') continue;
    // A run taken for lost and run again elsewhere may still run when its node comes back.
    const lost = record.runs.some((r) => r.name === run.name && r.outcome === 'lost');
    if (run.specHash !== specHash || lost)
      decision.remove.push({ name: run.name, node: run.node, reason: 'superseded' });
  }
  if (record.phase === 'running') advance(input, decision);
  removeExpired(input, decision);
  record.runs = record.runs.slice(-MAX_RECORDED_RUNS);
  return decision;
}

function advance(input: JobDecisionInput, decision: JobDecision): void {
  const { job, now, record } = { ...input, record: decision.record };
  const running = record.runs.filter((run) => run.outcome === 'running');
  if (record.succeeded >= job.completions) return finish(record, 'succeeded', null, now);
  if (record.failed > job.backoffLimit) {
    const last = record.runs.findLast((run) => run.outcome === 'failed');
    const why = last?.exitCode == null ? (last?.output ?? 'it did not run') : `exit code ${last.exitCode}`;
    return finish(
      record,
      'failed',
      `${record.failed} runs failed (backoffLimit ${job.backoffLimit}); the last: ${why}`,
      now,
    );
  }
  if (job.activeDeadlineMs !== null && record.startedAt !== null) {
    const overMs = now - Date.parse(record.startedAt) - job.activeDeadlineMs;
    if (overMs >= 0) {
      for (const run of running) {
        run.outcome = 'failed';
        run.finishedAt = new Date(now).toISOString();
        run.output = `stopped: the Job ran past its activeDeadline of ${job.activeDeadlineMs} ms`;
        countFinished(record, run);
        decision.finished.push(run);
        decision.remove.push({ name: run.name, node: run.node, reason: 'deadline' });
      }
      decision.start = decision.start.filter((start) => !running.some((run) => run.name === start.name));
      return finish(record, 'failed', `ran past its activeDeadline of ${job.activeDeadlineMs} ms`, now);
    }
    decision.wakeInMs = Math.min(decision.wakeInMs ?? Infinity, -overMs);
  }
  const slots = Math.min(
    job.parallelism - running.length,
    job.completions - record.succeeded - running.length,
  );
  if (slots <= 0) return;
  const lastFailure = record.runs.findLast((run) => run.outcome === 'failed');
  if (record.failed > 0 && lastFailure?.finishedAt) {
    const dueAt = Date.parse(lastFailure.finishedAt) + backoffDelayMs(record.failed, input.backoff);
    if (dueAt > now) {
      decision.wakeInMs = Math.min(decision.wakeInMs ?? Infinity, dueAt - now);
      return;
    }
  }
  for (let i = 0; i < slots; i++) {
    const node = chooseNode(job, input.nodes, record);
    if (node === null) {
      decision.waiting = `no ready node fits the placement of Job ${job.namespace}/${job.name}`;
      return;
    }
    const attempt = ++record.lastAttempt;
    const name = jobRunName(job.namespace, job.name, input.specHash, attempt);
    const startedAt = new Date(now).toISOString();
    record.startedAt ??= startedAt;
    record.runs.push({
      attempt,
      name,
      node,
      outcome: 'running',
      exitCode: null,
      startedAt,
      finishedAt: null,
      durationMs: null,
      output: null,
      seen: false,
    });
    decision.start.push({ attempt, name, node });
  }
}

/** Reads what the nodes report into the record; returns the runs that finished just now. */
function foldObservedRuns(
  record: JobRecord,
  observed: readonly ObservedJobRun[],
  nodes: readonly NodeSnapshot[],
  now: number,
): JobRunRecord[] {
  const finished: JobRunRecord[] = [];
  for (const run of [...observed].sort((a, b) => a.attempt - b.attempt)) {
    let recorded = record.runs.find((r) => r.attempt === run.attempt);
    if (recorded === undefined) {
      // Started by an operator that did not live to record it: adopted.
      recorded = {
        attempt: run.attempt,
        name: run.name,
        node: run.node,
        outcome: 'running',
        exitCode: null,
        startedAt: run.startedAt ?? new Date(now).toISOString(),
        finishedAt: null,
        durationMs: null,
        output: null,
        seen: true,
      };
      record.runs.push(recorded);
      record.runs.sort((a, b) => a.attempt - b.attempt);
      record.startedAt ??= recorded.startedAt;
    }
    recorded.seen = true;
    record.lastAttempt = Math.max(record.lastAttempt, run.attempt);
    const done = run.state === 'exited' || run.state === 'dead';
    if (!done || recorded.outcome !== 'running') continue;
    const finishedAt = run.finishedAt ?? new Date(now).toISOString();
    const startedAt = run.startedAt ?? recorded.startedAt;
    Object.assign(recorded, {
      outcome: run.exitCode === 0 ? 'succeeded' : 'failed',
      exitCode: run.exitCode,
      startedAt,
      finishedAt,
      durationMs: Math.max(0, Date.parse(finishedAt) - Date.parse(startedAt)),
      output: run.output,
    });
    countFinished(record, recorded);
    finished.push(recorded);
  }
  // A run seen before whose container is gone from a node that answers was lost.
  for (const recorded of record.runs) {
    if (recorded.outcome !== 'running' || !recorded.seen) continue;
    if (observed.some((run) => run.name === recorded.name) || !isReady(nodes, recorded.node)) continue;
    Object.assign(recorded, {
      outcome: 'failed',
      finishedAt: new Date(now).toISOString(),
      output: `its container vanished from node ${recorded.node}`,
    });
    countFinished(record, recorded);
    finished.push(recorded);
  }
  return finished;
}

/** A run that could not even start (its container was refused) fails like one that exited. */
export function failRunThatDidNotStart(
  record: JobRecord,
  name: string,
  reason: string,
  now: number,
): JobRunRecord | null {
  const run = record.runs.find((r) => r.name === name && r.outcome === 'running');
  if (run === undefined) return null;
  Object.assign(run, {
    outcome: 'failed',
    finishedAt: new Date(now).toISOString(),
    durationMs: 0,
    output: reason,
  });
  countFinished(record, run);
  return run;
}

function countFinished(record: JobRecord, run: JobRunRecord): void {
  if (run.outcome === 'succeeded') record.succeeded += 1;
  else if (run.outcome === 'failed') record.failed += 1;
}

/**
 * Runs on a node that is down: waited for while the node may come back, then taken as lost (see
 * JOB_RUN_LOST_AFTER_MS), which frees their place for a run on another node.
 */
function noteLostNodes(decision: JobDecision, nodes: readonly NodeSnapshot[], now: number): void {
  const down = new Set(nodes.filter((node) => node.status === 'down').map((node) => node.name));
  for (const run of decision.record.runs) {
    if (run.outcome !== 'running') continue;
    if (!down.has(run.node)) {
      delete run.nodeDownSince;
      continue;
    }
    run.nodeDownSince ??= new Date(now).toISOString();
    const dueInMs = Date.parse(run.nodeDownSince) + JOB_RUN_LOST_AFTER_MS - now;
    if (dueInMs > 0) {
      decision.wakeInMs = Math.min(decision.wakeInMs ?? Infinity, dueInMs);
      continue;
    }
    delete run.nodeDownSince;
    Object.assign(run, {
      outcome: 'lost',
      finishedAt: new Date(now).toISOString(),
      output: `its node ${run.node} was lost; run again on another node`,
    });
    decision.finished.push(run);
  }
}

function finish(record: JobRecord, phase: 'succeeded' | 'failed', reason: string | null, now: number): void {
  record.phase = phase;
  record.reason = reason;
  record.finishedAt = new Date(now).toISOString();
}

/** Finished run containers go once their time to live is over; runs of Jobs gone from git at once. */
function removeExpired(input: JobDecisionInput, decision: JobDecision): void {
  for (const run of input.runs) {
    if (run.state !== 'exited' && run.state !== 'dead') continue;
    if (decision.remove.some((removal) => removal.name === run.name)) continue;
    const finishedAt = run.finishedAt === null ? input.now : Date.parse(run.finishedAt);
    // A run of the current spec is removed only once the record holds what it did.
    const recorded =
      run.specHash !== input.specHash ||
      decision.record.runs.some((r) => r.name === run.name && r.outcome !== 'running');
    const dueInMs = finishedAt + input.job.ttlAfterFinishedMs - input.now;
    if (recorded && dueInMs <= 0)
      decision.remove.push({ name: run.name, node: run.node, reason: 'finished' });
    else if (recorded) decision.wakeInMs = Math.min(decision.wakeInMs ?? Infinity, dueInMs);
  }
}

/** The ready node the Job's placement allows that runs the fewest of its runs now. */
function chooseNode(job: JobSpec, nodes: readonly NodeSnapshot[], record: JobRecord): string | null {
  const load = (node: string) =>
    record.runs.filter((run) => run.outcome === 'running' && run.node === node).length;
  const eligible = nodes
    .filter((node) => node.status === 'ready')
    .filter((node) => job.container.placement.constraints.every((c) => matchesConstraint(node, c)))
    .map((node) => node.name)
    .sort((a, b) => load(a) - load(b) || (a < b ? -1 : a > b ? 1 : 0));
  return eligible[0] ?? null;
}

function isReady(nodes: readonly NodeSnapshot[], name: string): boolean {
  return nodes.some((node) => node.name === name && node.status === 'ready');
}

function newRecord(input: JobDecisionInput): JobRecord {
  return {
    namespace: input.job.namespace,
    name: input.job.name,
    specHash: input.specHash,
    revision: input.revision,
    phase: 'running',
    reason: null,
    startedAt: null,
    finishedAt: null,
    succeeded: 0,
    failed: 0,
    completions: input.job.completions,
    lastAttempt: 0,
    runs: [],
  };
}

function cloneRecord(record: JobRecord | null): JobRecord | null {
  return record === null ? null : { ...record, runs: record.runs.map((run) => ({ ...run })) };
}

/** A Job as `berth plan` shows it. */
export interface PlannedJob {
  namespace: string;
  name: string;
  specHash: string;
  /** `run`: no run of this spec succeeded yet; `unchanged`: it succeeded; `failed`: it failed at this spec. */
  action: 'run' | 'unchanged' | 'failed';
  /** Services (`namespace/name`) that roll only after it succeeded. */
  before: string[];
}

/**
 * What each Job of `desired` will do, from the records of earlier runs (by jobRecordKey), in the
 * order things happen: Jobs run first, and the Services that depend on one roll after it.
 */
export function planJobs(desired: DesiredState, records: Readonly<Record<string, JobRecord>>): PlannedJob[] {
  return (desired.jobs ?? []).map((job) => {
    const specHash = jobSpecHash(job, desired);
    const phase = records[jobRecordKey(job.namespace, job.name, specHash)]?.phase;
    return {
      namespace: job.namespace,
      name: job.name,
      specHash,
      action: phase === 'succeeded' ? 'unchanged' : phase === 'failed' ? 'failed' : 'run',
      before: desired.services
        .filter((s) => s.namespace === job.namespace && (s.dependsOn ?? []).some((d) => d.job === job.name))
        .map((s) => `${s.namespace}/${s.name}`),
    };
  });
}

/** Records as if every Job of `base` had succeeded: an offline plan's view of what already ran. */
export function succeededRecordsOf(base: DesiredState): Record<string, JobRecord> {
  return Object.fromEntries(
    (base.jobs ?? []).map((job) => {
      const specHash = jobSpecHash(job, base);
      const record: JobRecord = {
        namespace: job.namespace,
        name: job.name,
        specHash,
        revision: base.revision,
        phase: 'succeeded',
        reason: null,
        startedAt: null,
        finishedAt: null,
        succeeded: job.completions,
        failed: 0,
        lastAttempt: 0,
        runs: [],
      };
      return [jobRecordKey(job.namespace, job.name, specHash), record];
    }),
  );
}
