import type {
  NodeAgent,
  ObservedReplica,
  ObservedState,
  ReplicaLogLine,
  ReplicaLogOptions,
} from '../api/types.js';
import { observeCluster } from '../api/observe-cluster.js';
import type { Logger } from '../core/log.js';
import { isAlive } from '../plan/compute-plan.js';
import { jobStatusRows, type JobStatusRow } from '../plan/job-status.js';
import type { Condition } from './conditions.js';
import type { Operator } from './operator.js';
import type { EventBus, OperatorEvent } from './event-bus.js';
import { headPlan, type HeadPlan } from './head-plan.js';
import type { RevisionSource } from './revision-source.js';
import type { HistoryEntry, OperatorState, RevisionPlan, StateStore } from './state-store.js';

/** A node as the cluster's registry lists it (cluster/node-registry.ts NodeListing, the fields shown). */
export interface ListedNode {
  name: string;
  status: 'ready' | 'unreachable' | 'down';
  availability: 'active' | 'drain';
  kind: 'local' | 'joined';
  labels: Record<string, string>;
  replicas: number | null;
}

/** The nodes of an operator with --cluster-listen: listed, and drained or activated by name. */
export interface NodeControl {
  list(): ListedNode[];
  setAvailability(name: string, availability: 'active' | 'drain'): Promise<void>;
}

export interface ServiceRow {
  namespace: string;
  name: string;
  /** null: running, but not in the desired state the operator last planned (being removed, or no plan yet). */
  desired: number | null;
  running: number;
  healthy: number;
  /** The revisions its replicas run (12 characters), newest plan's first. */
  revisions: string[];
  nodes: string[];
  /** Each replica, for its logs. */
  replicas: ReplicaRow[];
}

export interface ReplicaRow {
  name: string;
  node: string;
  slot: string;
  state: string;
  health: string;
  revision: string;
}

/** The newest rollout the event stream tells of, as it goes and after it ended. */
export interface RolloutProgress {
  revision: string;
  kind: string;
  message: string;
  startedAt: string;
  /** null while it runs; then the reconcile's outcome (succeeded, rolled back, failed, ...). */
  outcome: string | null;
  reason: string | null;
  finishedAt: string | null;
}

export interface NodeRow {
  name: string;
  status: string;
  availability: 'active' | 'drain';
  kind: 'local' | 'joined' | 'agent';
  labels: Record<string, string>;
  replicas: number | null;
}

/** The `GET /v1/overview` document: what the dashboard shows, as of `generatedAt`. */
export interface Overview {
  generatedAt: string;
  repository: OperatorState['source'] | null;
  /** The branch head as of the last reconcile. */
  head: string | null;
  /** What the last reconcile converged toward (the head, or the last good revision instead). */
  target: string | null;
  deployed: OperatorState['lastGood'];
  /** Why the cluster does not run the head; null when it does (or nothing was reconciled yet). */
  headDiffers: { reason: string; failedAt: string | null } | null;
  conditions: readonly Condition[];
  lastReconcile: { id: string; outcome: string; reason: string | null } | null;
  lastError: string | null;
  rollout: RolloutProgress | null;
  /** The newest events of the operator's event stream (/v1/events), oldest first. */
  events: OperatorEvent[];
  services: ServiceRow[];
  /** Each Job of the last reconciled revision at its spec, or one that runs now (see jobStatusRows). */
  jobs: JobStatusRow[];
  nodes: NodeRow[];
  /** The newest entries of the audit log, newest first. */
  history: HistoryEntry[];
  /** Drain and activate are offered only when the operator holds a node registry. */
  canDrain: boolean;
  /** Revisions held as failed (not retried until a newer commit, or a retry), newest first. */
  failed: { revision: string; at: string; reason: string }[];
}

