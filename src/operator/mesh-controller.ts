import type {
  MeshMembership,
  MeshRoutes,
  NodeAgent,
  NodeSnapshot,
  ObservedReplica,
  ObservedState,
} from '../api/types.js';
import type { Logger } from '../core/log.js';
import type { DesiredState } from '../manifests/types.js';
import { observeCluster } from '../api/observe-cluster.js';
import { NodeChangeWatch } from './node-change-watch.js';
import {
  computeMeshRoutes,
  computeServiceRoutes,
  misaddressedReplicas,
  replicaKey,
} from '../mesh/mesh-routes.js';

export interface MeshControllerOptions {
  agents: () => ReadonlyMap<string, NodeAgent>;
  log: Logger;
  /**
   * How often every node is read and the table pushed to every node even though no node said
   * anything changed: the safety net under the change following (a node that restarted or
   * reconnected gets its table back without any bookkeeping).
   */
  resyncMs?: number;
  /** Told of every observation as the nodes answered it (before down nodes get their last replicas back). */
  onObserved?: (observed: ObservedState) => void;
}

/** The full resync of the mesh; changes are followed as they happen in between. */
export const MESH_RESYNC_MS = 30_000;
/** Changes that come together (a rollout's batch, a node's resync) make one refresh. */
const CHANGE_SETTLE_MS = 100;

/**
 * The operator's side of the routing mesh. Holds the last observed state and the desired
 * services' published ports, computes the table (computeMeshRoutes, pure) and pushes it to every
 * node. Rollouts speed it up: a replica is admitted the moment it is healthy and withdrawn (and
 * drained) before it is stopped, without waiting for the next observation.
 */
export class MeshController implements MeshMembership {
  private readonly options: MeshControllerOptions;
  private readonly log: Logger;
  private readonly quiet: Logger;
  /**
   * Null until a reconcile has loaded what git wants. A restarted operator must not push a table
   * before then: an empty one would close every published port on every node while the replicas
   * behind them keep running (found by the soak run). Until then the nodes keep their last table.
   */
  private desired: Pick<DesiredState, 'services'> | null = null;
  private observed: ObservedState = { nodes: [] };
  /** The last snapshot of each node that answered, by name. */
  private readonly lastSeen = new Map<string, NodeSnapshot>();
  private readonly withdrawn = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private lastVersion = 0;
  private ticking: Promise<void> | null = null;
  /** The newest table a push completed with, its routes without its version (see contentOf). */
  private pushed: { version: number; content: string } | null = null;
  /** A refresh is wanted: the settle timer runs, or the running refresh is followed by another. */
  private wanted = false;
  private settleTimer: NodeJS.Timeout | null = null;
  private readonly lostListeners = new Set<() => void>();
  private readonly watch: NodeChangeWatch;
  /** Replicas left out of routing for their address, already logged (`node/name@address`). */
  private misaddressedLogged = new Set<string>();

  constructor(options: MeshControllerOptions) {
    this.options = options;
    this.log = options.log.child({ component: 'mesh' });
    this.quiet = this.log.child({}, { level: 'error' });
    this.watch = new NodeChangeWatch(options.agents, () => this.refreshSoon());
  }

  /** The services (their published ports, and the ports reached by name) that a reconcile converges toward. */
  setDesired(desired: Pick<DesiredState, 'services'>): void {
    this.desired = desired;
    // Each reconcile: a node that joined since is followed from now on.
    if (this.timer !== null) this.watch.follow();
  }

  /** Follows the nodes' changes, and reads every node every resync period whatever they say. */
  start(): void {
    const every = this.options.resyncMs ?? MESH_RESYNC_MS;
    const resync = (): void => {
      if (this.stopped) return;
      this.watch.follow();
      this.refreshSoon();
      this.timer = setTimeout(resync, every);
    };
    resync();
  }

