import type { MeshBackend, MeshRoutes } from '../api/types.js';
import type { Logger } from '../core/log.js';
import type { ServiceDiscovery } from './service-discovery.js';
import { createHttpBalancer } from './http-balancer.js';
import { createTcpBalancer, type TcpBalancer } from './tcp-balancer.js';
import {
  openKernelDataPlane,
  type DataPlane,
  type DataPlaneChoice,
  type KernelDataPlane,
} from './nftables.js';
import type { KernelPort } from './nftables-ruleset.js';

/**
 * The routing mesh on one node: one TCP balancer per published port, listening on the node's
 * address, and one per target port of each service on the service's address (service
 * discovery), fed with the routing table the operator pushes. The table lists healthy replicas on
 * every node, so a published port answers on every node, including one that runs no replica.
 */
export interface NodeMesh {
  /**
   * Serves `table` unless a newer one was applied already (pushes may arrive out of order).
   * Resolves once every backend that is in no route any more has no open connection through
   * this node, or after `drainTimeoutMs`.
   */
  apply(table: MeshRoutes, options: { drainTimeoutMs: number }): Promise<void>;
  /** Published ports served now, for status and tests. */
  ports(): number[];
  /** What carries published TCP ports: null until the first table (the choice is made then). */
  dataPlane(): DataPlane | null;
  close(): Promise<void>;
}

interface Listener {
  balancer: TcpBalancer;
  http: boolean;
  /** `namespace/name` of the service it serves. */
  service: string;
  /** Backends this balancer was ever given and that may still have connections open. */
  known: Set<string>;
  /** Backends in the table applied last. */
  current: Set<string>;
  /** Where each known backend is, by id (its bridge address for a replica of this node, when known). */
  addresses: Map<string, Pick<MeshBackend, 'host' | 'port'>>;
  /** A published TCP port the kernel DNATs: this balancer only holds the port (and serves when no backend is left). */
  kernel: boolean;
}

/** One address and port the node serves: a published port, or a service address's target port. */
interface Endpoint {
  host: string;
  port: number;
  service: string;
  backends: MeshBackend[];
  /** Balanced per HTTP request (http-balancer.ts) rather than per connection. */
  http: boolean;
  /** How the log names it. */
  what: 'published port' | 'service address';
}

export interface NodeMeshOptions {
  /** The node's address: published ports are served there. */
  address: string;
  log: Logger;
  /** Service discovery on this node; without it the table's `services` are ignored. */
  discovery?: ServiceDiscovery | null;
  /**
   * What carries published TCP ports (nftables.ts); default `userspace`. Chosen at the first table,
   * so a one-shot command's agent, which gets none, never touches the node's rules.
   */
  dataPlane?: DataPlaneChoice;
}

/** A backend that left a listener's routes: drained before it is forgotten. */
interface Leaving {
  listener: Listener;
  id: string;
}

/** How often a drain looks at conntrack for the kernel's connections to a leaving backend. */
const KERNEL_DRAIN_POLL_MS = 100;

export function createNodeMesh(options: NodeMeshOptions): NodeMesh {
  return new RoutingMesh(options);
}

class RoutingMesh implements NodeMesh {
  private readonly log: Logger;
  private readonly discovery: ServiceDiscovery | null;
  /** By `host:port`. */
  private readonly listeners = new Map<string, Listener>();
  /** Endpoints whose balancer could not listen (taken by something else), so we say it once. */
  private readonly refused = new Set<string>();
  private version = -1;
  private closed = false;
  // Table changes are applied one at a time (balancers open asynchronously); drains are waited
  // for outside this chain, so a long drain never holds back the next table.
  private applying: Promise<unknown> = Promise.resolve();
  private kernel: Promise<KernelDataPlane | null> | null = null;
  private chosen: DataPlane | null = null;

  constructor(private readonly options: NodeMeshOptions) {
    this.log = options.log.child({ mesh: options.address });
    this.discovery = options.discovery ?? null;
  }

