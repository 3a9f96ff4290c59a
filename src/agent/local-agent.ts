/**
 * The NodeAgent that runs next to a Docker engine: the embedded default of `berth run`, and what
 * `berth agent` serves over HTTP. Stateless apart from caches: everything it needs to know about
 * a replica is on the container itself (labels), so a restarted agent carries on where it was.
 *
 * A composition of parts with one concern each: the node's containers (node-containers.ts),
 * replica lifecycle by deterministic identity (replica-lifecycle.ts), health following
 * (health-following.ts, health-prober.ts, run-history.ts), waits for a verdict
 * (follow-replica.ts), files delivered into containers (file-store.ts), the node's part of the
 * mesh (mesh-membership.ts) and reporting (node-snapshot.ts, observed-replica.ts).
 */
import { setMaxListeners } from 'node:events';
import { BERTH_VERSION } from '../core/version.js';
import { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { NodeAgent, ReplicaLogLine, ReplicaLogOptions } from '../api/types.js';
import type { MeshHostLaunch } from '../mesh/mesh-host-client.js';
import type { DataPlaneChoice } from '../mesh/nftables.js';
import { createChangeMarks } from './change-mark.js';
import { assertContainerName } from './container-spec.js';
import { createFileStore, type FileStore } from './file-store.js';
import { followReplica } from './follow-replica.js';
import { createHealthFollowing } from './health-following.js';
import { createHealthProber } from './health-prober.js';
import { createMeshMembership, type MeshMembership } from './mesh-membership.js';
import { nodeContainers, type NodeContainers } from './node-containers.js';
import { readNodeSnapshot } from './node-snapshot.js';
import { nodeVolumes } from './node-volumes.js';
import { toObservedReplica } from './observed-replica.js';
import { createReplicaLifecycle } from './replica-lifecycle.js';
import { RunHistory } from './run-history.js';
import type { ContainerRuntime, RuntimeContainer } from './runtime.js';

export interface LocalAgentOptions {
  runtime: ContainerRuntime;
  nodeName: string;
  /** Where replicas publish their ports and probes reach them; default 127.0.0.1. */
  address?: string;
  labels?: Record<string, string>;
  /** Holds the files delivered into containers (see file-store.ts). */
  stateDir: string;
  log: Logger;
  /**
   * `if-missing` (default) pulls an image that is not on the node; `never` fails at once with
   * ERR_IMAGE_NOT_FOUND, for nodes that must only run images loaded onto them.
   */
  imagePull?: 'if-missing' | 'never';
  /**
   * Range of service addresses for service discovery (see mesh/service-discovery.ts); null or
   * absent: containers get Docker's default resolvers and reach no service by name.
   */
  serviceAddresses?: string | null;
  /**
   * How to start `berth mesh-host`: the node's mesh then runs in a process of its own that outlives
   * this agent (see mesh/mesh-host-client.ts); absent, in this process (one-shot commands, tests).
   */
  meshHost?: MeshHostLaunch;
  /** What carries published TCP ports (mesh/nftables.ts); default `userspace`. */
  dataPlane?: DataPlaneChoice;
  /** Replaces the default file store (the secrets issue refines where secret files live). */
  fileStore?: FileStore;
}

export function createLocalAgent(options: LocalAgentOptions): NodeAgent {
  const { nodeName } = options;
  const address = options.address ?? '127.0.0.1';
  const labels = { ...(options.labels ?? {}) };
  const log = options.log.child({ node: nodeName });
  const containers = nodeContainers(options.runtime, nodeName);
  const fileStore = options.fileStore ?? createFileStore({ stateDir: options.stateDir, log });
  const prober = createHealthProber({ runtime: options.runtime, log });
  const history = new RunHistory();
  const mesh = meshOf(options, address, log, containers);
  const toObserved = (container: RuntimeContainer) =>
    toObservedReplica(container, nodeName, prober.status(container.name));
  const closing = new AbortController();
  // Every wait for a replica listens for the agent closing: a rollout of a hundred services holds
  // a hundred at once, which is no leak.
  setMaxListeners(0, closing.signal);
  const changes = createChangeMarks();

  const following = createHealthFollowing({
    containers,
    prober,
    history,
    log,
    veto: (name, on) => mesh.veto(name, on),
    // Removed behind berth's back (docker rm): its files go too, unless a new container of the
    // same name already uses them (the name lock orders this after any ensure in flight).
    onDestroyed: (name) => void dropFiles(name),
  });
  following.onChange(() => changes.bump());
  const lifecycle = createReplicaLifecycle({
    containers,
    address,
    imagePull: options.imagePull ?? 'if-missing',
    fileStore,
    following,
    prober,
    history,
    mesh,
    toObserved,
    log,
  });
  const dropFiles = (name: string) =>
    lifecycle
      .dropFilesIfUnused(name)
      .catch((error: unknown) =>
        log.warn({ err: error, container: name }, 'could not remove the files of a removed container'),
      );

  const ensureReady = readyOnce(nodeName, closing.signal, async () => {
    await following.start();
    // Files of containers that disappeared while no agent was watching.
    for (const name of await fileStore.list()) await dropFiles(name);
  });

  const follow = async (name: string, mode: 'await' | 'watch', limitMs: number) => {
    assertContainerName(name);
    await ensureReady();
    const context = {
      containers,
      history,
      prober,
      onChange: (listener: (name: string | null) => void) => following.onChange(listener),
      closed: closing.signal,
      log,
    };
    return followReplica(context, { name, mode, limitMs });
  };

  return {
    name: nodeName,
    async snapshot() {
      await ensureReady();
      return readNodeSnapshot({ containers, following, address, labels, toObserved, mesh });
    },
    async ensureReplica(request) {
      assertContainerName(request.name);
      await ensureReady();
      return lifecycle.ensure(request);
    },
    async prepareReplica(request) {
      assertContainerName(request.name);
      await ensureReady();
      await lifecycle.prepare(request);
    },
    awaitReplica: (name, { timeoutMs }) => follow(name, 'await', timeoutMs),
    watchReplica: (name, { durationMs }) => follow(name, 'watch', durationMs),
    async removeReplica(name) {
      assertContainerName(name);
      await ensureReady();
      await lifecycle.remove(name);
    },
    ...nodeVolumes(options.runtime),
    setMeshRoutes: (table, drain) => mesh.setRoutes(table, drain),
    meshDataPlane: () => mesh.dataPlane(),
    reportedAgent: () => ({ version: BERTH_VERSION, incompatible: null }),
    logs: (name, logOptions) => replicaLogs(containers, name, logOptions, closing.signal),
    awaitChange: (since, { timeoutMs }) =>
      ensureReady().then(() => changes.awaitChange(since, timeoutMs, closing.signal)),
    async close() {
      closing.abort();
      await mesh.close();
      following.close();
      prober.close();
    },
  };
}

/** Runs `start` once, on first use (again after a failed start); refuses once the agent is closed. */
function readyOnce(nodeName: string, closed: AbortSignal, start: () => Promise<void>): () => Promise<void> {
  let ready: Promise<void> | null = null;
  return () => {
    if (closed.aborted) {
      return Promise.reject(new BerthError('ERR_STATE', `agent for node ${nodeName} is closed`));
    }
    ready ??= start().catch((error: unknown) => {
      ready = null;
      throw error;
    });
    return ready;
  };
}

/** The node's part of the mesh, in a mesh host of its own when the options say how to start one. */
function meshOf(
  options: LocalAgentOptions,
  address: string,
  log: Logger,
  containers: NodeContainers,
): MeshMembership {
  return createMeshMembership({
    observe: (name) => containers.observe(name),
    nodeName: options.nodeName,
    address,
    serviceAddresses: options.serviceAddresses,
    dataPlane: options.dataPlane,
    log,
    host: options.meshHost ? { stateDir: options.stateDir, launch: options.meshHost } : undefined,
  });
}

/** A replica's lines, only for a replica of this node (not another node's container on a shared engine). */
async function* replicaLogs(
  containers: NodeContainers,
  name: string,
  options: ReplicaLogOptions,
  closed: AbortSignal,
): AsyncGenerator<ReplicaLogLine> {
  assertContainerName(name);
  if ((await containers.observe(name)) === null) {
    throw new BerthError('ERR_CONTAINER_NOT_FOUND', `node ${containers.nodeName} has no replica ${name}`);
  }
  const ended = new AbortController();
  try {
    yield* containers.runtime.logs(name, options, AbortSignal.any([closed, ended.signal]));
  } finally {
    ended.abort();
  }
}
