/**
 * A ContainerRuntime without an engine, for bench:scale: containers are records in a map, a start
 * takes `startLatencyMs` (the engine's own time, which the benchmark excludes) and then reports the
 * container running, with the lifecycle events Docker would send. Nothing runs, so a probe never
 * answers: the benchmark's services have no health check (running = ready).
 */
import type { ReplicaLogLine } from '../../src/api/types.js';
import type {
  ContainerCreateSpec,
  ContainerRuntime,
  RuntimeContainer,
  RuntimeEvent,
  Subscription,
} from '../../src/agent/runtime.js';

export function createMemoryRuntime(options: { startLatencyMs: number; hostname: string }): ContainerRuntime {
  const containers = new Map<string, RuntimeContainer>();
  const listeners = new Set<(event: RuntimeEvent) => void>();
  let nextId = 1;
  const emit = (kind: RuntimeEvent['kind'], c: RuntimeContainer): void => {
    for (const listener of listeners) listener({ kind, id: c.id, name: c.name, exitCode: c.exitCode });
  };
  const copy = (c: RuntimeContainer): RuntimeContainer => ({
    ...c,
    labels: { ...c.labels },
    ports: [...c.ports],
  });

  return {
    ping: () => Promise.resolve(),
    info: () =>
      Promise.resolve({
        cpus: 16,
        memoryBytes: 64 * 2 ** 30,
        engineVersion: 'memory',
        hostname: options.hostname,
      }),
    listImages: () => Promise.resolve([]),
    listManagedVolumes: () => Promise.resolve([]),
    removeVolume: () => Promise.resolve(),
    listManaged: () => Promise.resolve([...containers.values()].map(copy)),
    inspect: (name) => {
      const c = containers.get(name);
      return Promise.resolve(c ? copy(c) : null);
    },
    hasImage: () => Promise.resolve(true),
    pullImage: () => Promise.resolve(),
    create(spec: ContainerCreateSpec) {
      if (containers.has(spec.name)) return Promise.reject(new Error(`name ${spec.name} is in use`));
      const id = `mem${(nextId++).toString(16).padStart(12, '0')}`;
      containers.set(spec.name, {
        id,
        name: spec.name,
        image: spec.image,
        labels: { ...spec.labels },
        state: 'created',
        exitCode: null,
        oomKilled: false,
        error: null,
        restartCount: 0,
        createdAt: new Date().toISOString(),
        startedAt: null,
        finishedAt: null,
        ports: [],
      });
      return Promise.resolve(id);
    },
    async start(name) {
      await new Promise((resolve) => setTimeout(resolve, options.startLatencyMs));
      const c = containers.get(name);
      if (!c) throw new Error(`no container ${name}`);
      c.state = 'running';
      c.startedAt = new Date().toISOString();
      emit('start', c);
    },
    stop(name) {
      const c = containers.get(name);
      if (c && c.state === 'running') {
        c.state = 'exited';
        c.exitCode = 0;
        c.finishedAt = new Date().toISOString();
        emit('die', c);
      }
      return Promise.resolve();
    },
    remove(name) {
      const c = containers.get(name);
      if (c) {
        containers.delete(name);
        emit('destroy', c);
      }
      return Promise.resolve();
    },
    exec: () => Promise.resolve({ exitCode: 0, output: '' }),
    logTail: () => Promise.resolve(''),
    // eslint-disable-next-line require-yield
    async *logs(): AsyncGenerator<ReplicaLogLine> {
      return;
    },
    watchManagedEvents(onEvent): Subscription {
      listeners.add(onEvent);
      return { connected: Promise.resolve(), close: () => listeners.delete(onEvent) };
    },
  };
}