/** What the dashboard's routes read and do; OverviewSource in `berth run`. */
export interface DashboardData {
  read(): Promise<Overview>;
  /** The plan a revision was last rolled out with; null when none is kept. */
  revisionPlan(revision: string): Promise<RevisionPlan | null>;
  /** What `berth plan` shows for the branch head now, and why the cluster does not run it. */
  headPlan(): Promise<HeadPlan>;
  /** Forgets that a revision failed, so the next reconcile tries it again; false when it had not failed. */
  retry(revision: string): Promise<boolean>;
  /** A replica's lines; null when no node of that name is known. */
  replicaLogs(
    node: string,
    replica: string,
    options: ReplicaLogOptions,
  ): AsyncIterable<ReplicaLogLine> | null;
}

export const OVERVIEW_HISTORY = 50;
export const OVERVIEW_EVENTS = 50;
/** Pages refresh on events: one observation of the cluster serves every page within this. */
const OBSERVATION_MAX_AGE_MS = 1_000;

/**
 * Builds the dashboard's overview from what the operator knows: its last reconcile and
 * conditions, the rollout feed, the state dir, and the nodes observed (shared by concurrent
 * readers for a second, so many open pages cost one round of snapshots).
 */
export class OverviewSource implements DashboardData {
  private readonly args: OverviewSourceArgs;
  private cached: { at: number; value: Promise<ObservedState> } | null = null;

  constructor(args: OverviewSourceArgs) {
    this.args = args;
  }

  observe(): Promise<ObservedState> {
    const now = Date.now();
    if (this.cached && now - this.cached.at < OBSERVATION_MAX_AGE_MS) return this.cached.value;
    const value = observeCluster(this.args.agents(), this.args.log).catch((error: unknown) => {
      this.args.log.warn({ err: error }, 'dashboard: could not observe the nodes');
      return { nodes: [] };
    });
    this.cached = { at: now, value };
    return value;
  }

  async read(): Promise<Overview> {
    const { operator, store, events, nodes } = this.args;
    const [observed, state, history] = await Promise.all([this.observe(), store.read(), store.readHistory()]);
    const last = operator.lastResult;
    return {
      generatedAt: new Date().toISOString(),
      repository: state.source ?? null,
      head: last?.headRevision ?? null,
      target: last?.targetRevision ?? null,
      deployed: state.lastGood,
      headDiffers: headDiffers(operator, state),
      conditions: operator.conditions,
      lastReconcile: last ? { id: last.reconcileId, outcome: last.outcome, reason: last.reason } : null,
      lastError: operator.lastError?.message ?? null,
      rollout: rolloutProgress(events.since(0)),
      events: events.since(0).slice(-OVERVIEW_EVENTS),
      services: serviceRows(operator, observed),
      jobs: jobStatusRows(last?.desired ?? null, state.jobs ?? {}),
      nodes: nodeRows(observed, nodes),
      history: history.slice(-OVERVIEW_HISTORY).reverse(),
      canDrain: nodes !== null,
      failed: Object.entries(state.failed)
        .map(([revision, f]) => ({ revision, at: f.at, reason: f.reason }))
        .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0))
        .slice(0, OVERVIEW_HISTORY),
    };
  }

  async revisionPlan(revision: string): Promise<RevisionPlan | null> {
    return (await this.args.store.read()).plans?.[revision] ?? null;
  }

  async headPlan(): Promise<HeadPlan> {
    const { source, store, operator } = this.args;
    return headPlan({ source, store, operator, observe: () => this.observe() });
  }

  async retry(revision: string): Promise<boolean> {
    let held = false;
    await this.args.store.update((s) => {
      held = s.failed[revision] !== undefined;
      delete s.failed[revision];
    });
    return held;
  }

  replicaLogs(
    node: string,
    replica: string,
    options: ReplicaLogOptions,
  ): AsyncIterable<ReplicaLogLine> | null {
    const agent = this.args.agents().get(node);
    return agent ? agent.logs(replica, options) : null;
  }
}

export interface OverviewSourceArgs {
  operator: Pick<Operator, 'lastResult' | 'lastError' | 'conditions'>;
  store: Pick<StateStore, 'read' | 'readHistory' | 'update'>;
  events: Pick<EventBus, 'since'>;
  source: Pick<RevisionSource, 'head' | 'load'>;
  agents: () => ReadonlyMap<string, NodeAgent>;
  /** null without --cluster-listen: the nodes are only observed. */
  nodes: NodeControl | null;
  log: Logger;
}

