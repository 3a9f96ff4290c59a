import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { stateWriteError, writeFileAtomic } from '../core/atomic-file.js';
import { BerthError, isErrorCode, type ErrorCode } from '../core/errors.js';
import { redactCredentials } from '../core/url-credential.js';
import type { JobRecord } from '../plan/job-plan.js';
import type { CronJobState } from '../plan/cronjob-plan.js';
import type { Condition } from './conditions.js';

/**
 * The operator's own small state. Everything else (what runs) is read back from the engines.
 * - state.json: last good revision and failed revisions; replaced with core's writeFileAtomic,
 *   so a kill -9 leaves either the old or the new file, never half.
 * - history.jsonl: the append-only audit log, one JSON object per line, fsynced per append.
 *   A torn last line (a crash mid-append) is skipped when reading.
 * A failed write (full disk, read-only or unwritable dir) rejects that one call with ERR_STATE_WRITE
 * and leaves the files as they were; the next write tries again from what is on disk.
 * Every file is cleaned of git credentials before it is written (see core/url-credential.ts):
 * error messages recorded as reasons may come from libraries that quote a URL.
 */
export interface OperatorState {
  /** The last revision whose rollout fully succeeded: the rollback target. */
  lastGood: { revision: string; at: string } | null;
  /** Revisions that failed (health, deadline, invalid manifests): not retried until a newer commit. */
  failed: Record<string, FailedRevision>;
  /** What each Job did at each spec hash, by jobRecordKey(): a Job runs once per spec hash. */
  jobs?: Record<string, JobRecord>;
  /** What the CronJob scheduler knows of each CronJob (`namespace/name`); its runs' records are in `jobs`. */
  cronJobs?: Record<string, CronJobState>;
  /** The repository last applied from, so `status` and `history` need no flags. */
  source?: { repo: string; path: string; branch: string };
  /** The plan each revision was last rolled out with (as `berth plan` prints it), by revision. */
  plans?: Record<string, RevisionPlan>;
}

/** A plan as applied: for the dashboard's history. */
export interface RevisionPlan {
  at: string;
  /** The plan's text, clipped at MAX_PLAN_CHARS. */
  text: string;
}

export interface FailedRevision {
  at: string;
  reason: string;
  /** Why, as an error code (absent in entries written before codes were recorded). */
  code?: ErrorCode;
}

/** The error a failed revision was recorded with; older entries carry no code: a failed rollout. */
export function failedRevisionError(failed: FailedRevision): BerthError {
  return new BerthError(isErrorCode(failed.code) ? failed.code : 'ERR_ROLLOUT_UNHEALTHY', failed.reason);
}

/** The operator's conditions as last published, with when (so a reader sees how fresh they are). */
export interface RecordedConditions {
  at: string;
  conditions: Condition[];
}

/**
 * `interrupted`: the infrastructure (a node lost, the operator stopping) cut a rollout short; the
 * revision is not blamed and the next reconcile goes on. `rollback interrupted`: the revision
 * failed on its own and the way back to the last good revision was cut short likewise.
 */
export type HistoryOutcome =
  | 'succeeded'
  | 'failed'
  | 'interrupted'
  | 'rolled back'
  | 'rollback failed'
  | 'rollback interrupted'
  | 'invalid';

export interface HistoryEntry {
  at: string;
  revision: string;
  /** Set on entries written by a rollback: the revision that failed. */
  rolledBackFrom?: string;
  author?: string;
  message?: string;
  service: string | null;
  change: string;
  outcome: HistoryOutcome;
  reason: string | null;
  durationMs: number;
  started: { name: string; node: string }[];
  removed: { name: string; node: string }[];
  /** Set on entries of a finished run of a Job (`service` is then null, `change` is `job run`). */
  job?: {
    namespace: string;
    name: string;
    /** Set for a run of a CronJob (`name` is the run's). */
    cronJob?: string;
    specHash: string;
    attempt: number;
    node: string;
    exitCode: number | null;
    /** The last lines of its output. */
    output: string | null;
  };
}

/** History kept on disk: older entries are dropped when the log grows past twice this. */
export const DEFAULT_HISTORY_RETENTION = 1000;

const emptyState = (): OperatorState => ({ lastGood: null, failed: {} });

export class StateStore {
  readonly dir: string;
  private readonly retention: number;
  /** Writes of this store, one at a time: a read-modify-write never interleaves with another. */
  private writes: Promise<unknown> = Promise.resolve();

