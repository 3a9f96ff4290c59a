import type { MeshBackend, MeshRoute, ObservedReplica, ObservedState } from '../api/types.js';
import type { DesiredState } from '../manifests/types.js';

/**
 * The routing table of the whole cluster, pure: for every published TCP port of a desired
 * service, the replicas of that service that may take traffic, on any node that answers. A
 * replica serves once it is running and healthy (or running, without a health check); one that
 * is `withdrawn` (being drained before its stop) gets no new connection even while it still runs.
 * Replicas of every spec hash count: during a rolling update the old and the new serve side by side.
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
      const backends: MeshBackend[] = [];
      for (const node of observed.nodes) {
        if (node.status === 'down') continue;
        for (const replica of node.replicas) {
          if (replica.namespace !== service.namespace || replica.service !== service.name) continue;
          if (!takesTraffic(replica) || withdrawn.has(replica.name)) continue;
          const endpoint = replica.ports.find((p) => p.target === port.target && p.protocol === 'tcp');
          if (!endpoint) continue;
          // Docker reports 0.0.0.0 for a port published on every address; the node's address
          // is the one other nodes can reach.
          const host =
            endpoint.hostIp === '' || endpoint.hostIp === '0.0.0.0' ? node.address : endpoint.hostIp;
          backends.push({ id: replica.name, host, port: endpoint.hostPort });
        }
      }
      backends.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      routes.push({
        service: `${service.namespace}/${service.name}`,
        published: port.published,
        protocol: 'tcp',
        backends,
      });
    }
  }
  return routes.sort((a, b) => a.published - b.published);
}

export function takesTraffic(replica: ObservedReplica): boolean {
  return replica.state === 'running' && (replica.health === 'healthy' || replica.health === 'none');
}