  async apply(table: MeshRoutes, { drainTimeoutMs }: { drainTimeoutMs: number }): Promise<void> {
    const step = this.applying.then(() => this.update(table));
    this.applying = step.catch(() => undefined);
    const leaving = await step;
    await this.drain(leaving, drainTimeoutMs);
  }

  ports(): number[] {
    const prefix = `${this.options.address}:`;
    return [...this.listeners.keys()]
      .filter((key) => key.startsWith(prefix))
      .map((key) => Number(key.slice(prefix.length)))
      .sort((a, b) => a - b);
  }

  dataPlane(): DataPlane | null {
    return this.chosen;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.applying;
    const kernel = await this.kernel?.catch(() => null);
    await kernel
      ?.close()
      .catch((error: unknown) =>
        this.log.error({ err: error }, 'could not remove the routing mesh nftables table'),
      );
    await Promise.all([...this.listeners.values()].map((l) => l.balancer.close()));
    this.listeners.clear();
    await this.discovery?.close();
  }

  /** Every address and port the table asks this node to serve, by `host:port`. */
  private async endpoints(table: MeshRoutes): Promise<Map<string, Endpoint>> {
    const { address } = this.options;
    const wanted = new Map<string, Endpoint>();
    for (const route of table.routes) {
      wanted.set(`${address}:${route.published}`, {
        host: address,
        port: route.published,
        service: route.service,
        backends: route.backends,
        http: route.appProtocol === 'http',
        what: 'published port',
      });
    }
    const services = table.services ?? [];
    const discovery = this.discovery;
    if (discovery === null || services.length === 0 || !(await discovery.ready())) return wanted;
    const keys: string[] = [];
    for (const service of services) {
      const key = `${service.namespace}/${service.name}`;
      let host: string;
      try {
        host = discovery.assign(key);
      } catch (error) {
        if (!this.refused.has(key)) this.log.error({ service: key, err: error }, 'service gets no address');
        this.refused.add(key);
        continue;
      }
      keys.push(key);
      for (const port of service.ports) {
        wanted.set(`${host}:${port.target}`, {
          host,
          port: port.target,
          service: key,
          backends: port.backends,
          http: port.appProtocol === 'http',
          what: 'service address',
        });
      }
    }
    discovery.setServices(keys);
    return wanted;
  }

  private async update(table: MeshRoutes): Promise<Leaving[]> {
    if (this.closed || table.version < this.version) return [];
    this.version = table.version;
    const wanted = await this.endpoints(table);
    const kernel = await this.kernelPlane();
    const leaving: Leaving[] = [];
    for (const [key, endpoint] of wanted) {
      const listener = await this.listenerFor(key, endpoint);
      if (!listener) continue;
      listener.balancer.setBackends(endpoint.backends);
      listener.kernel = kernel !== null && endpoint.what === 'published port' && !endpoint.http;
      // Where the kernel sends a backend's connections, which is where conntrack sees them.
      for (const b of endpoint.backends)
        listener.addresses.set(b.id, b.local ?? { host: b.host, port: b.port });
      const ids = new Set(endpoint.backends.map((b) => b.id));
      for (const id of listener.known) if (!ids.has(id)) leaving.push({ listener, id });
      for (const id of ids) listener.known.add(id);
      listener.current = ids;
    }
    for (const [key, listener] of this.listeners) {
      if (wanted.has(key)) continue;
      // An endpoint nothing serves any more: new connections are refused at once, the open
      // ones finish (within the drain bound) before the listener goes.
      listener.balancer.setBackends([]);
      listener.current = new Set();
      for (const id of listener.known) leaving.push({ listener, id });
      this.listeners.delete(key);
      this.log.info({ address: key, service: listener.service }, 'routing mesh no longer serves an address');
    }
    if (kernel !== null) await this.serveKernel(kernel, wanted);
    return leaving;
  }

  /** The data plane chosen at the first table, kept for the mesh's life. */
  private kernelPlane(): Promise<KernelDataPlane | null> {
    this.kernel ??= openKernelDataPlane(
      this.options.dataPlane ?? 'userspace',
      this.options.address,
      this.log,
    ).then((kernel) => {
      this.chosen = kernel === null ? 'userspace' : 'nftables';
      return kernel;
    });
    return this.kernel;
  }