  constructor(dir: string, options: { historyRetention?: number } = {}) {
    this.dir = dir;
    this.retention = options.historyRetention ?? DEFAULT_HISTORY_RETENTION;
  }

  private get statePath(): string {
    return join(this.dir, 'state.json');
  }

  private get conditionsPath(): string {
    return join(this.dir, 'conditions.json');
  }

  /** Written by `berth run` after every change of its conditions; read by `berth status`. */
  async writeConditions(conditions: Condition[], now: Date): Promise<void> {
    const recorded: RecordedConditions = { at: now.toISOString(), conditions };
    await writeFileAtomic(this.conditionsPath, stateJson(recorded));
  }

  async readConditions(): Promise<RecordedConditions | null> {
    try {
      return JSON.parse(await readFile(this.conditionsPath, 'utf8')) as RecordedConditions;
    } catch {
      // Absent (no operator ran here yet) or torn: status shows none rather than failing.
      return null;
    }
  }

  private get historyPath(): string {
    return join(this.dir, 'history.jsonl');
  }

  /** Runs one write after the ones before it; a failed write rejects only its own call. */
  private serially<T>(write: () => Promise<T>): Promise<T> {
    const result = this.writes.then(write);
    this.writes = result.catch(() => undefined);
    return result;
  }

  async read(): Promise<OperatorState> {
    let text: string;
    try {
      text = await readFile(this.statePath, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw error;
    }
    try {
      return { ...emptyState(), ...(JSON.parse(text) as Partial<OperatorState>) };
    } catch {
      throw new BerthError(
        'ERR_STATE',
        `${this.statePath} is not valid JSON; move it away to start from an empty state`,
      );
    }
  }

  /** Replaces state.json; rejects with ERR_STATE_WRITE (the file keeps its previous content) when it cannot. */
  async write(state: OperatorState): Promise<void> {
    await this.serially(() => writeFileAtomic(this.statePath, stateJson(boundedState(state)), 0o600));
  }

  /**
   * Reads, changes and writes state.json as one step. When the write fails the call rejects and
   * the file keeps its previous content, so the next update starts from what is on disk.
   */
  async update(change: (state: OperatorState) => void): Promise<OperatorState> {
    return this.serially(async () => {
      const state = await this.read();
      change(state);
      const bounded = boundedState(state);
      await writeFileAtomic(this.statePath, stateJson(bounded), 0o600);
      return bounded;
    });
  }

  /**
   * Appends entries to the audit log, all or none: a failed append (a full disk) is cut back to
   * the log's previous end and rejects with ERR_STATE_WRITE. Past twice the retention the log is
   * instead rewritten (atomically) with the newest entries, the new ones included.
   */
  async appendHistory(entries: HistoryEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.serially(async () => {
      const all = await this.readHistory();
      if (all.length + entries.length > this.retention * 2) {
        await writeFileAtomic(
          this.historyPath,
          historyLines([...all, ...entries].slice(-this.retention)),
          0o600,
        );
      } else {
        await appendLines(this.historyPath, historyLines(entries));
      }
    });
  }

  async readHistory(): Promise<HistoryEntry[]> {
    let text: string;
    try {
      text = await readFile(this.historyPath, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const entries: HistoryEntry[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        entries.push(JSON.parse(line) as HistoryEntry);
      } catch {
        // A torn line from a crash mid-append: everything before it is intact.
      }
    }
    return entries;
  }
}

function historyLines(entries: HistoryEntry[]): string {
  return entries.map((e) => `${redactCredentials(JSON.stringify(boundedEntry(e)))}\n`).join('');
}

function stateJson(value: unknown): string {
  return `${redactCredentials(JSON.stringify(value, null, 2))}\n`;
}

/** Appends text and fsyncs; on failure the file is truncated back to its old end, so no half entry stays. */
async function appendLines(path: string, text: string): Promise<void> {
  let handle: FileHandle | undefined;
  let size = 0;
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    handle = await open(path, 'a+', 0o600);
    size = (await handle.stat()).size;
    // After a crash mid-append the file ends in half a line; start on a fresh line so the torn
    // line does not swallow the first new entry.
    const last = Buffer.alloc(1);
    if (size > 0) await handle.read(last, 0, 1, size - 1);
    const lead = size > 0 && last[0] !== 0x0a ? '\n' : '';
    // appendFile writes until all of it is out; a bare write() may stop short on a full disk.
    await handle.appendFile(lead + text);
    await handle.sync();
  } catch (error) {
    await handle?.truncate(size).catch(() => undefined);
    throw stateWriteError(path, error);
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/*
 * Caps on what the operator keeps on disk per revision, so a hostile or careless commit (a
 * megabyte commit message, an error quoting a huge file) or a long run of bad commits cannot grow
 * state.json or history.jsonl without bound. The limits are in docs/limits.md.
 */

/** Failed revisions remembered (so each is not retried): the newest ones, by when they failed. */
export const MAX_FAILED_REVISIONS = 100;
/** Job records kept (one per Job and spec hash): the newest ones, by when they last changed. */
export const MAX_JOB_RECORDS = 200;
/** Characters kept of a Job run's output in state.json and in a history entry. */
export const MAX_JOB_OUTPUT_CHARS = 2048;
/** Characters kept of a reason (an error message) in state.json and in a history entry. */
export const MAX_REASON_CHARS = 4096;
/** Characters kept of a commit message in a history entry (its subject line is what is shown). */
export const MAX_MESSAGE_CHARS = 1024;
/** Characters kept of a commit author in a history entry. */
export const MAX_AUTHOR_CHARS = 256;

/** Plans kept (see OperatorState.plans): the newest ones, by when they were applied. */
export const MAX_REVISION_PLANS = 20;
/** Characters kept of each plan's text. */
export const MAX_PLAN_CHARS = 8192;

export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max - 1)}…`;
}

/** The state as written: the newest failed revisions only, each reason clipped. */
export function boundedState(state: OperatorState): OperatorState {
  const failed = Object.entries(state.failed)
    .sort(([, a], [, b]) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0))
    .slice(0, MAX_FAILED_REVISIONS)
    .map(([revision, f]) => [revision, { ...f, reason: clip(f.reason, MAX_REASON_CHARS) }] as const);
  return {
    ...state,
    failed: Object.fromEntries(failed),
    ...(state.jobs === undefined ? {} : { jobs: boundedJobRecords(state.jobs) }),
    ...(state.plans === undefined ? {} : { plans: boundedPlans(state.plans) }),
  };
}

function boundedPlans(plans: Record<string, RevisionPlan>): Record<string, RevisionPlan> {
  const kept = Object.entries(plans)
    .sort(([, a], [, b]) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0))
    .slice(0, MAX_REVISION_PLANS)
    .map(([revision, plan]) => [revision, { ...plan, text: clip(plan.text, MAX_PLAN_CHARS) }] as const);
  return Object.fromEntries(kept);
}

function boundedJobRecords(jobs: Record<string, JobRecord>): Record<string, JobRecord> {
  const changedAt = (record: JobRecord) => record.finishedAt ?? record.startedAt ?? '';
  const kept = Object.entries(jobs)
    .sort(([, a], [, b]) => (changedAt(a) < changedAt(b) ? 1 : changedAt(a) > changedAt(b) ? -1 : 0))
    .slice(0, MAX_JOB_RECORDS)
    .map(([key, record]) => {
      const runs = record.runs.map((run) => ({
        ...run,
        output: run.output === null ? null : tail(run.output, MAX_JOB_OUTPUT_CHARS),
      }));
      const reason = record.reason === null ? null : clip(record.reason, MAX_REASON_CHARS);
      return [key, { ...record, reason, runs }] as const;
    });
  return Object.fromEntries(kept);
}

/** The end of a text, where a run's output says how it ended. */
export function tail(text: string, max: number): string {
  return text.length <= max ? text : `…${text.slice(text.length - max + 1)}`;
}

/** A history entry as written: its free-text fields clipped. */
export function boundedEntry(entry: HistoryEntry): HistoryEntry {
  return {
    ...entry,
    reason: entry.reason === null ? null : clip(entry.reason, MAX_REASON_CHARS),
    ...(entry.message === undefined ? {} : { message: clip(entry.message, MAX_MESSAGE_CHARS) }),
    ...(entry.author === undefined ? {} : { author: clip(entry.author, MAX_AUTHOR_CHARS) }),
    ...(entry.job?.output
      ? { job: { ...entry.job, output: tail(entry.job.output, MAX_JOB_OUTPUT_CHARS) } }
      : {}),
  };
}