function headDiffers(
  operator: OverviewSourceArgs['operator'],
  state: OperatorState,
): Overview['headDiffers'] {
  const last = operator.lastResult;
  if (last === null) return null;
  const failed = state.failed[last.headRevision];
  if (failed) return { reason: failed.reason, failedAt: failed.at };
  if (last.error) return { reason: last.error.message, failedAt: null };
  if (last.targetRevision !== null && last.targetRevision !== last.headRevision) {
    return { reason: last.reason ?? 'the cluster runs an older revision', failedAt: null };
  }
  return null;
}

function serviceRows(operator: OverviewSourceArgs['operator'], observed: ObservedState): ServiceRow[] {
  const rows = new Map<string, ServiceRow>();
  const row = (namespace: string, name: string): ServiceRow => {
    const key = `${namespace}/${name}`;
    const existing = rows.get(key);
    if (existing) return existing;
    const created: ServiceRow = {
      namespace,
      name,
      desired: null,
      running: 0,
      healthy: 0,
      revisions: [],
      nodes: [],
      replicas: [],
    };
    rows.set(key, created);
    return created;
  };
  const plan = operator.lastResult?.plan ?? null;
  for (const s of plan?.services ?? []) {
    if (s.change !== 'remove') row(s.namespace, s.name).desired = s.desiredReplicas;
  }
  for (const node of observed.nodes) {
    for (const replica of node.replicas) {
      const r = row(replica.namespace, replica.service);
      if (replica.state === 'running') r.running += 1;
      if (isAlive(replica) && replica.health !== 'starting') r.healthy += 1;
      const revision = replica.revision.slice(0, 12);
      if (!r.revisions.includes(revision)) r.revisions.push(revision);
      if (!r.nodes.includes(node.name)) r.nodes.push(node.name);
      r.replicas.push(replicaRow(replica, revision));
    }
  }
  return [...rows.values()].sort(
    (a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name),
  );
}

/** The registry's listing (availability, joined nodes that do not answer) with what was observed. */
function nodeRows(observed: ObservedState, control: NodeControl | null): NodeRow[] {
  const seen = new Map(observed.nodes.map((n) => [n.name, n]));
  if (control === null) {
    return observed.nodes.map((n) => ({
      name: n.name,
      status: n.status === 'drain' ? 'ready' : n.status,
      availability: n.status === 'drain' ? 'drain' : 'active',
      kind: 'agent',
      labels: n.labels,
      replicas: n.replicas.length,
    }));
  }
  return control.list().map((listed) => {
    const snapshot = seen.get(listed.name);
    return {
      ...listed,
      labels: Object.keys(listed.labels).length > 0 ? listed.labels : (snapshot?.labels ?? {}),
      replicas: listed.replicas ?? snapshot?.replicas.length ?? null,
    };
  });
}

function replicaRow(replica: ObservedReplica, revision: string): ReplicaRow {
  const { name, node, slot, state, health } = replica;
  return { name, node, slot, state, health, revision };
}

/**
 * The newest rollout as the event stream tells it: its `rollout-started`, and the
 * `reconcile-finished` after it (none yet: still running).
 */
export function rolloutProgress(events: readonly OperatorEvent[]): RolloutProgress | null {
  const startIndex = events.findLastIndex((e) => e.type === 'rollout-started');
  const start = events[startIndex];
  if (start === undefined) return null;
  const end = events.slice(startIndex + 1).find((e) => e.type === 'reconcile-finished');
  const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
  return {
    revision: text(start.data['revision']) ?? '',
    kind: text(start.data['kind']) ?? 'rollout',
    message: text(start.data['message']) ?? '',
    startedAt: start.at,
    outcome: end ? (text(end.data['outcome']) ?? 'failed') : null,
    reason: end ? text(end.data['reason']) : null,
    finishedAt: end ? end.at : null,
  };
}
