/**
 * The NodeAgent that runs next to a Docker engine: the embedded default of `berth run`, and what
 * `berth agent` serves over HTTP. Stateless apart from caches: everything it needs to know about
 * a replica is on the container itself (labels), so a restarted agent carries on where it was.
 *
 * An agent owns the managed containers labelled with its node name (berth.node). Containers of
 * other node names on the same engine are invisible to it, which lets several agents share one
 * engine (tests, or a node that was renamed and whose old containers are left alone).
 */
import { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import {
  LABELS,
  type MeshRoutes,
  type NodeAgent,
  type NodeSnapshot,
  type ObservedReplica,
  type ReplicaHealth,
  type ReplicaRequest,
  type ReplicaWaitResult,
} from '../api/types.js';
import { assertContainerName, buildContainerSpec } from './container-spec.js';
import { replicaKey, withoutReplicas } from '../mesh/mesh-routes.js';
import { createNodeMesh } from '../mesh/node-mesh.js';
import { createServiceDiscovery } from '../mesh/service-discovery.js';
import { createFileStore, type FileStore } from './file-store.js';
import { createHealthProber, healthcheckFromLabels, type HealthProber } from './health-prober.js';
import type { ContainerRuntime, RuntimeContainer, RuntimeEvent, Subscription } from './runtime.js';

/** Used when a container has no readable stop-grace label: Docker's own default. */
const DEFAULT_STOP_GRACE_MS = 10_000;

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
  /** Replaces the default file store (the secrets issue refines where secret files live). */
  fileStore?: FileStore;
}

interface RestartBaseline {
  id: string;
  restartCount: number;
}

