/**
 * Replicas as containers, by deterministic identity: a replica's container name and labels derive
 * from its service, slot and spec hash, so ensuring one is idempotent (the same spec running is
 * left alone) and drift is a hash comparison (a stale or failing container of that name is
 * replaced). Removing stops within the replica's grace period and takes its files along.
 */
import { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { LABELS, type ObservedReplica, type ReplicaRequest } from '../api/types.js';
import { buildContainerSpec } from './container-spec.js';
import type { FileStore } from './file-store.js';
import type { HealthFollowing } from './health-following.js';
import type { HealthProber } from './health-prober.js';
import type { MeshMembership } from './mesh-membership.js';
import { createNameLock } from './name-lock.js';
import type { NodeContainers } from './node-containers.js';
import type { RunHistory } from './run-history.js';
import type { RuntimeContainer } from './runtime.js';

/** Used when a container has no readable stop-grace label: Docker's own default. */
const DEFAULT_STOP_GRACE_MS = 10_000;

export interface ReplicaLifecycleOptions {
  containers: NodeContainers;
  /** Where replicas publish their ports. */
  address: string;
  /** `never`: an image missing on the node fails at once with ERR_IMAGE_NOT_FOUND. */
  imagePull: 'if-missing' | 'never';
  fileStore: FileStore;
  following: HealthFollowing;
  prober: HealthProber;
  history: RunHistory;
  mesh: Pick<MeshMembership, 'containerDns'>;
  /** How a container is reported back to the operator. */
  toObserved(container: RuntimeContainer): ObservedReplica;
  log: Logger;
}

export interface ReplicaLifecycle {
  ensure(request: ReplicaRequest): Promise<ObservedReplica>;
  /** Creates the replica's container without starting it, unless a container of that name exists. */
  prepare(request: ReplicaRequest): Promise<void>;
  /** A replica that is not there is fine; a container of that name of another node is left alone. */
  remove(name: string): Promise<void>;
  /** Removes the files of a container that is gone (after the operations in flight on it). */
  dropFilesIfUnused(name: string): Promise<void>;
}

export function createReplicaLifecycle(options: ReplicaLifecycleOptions): ReplicaLifecycle {
  const { containers, fileStore, log } = options;
  const { runtime, nodeName } = containers;
  const lock = createNameLock();

  /** The container to hand back as it is, or null once a stale one of that name is gone. */
  const keepOrClear = async (
    request: ReplicaRequest,
    replicaLog: Logger,
  ): Promise<RuntimeContainer | null> => {
    const existing = await runtime.inspect(request.name);
    if (existing === null) return null;
    if (!containers.isOurs(existing)) {
      const owner = existing.labels[LABELS.node];
      throw new BerthError(
        'ERR_STATE',
        `container name ${request.name} is taken on this engine by ${owner === undefined ? 'a container berth does not manage' : `node ${owner}`}`,
      );
    }
    // A run of a Job happens once: whatever state its container is in, it is what that run did
    // (one only created, by a call cut short before its start, has not run yet: it is started).
    if (request.job !== undefined) return existing;
    const sameSpec = existing.labels[LABELS.specHash] === request.specHash;
    // Prepared for this very request (prepareReplica): it only needs starting.
    if (sameSpec && existing.state === 'created') return existing;
    // A replica that fails its health check is what a repair is asked to fix: it is replaced,
    // not handed back as it is.
    const unhealthy = options.prober.status(existing.name)?.health === 'unhealthy';
    const up = existing.state === 'running' || existing.state === 'restarting' || existing.state === 'paused';
    if (sameSpec && !unhealthy && up) return existing;
    replicaLog.info(
      { state: existing.state, sameSpec, unhealthy },
      'replacing a stale container of the same name',
    );
    await removeContainer(options, existing);
    return null;
  };

  /** Containers created ahead here (prepare), by name: the id and spec each was made for. */
  const preparedHere = new Map<string, PreparedContainer>();

  /** Creates the container (image present, files written); removes what it made if that fails. */
  const create = async (request: ReplicaRequest): Promise<string> => {
    await ensureImage(options, request.image);
    const mounts = await fileStore.write(request.name, request.files);
    try {
      const dns = await options.mesh.containerDns(request.namespace);
      const id = await runtime.create(
        buildContainerSpec(request, { nodeName, address: options.address, mounts, dns }),
      );
      options.history.noteCreated(request.name, id);
      return id;
    } catch (error) {
      await discard(options, request.name);
      throw error;
    }
  };

  return {
    ensure: (request) =>
      lock.exclusively(request.name, async () => {
        const replicaLog = log.child({
          container: request.name,
          service: request.service,
          revision: request.revision,
        });
        const times = [Date.now()];
        const ahead = await startPrepared(options, preparedHere, request);
        times.push(Date.now());
        const kept = ahead ?? (await keepOrClear(request, replicaLog));
        times.push(Date.now());
        if (kept === null) await create(request);
        const starting = ahead !== null || kept === null || kept.state === 'created';
        times.push(Date.now());
        const container = ahead ?? (starting ? await start(options, request.name) : kept);
        if (starting) replicaLog.info({ id: container.id, image: request.image }, 'replica started');
        logEnsured(replicaLog, ahead !== null || kept?.state === 'created', [...times, Date.now()]);
        void options.following.track(container);
        return options.toObserved(container);
      }),

    prepare: (request) =>
      lock.exclusively(request.name, async () => {
        if ((await runtime.inspect(request.name)) !== null) return;
        const begin = Date.now();
        preparedHere.set(request.name, { id: await create(request), specHash: request.specHash });
        log.debug({ container: request.name, createMs: Date.now() - begin }, 'replica prepared');
      }),

    remove: (name) =>
      lock.exclusively(name, async () => {
        preparedHere.delete(name);
        const container = await runtime.inspect(name);
        if (container !== null && !containers.isOurs(container)) return;
        if (container === null) {
          await fileStore.remove(name);
          return;
        }
        await removeContainer(options, container);
        log.info({ container: name }, 'replica removed');
      }),

    dropFilesIfUnused: (name) =>
      lock.exclusively(name, async () => {
        if ((await runtime.inspect(name)) === null) await fileStore.remove(name);
      }),
  };
}

/**
 * Where a replica's time went on its node (a rollout's critical path is mostly the start): `at`
 * holds the times before and after starting a prepared container by id, looking at the name,
 * creating, and starting.
 */
function logEnsured(log: Logger, prepared: boolean, at: number[]): void {
  const [begin = 0, ahead = 0, looked = 0, created = 0, started = 0] = at;
  log.debug(
    {
      prepared,
      inspectMs: looked - ahead,
      createMs: created - looked,
      startMs: started - created + (ahead - begin),
    },
    'replica ensured',
  );
}

interface PreparedContainer {
  id: string;
  specHash: string;
}

/**
 * Starts the container created ahead for this very request by its id, which no other container
 * can have: the start of a rollout's next batch then asks the engine nothing else first. null
 * when there is none, or when it is gone or will not start: the caller then looks at what the
 * engine has under that name, as for any other request.
 */
async function startPrepared(
  options: ReplicaLifecycleOptions,
  preparedHere: Map<string, PreparedContainer>,
  request: ReplicaRequest,
): Promise<RuntimeContainer | null> {
  const ahead = preparedHere.get(request.name);
  preparedHere.delete(request.name);
  if (ahead === undefined || ahead.specHash !== request.specHash) return null;
  const { runtime } = options.containers;
  try {
    await runtime.start(ahead.id);
    const started = await runtime.inspect(ahead.id);
    return started !== null && started.id === ahead.id && started.state !== 'created' ? started : null;
  } catch {
    return null;
  }
}

async function discard(options: ReplicaLifecycleOptions, name: string): Promise<void> {
  await options.containers.runtime.remove(name).catch(() => undefined);
  await options.fileStore.remove(name).catch(() => undefined);
  options.history.forget(name);
}

/** Starts a created container (just now, or earlier: prepared); it is gone again if that fails. */
async function start(options: ReplicaLifecycleOptions, name: string): Promise<RuntimeContainer> {
  const { runtime } = options.containers;
  try {
    await runtime.start(name);
  } catch (error) {
    await discard(options, name);
    throw error;
  }
  const started = await runtime.inspect(name);
  if (started === null) {
    throw new BerthError('ERR_CONTAINER_NOT_FOUND', `container ${name} vanished right after it was started`);
  }
  return started;
}

async function removeContainer(options: ReplicaLifecycleOptions, container: RuntimeContainer): Promise<void> {
  const { runtime } = options.containers;
  const graceMs = Number(container.labels[LABELS.stopGraceMs] ?? DEFAULT_STOP_GRACE_MS);
  options.prober.untrack(container.name);
  if (container.state === 'running' || container.state === 'restarting' || container.state === 'paused') {
    await runtime.stop(container.name, (Number.isFinite(graceMs) ? graceMs : DEFAULT_STOP_GRACE_MS) / 1000);
  }
  await runtime.remove(container.name);
  options.history.forget(container.name);
  await options.fileStore.remove(container.name);
}

async function ensureImage(options: ReplicaLifecycleOptions, image: string): Promise<void> {
  const { runtime, nodeName } = options.containers;
  if (await runtime.hasImage(image)) return;
  if (options.imagePull === 'never') {
    throw new BerthError(
      'ERR_IMAGE_NOT_FOUND',
      `image ${image} is not present on node ${nodeName} (pulling is disabled)`,
      { data: { image, node: nodeName } },
    );
  }
  options.log.info({ image }, 'pulling image');
  await runtime.pullImage(image);
}
