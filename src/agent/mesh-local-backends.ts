/**
 * The replicas of this node in a routing table, located on the engine's bridge: the kernel data
 * plane DNATs them to the container's own address and target port, as kube-proxy does to pod
 * addresses, rather than to the published port, which the engine serves through docker-proxy (a
 * user-space hop that costs a third of the throughput).
 */
import type { MeshBackend, MeshRoutes } from '../api/types.js';
import type { RuntimeContainer } from './runtime.js';

/** Looks a container of this node up by name; null when it is not there. */
export type ObserveContainer = (name: string) => Promise<RuntimeContainer | null>;

/** Where a backend's container answers on the bridge; null when it is not this node's or has no address. */
export function bridgeTarget(
  backend: Pick<MeshBackend, 'port'>,
  container: RuntimeContainer | null,
): { host: string; port: number } | null {
  if (container?.address === undefined || container.state !== 'running') return null;
  const published = container.ports.find((p) => p.protocol === 'tcp' && p.hostPort === backend.port);
  return published ? { host: container.address, port: published.target } : null;
}

/**
 * `table` with `local` set on every backend of `nodeName` whose container has a bridge address
 * (the others keep the published port, which always works). Each is looked up once per table, at
 * the engine, because a restarted container may come back with another address.
 */
export async function withLocalTargets(
  table: MeshRoutes,
  nodeName: string,
  observe: ObserveContainer,
): Promise<MeshRoutes> {
  const prefix = `${nodeName}/`;
  const names = new Set<string>();
  for (const route of table.routes)
    for (const b of route.backends) if (b.id.startsWith(prefix)) names.add(b.id.slice(prefix.length));
  const containers = new Map(
    await Promise.all([...names].map(async (name) => [name, await observe(name).catch(() => null)] as const)),
  );
  const locate = (b: MeshBackend): MeshBackend => {
    if (!b.id.startsWith(prefix)) return b;
    const target = bridgeTarget(b, containers.get(b.id.slice(prefix.length)) ?? null);
    return target ? { ...b, local: target } : b;
  };
  return { ...table, routes: table.routes.map((r) => ({ ...r, backends: r.backends.map(locate) })) };
}