export function createLocalAgent(options: LocalAgentOptions): NodeAgent {
  const { runtime, nodeName } = options;
  const address = options.address ?? '127.0.0.1';
  const nodeLabels = { ...(options.labels ?? {}) };
  const imagePull = options.imagePull ?? 'if-missing';
  const log = options.log.child({ node: nodeName });
  const fileStore = options.fileStore ?? createFileStore({ stateDir: options.stateDir, log });
  const prober: HealthProber = createHealthProber({ runtime, log });
  // Balancers open only when the operator pushes routes, so an agent of a one-shot command
  // (apply, plan) never binds a published port.
  const discovery =
    options.serviceAddresses === undefined || options.serviceAddresses === null
      ? null
      : createServiceDiscovery({ addresses: options.serviceAddresses, log });
  const mesh = createNodeMesh({ address, log, discovery });

  /** Called with a container name, or null when anything may have changed (after a resync). */
  const changeListeners = new Set<(name: string | null) => void>();
  const notify = (name: string | null) => {
    for (const listener of changeListeners) listener(name);
  };
  prober.onChange((name) => notify(name));

  /**
   * Replicas of this node that get no traffic through this node's mesh whatever the last table
   * says: the ones that just failed their health check or died. The operator takes them out of
   * every node's table at its next observation (within a second); this node does not wait for it.
   */
  const vetoed = new Set<string>();
  let lastTable: MeshRoutes | null = null;
  const setVeto = (name: string, on: boolean): void => {
    const key = replicaKey(nodeName, name);
    if (vetoed.has(key) === on) return;
    if (on) vetoed.add(key);
    else vetoed.delete(key);
    if (lastTable === null || closed) return;
    log.debug({ container: name, vetoed: on }, 'routing mesh of this node follows a local health change');
    void mesh
      .apply(withoutReplicas(lastTable, vetoed), { drainTimeoutMs: 0 })
      .catch((error: unknown) => log.warn({ err: error }, 'could not update the routing mesh'));
  };
  prober.onChange((name) => {
    const health = prober.status(name)?.health;
    if (health === 'unhealthy') setVeto(name, true);
    else if (health === 'healthy') setVeto(name, false);
  });

  /** Restart count of a container when this agent first saw it: growth means it crashed since. */
  const restartBaselines = new Map<string, RestartBaseline>();
  /** `die` events per container id seen by this agent, with the exit code of the last one. */
  const deaths = new Map<string, { count: number; exitCode: number | null }>();
  const locks = new Map<string, Promise<unknown>>();
  let subscription: Subscription | null = null;
  let ready: Promise<void> | null = null;
  let closed = false;
  const closeWaiters = new Set<() => void>();

  const isOurs = (container: RuntimeContainer) => container.labels[LABELS.node] === nodeName;

  const noteBaseline = (container: RuntimeContainer) => {
    const known = restartBaselines.get(container.name);
    if (known === undefined || known.id !== container.id) {
      restartBaselines.set(container.name, { id: container.id, restartCount: container.restartCount });
    }
  };

  const observe = async (name: string): Promise<RuntimeContainer | null> => {
    const container = await runtime.inspect(name);
    return container !== null && isOurs(container) ? container : null;
  };

  const onEvent = (event: RuntimeEvent) => {
    if (event.kind === 'die') {
      deaths.set(event.id, { count: (deaths.get(event.id)?.count ?? 0) + 1, exitCode: event.exitCode });
      setVeto(event.name, true);
    }
    if (event.kind === 'destroy') {
      setVeto(event.name, false);
      deaths.delete(event.id);
      prober.untrack(event.name);
      notify(event.name);
      // Removed behind berth's back (docker rm): its files go too, unless a new container of the
      // same name already uses them (the lock orders this after any ensureReplica in flight).
      void dropFilesIfUnused(event.name).catch((error: unknown) =>
        log.warn({ err: error, container: event.name }, 'could not remove the files of a removed container'),
      );
      return;
    }
    notify(event.name);
    void observe(event.name)
      .then(async (container) => {
        if (container === null) {
          prober.untrack(event.name);
          return;
        }
        noteBaseline(container);
        await prober.track(container);
        // Running again without a health check to wait for: it may serve again.
        if (container.state === 'running' && prober.status(container.name) === null) {
          setVeto(container.name, false);
        }
      })
      .catch((error: unknown) =>
        log.warn({ err: error, container: event.name }, 'could not follow a container event'),
      )
      .finally(() => notify(event.name));
  };

  const dropFilesIfUnused = (name: string): Promise<void> =>
    exclusively(name, async () => {
      if ((await runtime.inspect(name)) === null) await fileStore.remove(name);
    });

  const resync = async () => {
    const containers = (await runtime.listManaged()).filter(isOurs);
    const names = new Set(containers.map((container) => container.name));
    for (const name of restartBaselines.keys()) {
      if (!names.has(name)) {
        restartBaselines.delete(name);
        prober.untrack(name);
      }
    }
    await Promise.all(
      containers.map((container) => {
        noteBaseline(container);
        return prober.track(container);
      }),
    );
  };

  const ensureReady = (): Promise<void> => {
    if (closed) return Promise.reject(new BerthError('ERR_STATE', `agent for node ${nodeName} is closed`));
    ready ??= (async () => {
      await runtime.ping();
      subscription ??= runtime.watchManagedEvents(onEvent, () => {
        // Events may have been missed while the stream was down: re-read everything.
        resync()
          .catch((error: unknown) =>
            log.warn({ err: error }, 'resync after reconnecting to docker events failed'),
          )
          .finally(() => notify(null));
      });
      await subscription.connected;
      await resync();
      // Files of containers that disappeared while no agent was watching.
      for (const name of await fileStore.list()) {
        await dropFilesIfUnused(name).catch((error: unknown) =>
          log.warn({ err: error, container: name }, 'could not remove the files of a removed container'),
        );
      }
    })().catch((error: unknown) => {
      ready = null;
      throw error;
    });
    return ready;
  };

  /** One operation at a time per replica name: concurrent ensure/remove calls must not interleave. */
  const exclusively = <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const previous = locks.get(name) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    const settled = next.catch(() => undefined);
    locks.set(name, settled);
    void settled.then(() => {
      if (locks.get(name) === settled) locks.delete(name);
    });
    return next;
  };

  const toObserved = (container: RuntimeContainer): ObservedReplica => {
    const { health, detail } = healthOf(container, prober);
    return {
      name: container.name,
      id: container.id,
      node: nodeName,
      namespace: container.labels[LABELS.namespace] ?? '',
      service: container.labels[LABELS.service] ?? '',
      slot: container.labels[LABELS.slot] ?? '',
      specHash: container.labels[LABELS.specHash] ?? '',
      revision: container.labels[LABELS.revision] ?? '',
      state: container.state,
      health,
      healthDetail: detail,
      exitCode: container.exitCode,
      restartCount: container.restartCount,
      createdAt: container.createdAt,
      startedAt: container.startedAt,
      ports: container.ports,
      specSummary: parseSummary(container.labels[LABELS.specSummary]),
    };
  };

  const removeContainer = async (container: RuntimeContainer) => {
    const graceMs = Number(container.labels[LABELS.stopGraceMs] ?? DEFAULT_STOP_GRACE_MS);
    prober.untrack(container.name);
    if (container.state === 'running' || container.state === 'restarting' || container.state === 'paused') {
      await runtime.stop(container.name, (Number.isFinite(graceMs) ? graceMs : DEFAULT_STOP_GRACE_MS) / 1000);
    }
    await runtime.remove(container.name);
    restartBaselines.delete(container.name);
    await fileStore.remove(container.name);
  };

  const ensureImage = async (image: string) => {
    if (await runtime.hasImage(image)) return;
    if (imagePull === 'never') {
      throw new BerthError(
        'ERR_IMAGE_NOT_FOUND',
        `image ${image} is not present on node ${nodeName} (pulling is disabled)`,
        {
          data: { image, node: nodeName },
        },
      );
    }
    log.info({ image }, 'pulling image');
    await runtime.pullImage(image);
  };

  /**
   * Follows one replica until a verdict, re-judging on every change (docker event, health
   * change), never by polling. `await` ends at the first verdict (healthy, or a failure) and with
   * `timeout` when time runs out; `watch` ends early only on a failure and `healthy` when the
   * window closes with the replica still up.
   */
  const follow = async (
    name: string,
    mode: 'await' | 'watch',
    limitMs: number,
  ): Promise<ReplicaWaitResult> => {
    assertContainerName(name);
    await ensureReady();
    const start = await observe(name);
    if (start === null)
      return { outcome: 'missing', replica: null, reason: `no container ${name} on node ${nodeName}` };
    noteBaseline(start);
    const deathsAtStart = deaths.get(start.id)?.count ?? 0;

    const judge = (container: RuntimeContainer | null, final: boolean): ReplicaWaitResult | null => {
      if (container === null)
        return { outcome: 'missing', replica: null, reason: `container ${name} is gone` };
      const replica = toObserved(container);
      const baseline = restartBaselines.get(name);
      const restarted = baseline?.id === container.id && container.restartCount > baseline.restartCount;
      const died = container.id === start.id && (deaths.get(container.id)?.count ?? 0) > deathsAtStart;
      const notYetStarted = container.state === 'created' || container.state === 'paused';
      if (notYetStarted && !restarted && !died) return final ? timeoutResult(container) : null;
      if (container.state !== 'running' || restarted || died) {
        return {
          outcome: 'exited',
          replica,
          reason: exitReason(container, deaths.get(container.id)?.exitCode ?? null),
        };
      }
      const hasCheck = healthcheckFromLabels(container.labels) !== null;
      const status = hasCheck ? prober.status(name) : null;
      if (hasCheck && status === null) void prober.track(container);
      if (status?.health === 'unhealthy') {
        return { outcome: 'unhealthy', replica, reason: status.detail ?? 'health check failed' };
      }
      const ready = !hasCheck || status?.health === 'healthy';
      if (mode === 'await') {
        if (ready) return { outcome: 'healthy', replica, reason: null };
        return final ? timeoutResult(container) : null;
      }
      return final ? { outcome: 'healthy', replica, reason: null } : null;
    };

    const timeoutResult = (container: RuntimeContainer): ReplicaWaitResult => ({
      outcome: 'timeout',
      replica: toObserved(container),
      reason: `not ready within ${limitMs} ms${describeHealth(container, prober)}`,
    });

    return new Promise<ReplicaWaitResult>((resolve) => {
      let done = false;
      let evaluating = false;
      let again = false;

      const finish = (result: ReplicaWaitResult) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        changeListeners.delete(onChange);
        closeWaiters.delete(onClose);
        resolve(result);
      };

      const evaluate = async () => {
        if (done) return;
        if (evaluating) {
          again = true;
          return;
        }
        evaluating = true;
        try {
          do {
            again = false;
            const result = judge(await observe(name), false);
            if (result !== null) finish(result);
          } while (again && !done);
        } catch (error) {
          log.warn({ err: error, container: name }, 'could not inspect a replica while following it');
        } finally {
          evaluating = false;
        }
      };

      const onChange = (changed: string | null) => {
        if (changed === name || changed === null) void evaluate();
      };
      const onClose = () =>
        finish({ outcome: 'timeout', replica: null, reason: `agent for node ${nodeName} closed` });
      const timer = setTimeout(() => {
        void observe(name)
          .then((container) => judge(container, true))
          .catch((error: unknown) => {
            log.warn({ err: error, container: name }, 'could not inspect a replica at the end of a wait');
            return null;
          })
          .then((result) =>
            finish(
              result ?? { outcome: 'timeout', replica: null, reason: `no verdict within ${limitMs} ms` },
            ),
          );
      }, limitMs);

      changeListeners.add(onChange);
      closeWaiters.add(onClose);
      const immediate = judge(start, false);
      if (immediate !== null) finish(immediate);
      else void evaluate();
    });
  };

  return {
    name: nodeName,

    async snapshot(): Promise<NodeSnapshot> {
      await ensureReady();
      const [info, images, all] = await Promise.all([
        runtime.info(),
        runtime.listImages(),
        runtime.listManaged(),
      ]);
      const containers = all.filter(isOurs);
      // Containers seen for the first time (made by an earlier agent) get their first probe now,
      // so a snapshot right after an agent restart reports real health, not `starting`.
      await Promise.all(
        containers.map((container) => {
          noteBaseline(container);
          return prober.track(container);
        }),
      );
      return {
        name: nodeName,
        address,
        labels: { ...nodeLabels },
        capacity: { nanoCpus: info.cpus * 1e9, memoryBytes: info.memoryBytes },
        engineVersion: info.engineVersion,
        status: 'ready',
        images,
        replicas: containers.map(toObserved).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
      };
    },

    async ensureReplica(request: ReplicaRequest): Promise<ObservedReplica> {
      assertContainerName(request.name);
      await ensureReady();
      return exclusively(request.name, async () => {
        const replicaLog = log.child({
          container: request.name,
          service: request.service,
          revision: request.revision,
        });
        const existing = await runtime.inspect(request.name);
        if (existing !== null) {
          if (!isOurs(existing)) {
            throw new BerthError(
              'ERR_STATE',
              `container name ${request.name} is taken on this engine by ${existing.labels[LABELS.node] === undefined ? 'a container berth does not manage' : `node ${existing.labels[LABELS.node]}`}`,
            );
          }
          const sameSpec = existing.labels[LABELS.specHash] === request.specHash;
          // A replica that fails its health check is what a repair is asked to fix: it is
          // replaced, not handed back as it is.
          const unhealthy = prober.status(existing.name)?.health === 'unhealthy';
          if (
            sameSpec &&
            !unhealthy &&
            (existing.state === 'running' || existing.state === 'restarting' || existing.state === 'paused')
          ) {
            noteBaseline(existing);
            void prober.track(existing);
            return toObserved(existing);
          }
          replicaLog.info(
            { state: existing.state, sameSpec, unhealthy },
            'replacing a stale container of the same name',
          );
          await removeContainer(existing);
        }

        await ensureImage(request.image);
        const mounts = await fileStore.write(request.name, request.files);
        try {
          const dns = discovery ? await discovery.containerDns(request.namespace) : null;
          const id = await runtime.create(buildContainerSpec(request, { nodeName, address, mounts, dns }));
          restartBaselines.set(request.name, { id, restartCount: 0 });
          await runtime.start(request.name);
        } catch (error) {
          await runtime.remove(request.name).catch(() => undefined);
          await fileStore.remove(request.name).catch(() => undefined);
          restartBaselines.delete(request.name);
          throw error;
        }
        const created = await runtime.inspect(request.name);
        if (created === null) {
          throw new BerthError(
            'ERR_CONTAINER_NOT_FOUND',
            `container ${request.name} vanished right after it was started`,
          );
        }
        replicaLog.info({ id: created.id, image: request.image }, 'replica started');
        void prober.track(created);
        return toObserved(created);
      });
    },

    awaitReplica(name, { timeoutMs }): Promise<ReplicaWaitResult> {
      return follow(name, 'await', timeoutMs);
    },

    watchReplica(name, { durationMs }): Promise<ReplicaWaitResult> {
      return follow(name, 'watch', durationMs);
    },

    async removeReplica(name): Promise<void> {
      assertContainerName(name);
      await ensureReady();
      await exclusively(name, async () => {
        const container = await runtime.inspect(name);
        if (container !== null && !isOurs(container)) return;
        if (container !== null) {
          await removeContainer(container);
          log.info({ container: name }, 'replica removed');
        } else {
          await fileStore.remove(name);
        }
      });
    },

    async setMeshRoutes(table, { drainTimeoutMs }): Promise<void> {
      if (closed) throw new BerthError('ERR_STATE', `agent for node ${nodeName} is closed`);
      lastTable = table;
      await mesh.apply(withoutReplicas(table, vetoed), { drainTimeoutMs });
    },

    async close(): Promise<void> {
      closed = true;
      await mesh.close();
      subscription?.close();
      subscription = null;
      prober.close();
      for (const onClose of [...closeWaiters]) onClose();
      changeListeners.clear();
    },
  };
}

