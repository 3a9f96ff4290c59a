import type {
  MeshBackend,
  MeshRoute,
  MeshRoutes,
  ObservedReplica,
  ObservedState,
  ServiceRoute,
} from '../api/types.js';
import type { DesiredState, ServiceSpec } from '../manifests/types.js';

/**
 * The routing table of the whole cluster, pure: for every published TCP port of a desired
 * service, the replicas of that service that may take traffic, on any node that answers. A
 * replica serves once it is running and healthy (or running, without a health check); one that
 * is `withdrawn` (being drained before its stop) gets no new connection even while it still runs.
 * Replicas are named by slot and spec, not node, so a replacement on another node (drain, node
 * loss) has the same name as the one it replaces: backends and `withdrawn` go by `node/name`.
 * Replicas of every spec hash count: during a rolling update the old and the new serve side by side.
 * A replica published on an address that is not its node's is never a backend (see
 * misaddressedReplicas).
 */
export function computeMeshRoutes(
  desired: Pick<DesiredState, 'services'>,
  observed: ObservedState,
  withdrawn: ReadonlySet<string> = new Set(),
): MeshRoute[] {
  const routes: MeshRoute[] = [];
  for (const service of desired.services) {
    for (const port of service.ports) {
      if (port.published === null || port.protocol !== 'tcp') continue;
      routes.push({
        service: `${service.namespace}/${service.name}`,
        published: port.published,
        protocol: 'tcp',
        appProtocol: port.appProtocol,
        backends: serviceBackends(service, port.target, observed, withdrawn),
      });
    }
  }
  return routes.sort((a, b) => a.published - b.published);
}

/**
 * What containers reach by service name, pure: every desired service with at least one TCP
 * port, published or not, and the same healthy backends as its published ports get.
 */
export function computeServiceRoutes(
  desired: Pick<DesiredState, 'services'>,
  observed: ObservedState,
  withdrawn: ReadonlySet<string> = new Set(),
): ServiceRoute[] {
  const services: ServiceRoute[] = [];
  for (const service of desired.services) {
    const ports = service.ports.filter((p) => p.protocol === 'tcp').sort((a, b) => a.target - b.target);
    if (ports.length === 0) continue;
    services.push({
      namespace: service.namespace,
      name: service.name,
      ports: ports.map((port) => ({
        target: port.target,
        appProtocol: port.appProtocol,
        backends: serviceBackends(service, port.target, observed, withdrawn),
      })),
    });
  }
  return services.sort((a, b) =>
    a.namespace === b.namespace ? compare(a.name, b.name) : compare(a.namespace, b.namespace),
  );
}

/**
 * The replicas of a node that is `down` (silent past its grace) are backends only while the
 * service has no replica anywhere else: a frozen or cut-off agent says nothing about its
 * containers, which may well still serve, and until a replacement is healthy they are the only
 * chance a request has. A down node's replicas are whatever the observer last saw there.
 */
function serviceBackends(
  service: Pick<ServiceSpec, 'namespace' | 'name'>,
  target: number,
  observed: ObservedState,
  withdrawn: ReadonlySet<string>,
): MeshBackend[] {
  const up = backendsOn(service, target, observed, withdrawn, false);
  return up.length > 0 ? up : backendsOn(service, target, observed, withdrawn, true);
}

function backendsOn(
  service: Pick<ServiceSpec, 'namespace' | 'name'>,
  target: number,
  observed: ObservedState,
  withdrawn: ReadonlySet<string>,
  downNodes: boolean,
): MeshBackend[] {
  const backends: MeshBackend[] = [];
  for (const node of observed.nodes) {
    if ((node.status === 'down') !== downNodes) continue;
    for (const replica of node.replicas) {
      if (replica.namespace !== service.namespace || replica.service !== service.name) continue;
      const id = replicaKey(node.name, replica.name);
      if (!takesTraffic(replica) || withdrawn.has(id)) continue;
      const endpoint = replica.ports.find((p) => p.target === target && p.protocol === 'tcp');
      if (!endpoint || publishedElsewhere(endpoint.hostIp, node.address)) continue;
      backends.push({ id, host: node.address, port: endpoint.hostPort });
    }
  }
  return backends.sort((a, b) => compare(a.id, b.id));
}

/**
 * Whether a port published on `hostIp` is not on the node's address. Docker reports 0.0.0.0 (or
 * `::`, or nothing) for a port published on every address: the node's address reaches it. Any
 * other address is the node's claim, and a node may claim only its own: the operator holds each
 * joined node's address from its join on, and a replica reported on another one (a misbehaving or
 * compromised node pointing the mesh at a host it does not own) gets no traffic.
 */
function publishedElsewhere(hostIp: string, nodeAddress: string): boolean {
  return hostIp !== '' && hostIp !== '0.0.0.0' && hostIp !== '::' && hostIp !== nodeAddress;
}

/** A replica whose published port is on an address that is not its node's: never routed to. */
export interface MisaddressedReplica {
  node: string;
  replica: string;
  nodeAddress: string;
  publishedOn: string;
}

/** Every replica that routing ignores because it is published on another address than its node's, pure. */
export function misaddressedReplicas(observed: ObservedState): MisaddressedReplica[] {
  const found: MisaddressedReplica[] = [];
  for (const node of observed.nodes) {
    for (const replica of node.replicas) {
      const elsewhere = replica.ports.find((p) => publishedElsewhere(p.hostIp, node.address));
      if (elsewhere) {
        found.push({
          node: node.name,
          replica: replica.name,
          nodeAddress: node.address,
          publishedOn: elsewhere.hostIp,
        });
      }
    }
  }
  return found;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** How the mesh names a replica: `node/name`. */
export function replicaKey(node: string, name: string): string {
  return `${node}/${name}`;
}

export function takesTraffic(replica: ObservedReplica): boolean {
  return replica.state === 'running' && (replica.health === 'healthy' || replica.health === 'none');
}

/**
 * The table without some replicas (by `node/name`), pure: what a node serves when it knows better
 * than the operator's last table that its own replicas cannot take traffic right now.
 */
export function withoutReplicas(table: MeshRoutes, ids: ReadonlySet<string>): MeshRoutes {
  if (ids.size === 0) return table;
  const keep = (backends: MeshBackend[]): MeshBackend[] => backends.filter((b) => !ids.has(b.id));
  return {
    ...table,
    routes: table.routes.map((route) => ({ ...route, backends: keep(route.backends) })),
    ...(table.services
      ? {
          services: table.services.map((service) => ({
            ...service,
            ports: service.ports.map((port) => ({ ...port, backends: keep(port.backends) })),
          })),
        }
      : {}),
  };
}
