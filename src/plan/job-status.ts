/**
 * Where each Job stands, for `berth status` and the dashboard: read from the Job records of
 * state.json against the spec in git. Pure.
 */
import type { DesiredState } from '../manifests/types.js';
import { jobRecordKey, jobSpecHash, type JobPhase, type JobRecord, type JobRunRecord } from './job-plan.js';

export interface JobStatusRow {
  namespace: string;
  name: string;
  /** The spec hash the row is about (12 characters); null when no record and no spec says. */
  specHash: string | null;
  /**
   * At the spec in git: `succeeded` (not run again), `failed` (not run again until the spec
   * changes), `running`, or `pending`: not run yet at this spec (the next reconcile runs it, before
   * the Services in `before` roll).
   */
  state: JobPhase | 'pending';
  /** Successful runs done and needed. */
  completions: { succeeded: number; required: number | null };
  /** Runs that failed at this spec (a run whose node was lost is not one). */
  failed: number;
  /** Why it failed; null otherwise. */
  reason: string | null;
  /** The newest run (by attempt): when it finished (or started, while it runs), where, how it ended. */
  lastRun: {
    attempt: number;
    at: string;
    node: string;
    outcome: JobRunRecord['outcome'];
    exitCode: number | null;
  } | null;
  /** Services (`namespace/name`) that roll only once this Job succeeded. */
  before: string[];
}

/**
 * One row per Job in `desired` (null: the spec is not known, e.g. no repository to read): its record
 * at the spec in git, or the record of another spec of it that runs now (a reconcile runs a newer
 * revision than the one read). Without `desired`, every Job recorded, at its newest record.
 */
export function jobStatusRows(
  desired: DesiredState | null,
  records: Readonly<Record<string, JobRecord>>,
): JobStatusRow[] {
  const all = Object.values(records);
  const running = (namespace: string, name: string) =>
    all.find((r) => r.namespace === namespace && r.name === name && r.phase === 'running') ?? null;
  if (desired === null) {
    const newest = new Map<string, JobRecord>();
    for (const record of all) {
      const key = `${record.namespace}/${record.name}`;
      const known = newest.get(key);
      if (known === undefined || changedAt(known) < changedAt(record)) newest.set(key, record);
    }
    return sortRows(
      [...newest.values()].map((record) => rowOf(record.namespace, record.name, record, null, [])),
    );
  }
  return sortRows(
    (desired.jobs ?? []).map((job) => {
      const specHash = jobSpecHash(job, desired);
      const record =
        running(job.namespace, job.name) ?? records[jobRecordKey(job.namespace, job.name, specHash)];
      const before = desired.services
        .filter((s) => s.namespace === job.namespace && (s.dependsOn ?? []).some((d) => d.job === job.name))
        .map((s) => `${s.namespace}/${s.name}`);
      return rowOf(
        job.namespace,
        job.name,
        record ?? null,
        { specHash, completions: job.completions },
        before,
      );
    }),
  );
}

function rowOf(
  namespace: string,
  name: string,
  record: JobRecord | null,
  spec: { specHash: string; completions: number } | null,
  before: string[],
): JobStatusRow {
  const last = record?.runs.reduce<JobRunRecord | null>(
    (newest, run) => (newest === null || run.attempt > newest.attempt ? run : newest),
    null,
  );
  return {
    namespace,
    name,
    specHash: (record?.specHash ?? spec?.specHash ?? null)?.slice(0, 12) ?? null,
    state: record?.phase ?? 'pending',
    completions: {
      succeeded: record?.succeeded ?? 0,
      required:
        record?.completions ??
        (record === null || record.specHash === spec?.specHash ? (spec?.completions ?? null) : null),
    },
    failed: record?.failed ?? 0,
    reason: record?.reason ?? null,
    lastRun:
      last == null
        ? null
        : {
            attempt: last.attempt,
            at: last.finishedAt ?? last.startedAt,
            node: last.node,
            outcome: last.outcome,
            exitCode: last.exitCode,
          },
    before,
  };
}

function changedAt(record: JobRecord): string {
  return record.finishedAt ?? record.startedAt ?? '';
}

function sortRows(rows: JobStatusRow[]): JobStatusRow[] {
  return rows.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
}