function healthOf(
  container: RuntimeContainer,
  prober: HealthProber,
): { health: ReplicaHealth; detail: string | null } {
  const hasCheck = healthcheckFromLabels(container.labels) !== null;
  switch (container.state) {
    case 'running': {
      if (!hasCheck) return { health: 'none', detail: null };
      return prober.status(container.name) ?? { health: 'starting', detail: null };
    }
    case 'created':
      return { health: hasCheck ? 'starting' : 'none', detail: null };
    default:
      return { health: 'unhealthy', detail: exitReason(container) };
  }
}

/** Why a container is not serving; `lastExitCode` is from the last `die` event, for restarted ones. */
function exitReason(container: RuntimeContainer, lastExitCode: number | null = null): string {
  const parts: string[] = [];
  switch (container.state) {
    case 'restarting':
      parts.push('restarting');
      break;
    case 'paused':
      parts.push('paused');
      break;
    case 'removing':
      parts.push('being removed');
      break;
    case 'running':
      parts.push('exited and was restarted');
      break;
    default:
      parts.push(container.state === 'dead' ? 'dead' : 'exited');
  }
  const exitCode = container.exitCode ?? lastExitCode;
  if (exitCode !== null) parts.push(`exit code ${exitCode}`);
  if (container.oomKilled) parts.push('killed: out of memory');
  if (container.restartCount > 0) parts.push(`${container.restartCount} restarts`);
  if (container.error !== null) parts.push(container.error);
  return `container ${parts.join(', ')}`;
}

function describeHealth(container: RuntimeContainer | null, prober: HealthProber): string {
  if (container === null) return '';
  const { health, detail } = healthOf(container, prober);
  return ` (state ${container.state}, health ${health}${detail === null ? '' : `: ${detail}`})`;
}

function parseSummary(raw: string | undefined): Record<string, unknown> | null {
  if (raw === undefined) return null;
  try {
    const parsed: unknown = JSON.parse(raw);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}