  /**
   * Hands the published TCP ports this node listens on to the kernel. When that fails the table is
   * removed, so the balancers (which hold every port and know every backend) serve instead.
   */
  private async serveKernel(kernel: KernelDataPlane, wanted: Map<string, Endpoint>): Promise<void> {
    const ports: KernelPort[] = [];
    for (const [key, endpoint] of wanted) {
      if (this.listeners.get(key)?.kernel === true)
        ports.push({ port: endpoint.port, backends: endpoint.backends });
    }
    try {
      await kernel.serve(ports);
    } catch (error) {
      this.log.error(
        { err: error },
        'nftables refused the routing table: user space serves this node until the next table',
      );
      for (const listener of this.listeners.values()) listener.kernel = false;
      await kernel.serve([]).catch(() => undefined);
    }
  }

  /** Resolves once the kernel keeps no open connection to `id` through `listener`, or after `timeoutMs`. */
  private async kernelDrained(listener: Listener, id: string, timeoutMs: number): Promise<void> {
    const kernel = await this.kernel;
    const backend = listener.addresses.get(id);
    // A drain without time left (a table pushed without one) would not wait whatever conntrack says.
    if (!kernel || !backend || timeoutMs <= 0) return;
    const until = Date.now() + timeoutMs;
    // The backend is out of the kernel's map by now: a reading of conntrack from now on sees every
    // connection it still has, and no new one. conntrack says nothing when a flow ends, so it is
    // looked at again (a reading newer than the last one) until none is left.
    let since = performance.now();
    while ((await kernel.openConnections(listener.balancer.port, backend, since)) > 0 && Date.now() < until) {
      since = performance.now();
      await new Promise((resolve) => setTimeout(resolve, KERNEL_DRAIN_POLL_MS));
    }
  }

  /** The balancer serving `key`, opened when missing; null when it cannot listen there. */
  private async listenerFor(key: string, endpoint: Endpoint): Promise<Listener | null> {
    const { host, port, service, what, http } = endpoint;
    const existing = this.listeners.get(key);
    if (existing && existing.http === http) return existing;
    if (existing) {
      // appProtocol changed: a balancer of the other kind takes over; connections open through
      // the old one are cut (a rare, deliberate change).
      await existing.balancer.close();
      this.listeners.delete(key);
    }
    try {
      const balancer = await (http ? createHttpBalancer : createTcpBalancer)({ host, port, log: this.log });
      const listener: Listener = {
        balancer,
        http,
        service,
        known: new Set(),
        current: new Set(),
        addresses: new Map(),
        kernel: false,
      };
      this.listeners.set(key, listener);
      this.refused.delete(key);
      this.log.info({ address: key, service, http }, `routing mesh serves a ${what}`);
      return listener;
    } catch (error) {
      if (!this.refused.has(key)) {
        this.log.error(
          { address: key, service, err: error },
          `cannot serve a ${what} on this node (is it taken by another process?)`,
        );
      }
      this.refused.add(key);
      return null;
    }
  }

  private async drain(leaving: Leaving[], timeoutMs: number): Promise<void> {
    await Promise.all(
      leaving.map(async ({ listener, id }) => {
        const started = Date.now();
        if (listener.balancer.activeConnections(id) > 0) await listener.balancer.drained(id, timeoutMs);
        if (listener.kernel) await this.kernelDrained(listener, id, timeoutMs - (Date.now() - started));
        // A backend that came back in a newer table stays known, to be drained when it leaves again.
        if (!listener.current.has(id)) {
          listener.known.delete(id);
          listener.addresses.delete(id);
        }
      }),
    );
    const live = [...this.listeners.values()];
    const orphans = new Set(leaving.map((l) => l.listener).filter((l) => !live.includes(l)));
    await Promise.all([...orphans].map((l) => l.balancer.close()));
    // A service that is gone gives its address back once nothing listens there any more.
    if (this.discovery !== null) {
      const serving = new Set([...this.listeners.values()].map((l) => l.service));
      for (const { service } of orphans) if (!serving.has(service)) this.discovery.release(service);
    }
  }
}