  /**
   * Called when a refresh finds a replica gone or stopped that no rollout withdrew: removed or
   * stopped behind berth's back, or died. The operator reconciles then, not on a timer.
   */
  onReplicaLost(listener: () => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /** One refresh soon, however many changes come together; never two at once. */
  private refreshSoon(): void {
    if (this.stopped || this.wanted) return;
    this.wanted = true;
    if (this.ticking !== null) return;
    this.settleTimer = setTimeout(() => this.runRefresh(), CHANGE_SETTLE_MS);
  }

  private runRefresh(): void {
    this.settleTimer = null;
    this.wanted = false;
    this.ticking = this.refresh()
      .catch((error: unknown) => this.log.warn({ err: error }, 'routing mesh refresh failed'))
      .finally(() => {
        this.ticking = null;
        if (this.wanted && !this.stopped)
          this.settleTimer = setTimeout(() => this.runRefresh(), CHANGE_SETTLE_MS);
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.settleTimer) clearTimeout(this.settleTimer);
    await this.watch.stop();
    await this.ticking;
  }

  /** Observes every node and pushes the table computed from what it saw. */
  async refresh(): Promise<void> {
    // A node that stays down would otherwise be reported at every refresh; the reconcile loop
    // already says so.
    const answered = await observeCluster(this.options.agents(), this.quiet);
    this.options.onObserved?.(answered);
    const observed = this.withLastSeen(answered);
    const present = new Set(observed.nodes.flatMap((n) => n.replicas.map((r) => replicaKey(n.name, r.name))));
    const lost = this.desired !== null && lostReplicas(this.observed, observed, this.withdrawn).length > 0;
    // A withdrawn replica is forgotten once it is gone, so a later one of the same name can serve.
    for (const key of this.withdrawn) if (!present.has(key)) this.withdrawn.delete(key);
    this.observed = observed;
    if (lost) for (const listener of this.lostListeners) listener();
    this.logMisaddressed();
    await this.push(0);
  }

  /**
   * A node that is down answers nothing, but its containers may still serve (a frozen or cut-off
   * agent): it keeps the replicas and address it last reported, which the routes use only for a
   * service with no replica on any node that answers (see computeMeshRoutes).
   */
  private withLastSeen(observed: ObservedState): ObservedState {
    const names = new Set(observed.nodes.map((n) => n.name));
    for (const name of this.lastSeen.keys()) if (!names.has(name)) this.lastSeen.delete(name);
    return {
      nodes: observed.nodes.map((node) => {
        if (node.status !== 'down') {
          this.lastSeen.set(node.name, node);
          return node;
        }
        const seen = this.lastSeen.get(node.name);
        return seen === undefined ? node : { ...node, address: seen.address, replicas: seen.replicas };
      }),
    };
  }

  /** Says once per replica (and address) that it is left out of routing, as computeMeshRoutes leaves it. */
  private logMisaddressed(): void {
    const now = new Set<string>();
    for (const found of misaddressedReplicas(this.observed)) {
      const key = `${replicaKey(found.node, found.replica)}@${found.publishedOn}`;
      now.add(key);
      if (this.misaddressedLogged.has(key)) continue;
      this.log.warn(
        found,
        "replica published on an address that is not its node's: the mesh does not route to it",
      );
    }
    this.misaddressedLogged = now;
  }

  async admit(replica: ObservedReplica): Promise<void> {
    this.withdrawn.delete(replicaKey(replica.node, replica.name));
    this.observed = {
      nodes: this.observed.nodes.map((node) =>
        node.name === replica.node
          ? {
              ...node,
              replicas: [
                ...node.replicas.filter((r) => r.name !== replica.name),
                { ...replica, state: 'running', health: replica.health === 'none' ? 'none' : 'healthy' },
              ],
            }
          : node,
      ),
    };
    if (!this.observed.nodes.some((n) => n.name === replica.node)) {
      // A node first seen by this rollout: its address comes with the next observation.
      await this.refresh();
      return;
    }
    // A replica no route leads to (its service publishes nothing) changes no node's table: with
    // hundreds of nodes, pushing the same table to every one of them per replica is most of a rollout.
    if (this.pushedAlready()) return;
    await this.push(0);
  }

  async withdraw(replica: { name: string; node: string }, drainTimeoutMs: number): Promise<void> {
    this.withdrawn.add(replicaKey(replica.node, replica.name));
    // Not routed to by the table every node has: nothing to drain. Its own node, down a while
    // ago, may hold an older table: that one is pushed to.
    const nodeDown = this.observed.nodes.some((n) => n.name === replica.node && n.status === 'down');
    if (!nodeDown && this.pushedAlready()) return;
    // The replica's own node too, even when the last observation saw it down: it is about to be
    // asked to stop the replica, so it answers again, and its mesh (which outlives a killed or
    // frozen agent) may still route there with the table it kept while it was down.
    await this.push(drainTimeoutMs, replica.node);
  }

  /** Whether the table as it is now is the one the last push completed gave every node. */
  private pushedAlready(): boolean {
    return this.pushed !== null && contentOf(this.table(0)) === this.pushed.content;
  }

  /** Routes currently pushed, for tests and status. */
  routes(): MeshRoutes {
    return this.table(this.lastVersion);
  }

  private table(version: number): MeshRoutes {
    return {
      version,
      routes: computeMeshRoutes(this.desired ?? { services: [] }, this.observed, this.withdrawn),
      services: computeServiceRoutes(this.desired ?? { services: [] }, this.observed, this.withdrawn),
    };
  }

  private async push(drainTimeoutMs: number, alsoNode?: string): Promise<void> {
    if (this.desired === null) return;
    // Versions are wall-clock based so that a restarted operator's tables are newer than the
    // ones its predecessor pushed.
    this.lastVersion = Math.max(Date.now(), this.lastVersion + 1);
    const table = this.table(this.lastVersion);
    const down = new Set(this.observed.nodes.filter((n) => n.status === 'down').map((n) => n.name));
    let everyNode = true;
    await Promise.all(
      [...this.options.agents().values()]
        .filter((agent) => !down.has(agent.name) || agent.name === alsoNode)
        .map(async (agent) => {
          try {
            await agent.setMeshRoutes(table, { drainTimeoutMs });
          } catch (error) {
            everyNode = false;
            // The next refresh (its return is a change) pushes again; a node that cannot take the table keeps the last one.
            this.log.warn({ node: agent.name, err: error }, 'could not update the routing mesh of a node');
          }
        }),
    );
    // Only a table every node took is one they all have (a node that is down is pushed to on its way back).
    if (everyNode && (this.pushed === null || table.version > this.pushed.version))
      this.pushed = { version: table.version, content: contentOf(table) };
  }
}

/** What a table routes, its version aside: two tables of the same content route alike. */
function contentOf(table: MeshRoutes): string {
  return JSON.stringify([table.routes, table.services]);
}

/** Replicas running in `before` and no longer running in `after`, leaving out those withdrawn (a rollout's own). */
export function lostReplicas(
  before: ObservedState,
  after: ObservedState,
  withdrawn: ReadonlySet<string>,
): string[] {
  const running = (state: ObservedState) =>
    new Set(
      state.nodes.flatMap((node) =>
        node.replicas.filter((r) => r.state === 'running').map((r) => replicaKey(node.name, r.name)),
      ),
    );
  const now = running(after);
  return [...running(before)].filter((key) => !now.has(key) && !withdrawn.has(key));
}
