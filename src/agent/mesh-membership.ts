/**
 * This node's part of the routing mesh: the node mesh serving the operator's table, service
 * discovery for the containers it starts, and the replicas of this node that get no traffic through
 * it whatever the last table says (the ones that just failed their health check or died). The
 * operator takes those out of every node's table at its next observation (within a second); this
 * node does not wait for it.
 */
import { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { MeshRoutes } from '../api/types.js';
import { replicaKey, withoutReplicas } from '../mesh/mesh-routes.js';
import { connectMeshHost, type MeshHostLaunch } from '../mesh/mesh-host-client.js';
import type { NodeMesh } from '../mesh/node-mesh.js';
import type { ContainerDns, ServiceDiscovery } from '../mesh/service-discovery.js';
import type { DataPlane, DataPlaneChoice } from '../mesh/nftables.js';
import { withLocalTargets, type ObserveContainer } from './mesh-local-backends.js';

export interface MeshMembershipOptions {
  nodeName: string;
  /** Where the mesh serves published ports. */
  address: string;
  /** Range of service addresses; null or absent: no service discovery. */
  serviceAddresses?: string | null | undefined;
  log: Logger;
  /** What carries published TCP ports (mesh/nftables.ts); default `userspace`. */
  dataPlane?: DataPlaneChoice | undefined;
  /**
   * This node's containers at the engine: with a kernel data plane, its own replicas are DNATed to
   * their bridge address (mesh-local-backends.ts); absent, to their published port.
   */
  observe?: ObserveContainer | undefined;
  /** Replaces the node mesh on the node's address (tests). */
  mesh?: NodeMesh;
  /**
   * Runs the mesh and service discovery in a mesh host process of their own (mesh-host-client.ts),
   * which outlives a killed or frozen agent; absent: in this process, gone with it.
   */
  host?: { stateDir: string; launch: MeshHostLaunch } | undefined;
}

export interface MeshMembership {
  /** Leaves a replica of this node out of this node's mesh (on), or lets the table decide (off). */
  veto(name: string, on: boolean): void;
  /** Serves the operator's table, less the vetoed replicas; see NodeAgent.setMeshRoutes. */
  setRoutes(table: MeshRoutes, options: { drainTimeoutMs: number }): Promise<void>;
  /** Resolvers for a new container of `namespace`; null without service discovery. */
  containerDns(namespace: string): Promise<ContainerDns | null>;
  /** What carries this node's published TCP ports; null before the first table. */
  dataPlane(): DataPlane | null;
  close(): Promise<void>;
}

export function createMeshMembership(options: MeshMembershipOptions): MeshMembership {
  const { nodeName, log } = options;
  const { mesh, containerDns } = nodeMesh(options);
  const vetoed = new Set<string>();
  let lastTable: MeshRoutes | null = null;
  let closed = false;

  return {
    veto(name, on) {
      const key = replicaKey(nodeName, name);
      if (vetoed.has(key) === on) return;
      if (on) vetoed.add(key);
      else vetoed.delete(key);
      if (lastTable === null || closed) return;
      log.debug({ container: name, vetoed: on }, 'routing mesh of this node follows a local health change');
      void mesh
        .apply(withoutReplicas(lastTable, vetoed), { drainTimeoutMs: 0 })
        .catch((error: unknown) => log.warn({ err: error }, 'could not update the routing mesh'));
    },
    async setRoutes(table, { drainTimeoutMs }) {
      if (closed) throw new BerthError('ERR_STATE', `agent for node ${nodeName} is closed`);
      const located =
        options.observe && (options.dataPlane ?? 'userspace') !== 'userspace'
          ? await withLocalTargets(table, nodeName, options.observe)
          : table;
      if (lastTable === null || located.version >= lastTable.version) lastTable = located;
      await mesh.apply(withoutReplicas(located, vetoed), { drainTimeoutMs });
    },
    containerDns,
    dataPlane: () => mesh.dataPlane(),
    async close() {
      closed = true;
      await mesh.close();
    },
  };
}

/** The node mesh and the resolvers for new containers: in a mesh host, in this process, or injected. */
function nodeMesh(options: MeshMembershipOptions): {
  mesh: NodeMesh;
  containerDns: (namespace: string) => Promise<ContainerDns | null>;
} {
  const { log, host, address } = options;
  const serviceAddresses = options.serviceAddresses ?? null;
  const dataPlane = options.dataPlane ?? 'userspace';
  if (host && !options.mesh) {
    const remote = connectMeshHost({ ...host, address, serviceAddresses, dataPlane, log });
    return {
      mesh: remote,
      // A container that cannot be given the node's resolvers starts with Docker's own.
      containerDns: (namespace) =>
        serviceAddresses === null
          ? Promise.resolve(null)
          : remote.containerDns(namespace).catch((error: unknown) => {
              log.warn(
                { err: error, namespace },
                'no service discovery for a new container: the mesh host does not answer',
              );
              return null;
            }),
    };
  }
  return inProcessMesh(options, serviceAddresses, dataPlane);
}

/**
 * The mesh and service discovery in this process. Their modules (balancers, the DNS server) are
 * loaded here only: an agent or operator whose mesh runs in a mesh host never keeps them.
 * Balancers open only when the operator pushes routes, so an agent of a one-shot command (apply,
 * plan) never binds a published port.
 */
function inProcessMesh(
  options: MeshMembershipOptions,
  serviceAddresses: string | null,
  dataPlane: DataPlaneChoice,
): { mesh: NodeMesh; containerDns: (namespace: string) => Promise<ContainerDns | null> } {
  const { address, log } = options;
  const loading = (async () => {
    const [{ createNodeMesh }, { createServiceDiscovery }] = await Promise.all([
      import('../mesh/node-mesh.js'),
      import('../mesh/service-discovery.js'),
    ]);
    const discovery: ServiceDiscovery | null =
      serviceAddresses === null ? null : createServiceDiscovery({ addresses: serviceAddresses, log });
    return { mesh: options.mesh ?? createNodeMesh({ address, log, discovery, dataPlane }), discovery };
  })();
  let loaded: Awaited<typeof loading> | null = null;
  // A failure to load surfaces at the first call that needs the mesh.
  loading.then((value) => (loaded = value)).catch(() => undefined);
  return {
    mesh: {
      apply: async (table, applyOptions) => (await loading).mesh.apply(table, applyOptions),
      ports: () => loaded?.mesh.ports() ?? [],
      dataPlane: () => loaded?.mesh.dataPlane() ?? null,
      close: async () => (await loading).mesh.close(),
    },
    containerDns: async (namespace) => {
      const { discovery } = await loading;
      return discovery ? discovery.containerDns(namespace) : null;
    },
  };
}
