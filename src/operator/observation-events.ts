/**
 * Events drawn from what the operator observes (the routing mesh's observation of every node, once
 * a second): a replica's health changing, a Job run starting and ending. Each change is one event,
 * however many observations repeat it. Pure: the caller hands in each observation and publishes
 * what comes back.
 *
 * A node that is down reports nothing, which says nothing about its replicas: what was last known
 * of them is kept until the node answers again. Job runs are told apart by container name (one
 * container a run and attempt), so runs of any kind that carry the berth.job label count, CronJob
 * runs included. Runs that started and ended before `since` (the operator's start) are not
 * announced (a restarted operator does not tell old runs again), a run seen already ended but
 * after `since` is (it came and went between two observations); a replica already unhealthy when
 * first seen is announced, once.
 */
import type { NodeSnapshot, ObservedJobRun, ObservedState, ReplicaHealth } from '../api/types.js';
import type { JobRunEventData, OperatorEventType, ReplicaHealthChangedData } from './event-bus.js';

export interface ObservationEvent {
  type: OperatorEventType;
  data: ReplicaHealthChangedData | JobRunEventData;
}

interface KnownRun {
  finished: boolean;
}

export class ObservationEvents {
  /** Health by `node/replica`. */
  private readonly health = new Map<string, ReplicaHealth>();
  /** Runs by `node/container`. */
  private readonly runs = new Map<string, KnownRun>();

  constructor(private readonly since: Date = new Date()) {}

  /** The events of the changes since the last observation. */
  changes(observed: ObservedState): ObservationEvent[] {
    const events: ObservationEvent[] = [];
    for (const node of observed.nodes) {
      if (node.status === 'down') continue;
      events.push(...this.healthChanges(node), ...this.runChanges(node));
    }
    return events;
  }

  private healthChanges(node: NodeSnapshot): ObservationEvent[] {
    const events: ObservationEvent[] = [];
    const present = new Set<string>();
    for (const replica of node.replicas) {
      const key = `${node.name}/${replica.name}`;
      // Health is the check's verdict on a running container. One stopped (a rollout removing it,
      // a crash) is a rollout step or a restart, not a health change; it starts afresh if it runs again.
      if (replica.state !== 'running') continue;
      present.add(key);
      const before = this.health.get(key) ?? null;
      this.health.set(key, replica.health);
      if (before === replica.health) continue;
      // Starting, and healthy for the first time, are rollout steps (replica-starting, -healthy).
      if (before !== 'unhealthy' && replica.health !== 'unhealthy') continue;
      events.push({
        type: 'replica-health-changed',
        data: {
          namespace: replica.namespace,
          service: replica.service,
          replica: replica.name,
          slot: replica.slot,
          node: node.name,
          from: before,
          to: replica.health,
          detail: replica.healthDetail,
        },
      });
    }
    forgetAbsent(this.health, `${node.name}/`, present);
    return events;
  }

  private runChanges(node: NodeSnapshot): ObservationEvent[] {
    const events: ObservationEvent[] = [];
    const present = new Set<string>();
    for (const run of node.jobRuns ?? []) {
      const key = `${node.name}/${run.name}`;
      present.add(key);
      const known = this.runs.get(key);
      const finished = run.exitCode !== null;
      this.runs.set(key, { finished });
      if (known === undefined && this.isRecent(run.startedAt)) {
        events.push({ type: 'job-run-started', data: { ...runData(run), exitCode: null, output: null } });
      }
      if (finished && known?.finished !== true && this.isRecent(run.finishedAt)) {
        events.push({
          type: run.exitCode === 0 ? 'job-run-succeeded' : 'job-run-failed',
          data: runData(run),
        });
      }
    }
    forgetAbsent(this.runs, `${node.name}/`, present);
    return events;
  }

  /** At or after `since`; a time not known yet (a run not started) is. */
  private isRecent(at: string | null): boolean {
    return at === null || !(Date.parse(at) < this.since.getTime());
  }
}

function runData(run: ObservedJobRun): JobRunEventData {
  return {
    namespace: run.namespace,
    job: run.job,
    run: run.name,
    attempt: run.attempt,
    node: run.node,
    revision: run.revision,
    exitCode: run.exitCode,
    output: run.exitCode !== null && run.exitCode !== 0 ? run.output : null,
  };
}

function forgetAbsent(known: Map<string, unknown>, prefix: string, present: Set<string>): void {
  for (const key of known.keys()) if (key.startsWith(prefix) && !present.has(key)) known.delete(key);
}
