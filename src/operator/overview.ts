import type { NodeAgent, ObservedState } from '../api/types.js';
import { observeCluster } from '../api/observe-cluster.js';
import type { Logger } from '../core/log.js';
import { isAlive } from '../plan/compute-plan.js';
import { jobStatusRows, type JobStatusRow } from '../plan/job-status.js';
import type { Condition } from './conditions.js';
import type { Operator } from './operator.js';
import type { FeedEvent, RolloutFeed, RolloutProgress } from './rollout-feed.js';
import type { HistoryEntry, OperatorState, StateStore } from './state-store.js';

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
  events: FeedEvent[];
  services: ServiceRow[];
  /** Each Job of the last reconciled revision at its spec, or one that runs now (see jobStatusRows). */
  jobs: JobStatusRow[];
  nodes: NodeRow[];
  /** The newest entries of the audit log, newest first. */
  history: HistoryEntry[];
  /** Drain and activate are offered only when the operator holds a node registry. */
  canDrain: boolean;
}

export const OVERVIEW_HISTORY = 50;
export const OVERVIEW_EVENTS = 50;
/** Pages poll every second: one observation of the cluster serves every page within this. */
const OBSERVATION_MAX_AGE_MS = 1_000;

/**
 * Builds the dashboard's overview from what the operator knows: its last reconcile and
 * conditions, the rollout feed, the state dir, and the nodes observed (shared by concurrent
 * readers for a second, so many open pages cost one round of snapshots).
 */
export class OverviewSource {
  private readonly args: OverviewSourceArgs;
  private cached: { at: number; value: Promise<ObservedState> } | null = null;

  constructor(args: OverviewSourceArgs) {
    this.args = args;
  }

  private observe(): Promise<ObservedState> {
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
    const { operator, store, feed, nodes } = this.args;
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
      rollout: feed.current,
      events: feed.recent(OVERVIEW_EVENTS),
      services: serviceRows(operator, observed),
      jobs: jobStatusRows(last?.desired ?? null, state.jobs ?? {}),
      nodes: nodeRows(observed, nodes),
      history: history.slice(-OVERVIEW_HISTORY).reverse(),
      canDrain: nodes !== null,
    };
  }
}

export interface OverviewSourceArgs {
  operator: Pick<Operator, 'lastResult' | 'lastError' | 'conditions'>;
  store: Pick<StateStore, 'read' | 'readHistory'>;
  feed: RolloutFeed;
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
