import Docker from 'dockerode';

/** What really runs, read straight from the engine (not through berth), for assertions. */
export interface RunningReplica {
  name: string;
  revision: string;
  specHash: string;
  slot: string;
  image: string;
  state: string;
  port: number | null;
}

const docker = new Docker();

export async function replicasOf(namespace: string, service: string): Promise<RunningReplica[]> {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`berth.namespace=${namespace}`, `berth.service=${service}`] },
  });
  return containers
    .map((c) => ({
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      revision: c.Labels['berth.revision'] ?? '',
      specHash: c.Labels['berth.spec-hash'] ?? '',
      slot: c.Labels['berth.slot'] ?? '',
      image: c.Image,
      state: c.State,
      port: c.Ports.find((p) => p.PrivatePort === 8080 && p.PublicPort)?.PublicPort ?? null,
    }))
    .sort((a, b) => a.slot.localeCompare(b.slot) || a.name.localeCompare(b.name));
}

/** The body each running replica serves on its published port 8080 (null if it does not answer 200). */
export async function bodies(namespace: string, service: string): Promise<(string | null)[]> {
  const replicas = (await replicasOf(namespace, service)).filter((r) => r.state === 'running' && r.port);
  return Promise.all(
    replicas.map(async (r) => {
      try {
        const response = await fetch(`http://127.0.0.1:${r.port}/`, { signal: AbortSignal.timeout(3000) });
        return response.status === 200 ? (await response.text()).trim() : null;
      } catch {
        return null;
      }
    }),
  );
}

export async function removeNamespace(namespace: string): Promise<void> {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`berth.namespace=${namespace}`] },
  });
  await Promise.all(
    containers.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
}

export async function removeContainer(name: string): Promise<void> {
  await docker.getContainer(name).remove({ force: true });
}

export async function stopContainer(name: string): Promise<void> {
  await docker.getContainer(name).stop({ t: 0 });
}

/**
 * Samples, until stopped, how many replicas answer 200 with the expected bodies: the floor of
 * healthy capacity during a rollout.
 */
export function sampleServing(
  namespace: string,
  service: string,
): { stop(): Promise<{ min: number; samples: number }> } {
  let running = true;
  let min = Number.POSITIVE_INFINITY;
  let samples = 0;
  const loop = (async () => {
    while (running) {
      const answered = (await bodies(namespace, service)).filter((b) => b !== null).length;
      min = Math.min(min, answered);
      samples += 1;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { min, samples };
    },
  };
}
