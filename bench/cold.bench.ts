/**
 * npm run bench:cold — a cold deploy of 100 one-replica services on one node, beside the engine's
 * own floor in the same run.
 *
 * berth: one reconcile in-process, as `berth run` makes at start (the embedded node, the routing
 * mesh's membership, the default create concurrency unless BENCH_CREATE_CONCURRENCY says
 * otherwise), from an empty node to every service converged, its default 5 s monitor window
 * included. The floor: the same 100 containers (same image, command, init) created and started
 * by dockerode, all in parallel, with nothing else. Printed side by side with their ratio and the
 * target (berth <= 10 s). Every container made is removed afterwards, also on failure.
 *
 * BENCH_SERVICES changes the number of services.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { createDockerRuntime } from '../src/agent/docker-runtime.js';
import { createLocalAgent } from '../src/agent/local-agent.js';
import { silentLogger } from '../src/core/log.js';
import { createGitRevisionSource } from '../src/operator/git-revision-source.js';
import { MeshController } from '../src/operator/mesh-controller.js';
import { DEFAULT_CREATE_CONCURRENCY } from '../src/operator/node-create-limit.js';
import { reconcile } from '../src/operator/reconcile.js';
import { StateStore } from '../src/operator/state-store.js';
import { openGitSource } from '../src/source/git-source.js';
import { requireTestImages, TEST_IMAGES } from '../test/helpers/docker.js';
import { createTestRepo } from '../test/helpers/git-repo.js';
import { manifestFile, namespaceManifest, sleeperService } from '../test/helpers/manifests.js';

const SERVICES = Number(process.env['BENCH_SERVICES'] ?? 100);
const CONCURRENCY = Number(process.env['BENCH_CREATE_CONCURRENCY'] ?? DEFAULT_CREATE_CONCURRENCY);
const TARGET_S = 10;
const NS = 'coldbench';
const FLOOR_LABEL = 'berth-bench.cold-floor';

const docker = new Docker();
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

function manifests(): Record<string, string> {
  const services = Array.from({ length: SERVICES }, (_, i) =>
    sleeperService({ name: `s${String(i).padStart(3, '0')}`, namespace: NS }),
  );
  return { 'cold.yaml': manifestFile(namespaceManifest(NS), ...services) };
}

async function removeLabelled(label: string): Promise<void> {
  const left = await docker.listContainers({ all: true, filters: { label: [label] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
}

async function benchBerth(): Promise<number> {
  const stateDir = await mkdtemp(join(tmpdir(), 'berth-bench-cold-'));
  const repo = await createTestRepo(manifests());
  const log = silentLogger();
  const agent = createLocalAgent({
    runtime: createDockerRuntime(),
    nodeName: 'local',
    stateDir: join(stateDir, 'agent'),
    log,
  });
  const agents = () => new Map([['local', agent]]);
  const mesh = new MeshController({ agents, log });
  try {
    const git = await openGitSource({ repo: repo.dir, cacheDir: join(stateDir, 'git-cache'), log });
    // The node's engine connection and event stream are up before the clock starts, as in a
    // running operator.
    await agent.snapshot();
    const t0 = performance.now();
    const result = await reconcile({
      source: createGitRevisionSource({ git, repo: repo.dir, branch: 'main', path: '.' }),
      agents,
      store: new StateStore(stateDir),
      log,
      readSecret: null,
      mesh,
      createConcurrency: CONCURRENCY,
    });
    const ms = performance.now() - t0;
    if (result.outcome !== 'succeeded')
      throw new Error(`cold deploy: ${result.outcome} ${result.reason ?? ''}`);
    return ms;
  } finally {
    await mesh.stop();
    await removeLabelled(`berth.namespace=${NS}`);
    await agent.close();
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  }
}

/** The same containers with nothing but the engine: create and start, all at once. */
async function benchFloor(): Promise<number> {
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: SERVICES }, async (_, i) => {
        const container = await docker.createContainer({
          name: `berth-bench-cold-${i}`,
          Image: TEST_IMAGES.busybox,
          Cmd: ['sleep', '3600'],
          Labels: { [FLOOR_LABEL]: 'true' },
          HostConfig: { Init: true },
        });
        await container.start();
      }),
    );
    return performance.now() - t0;
  } finally {
    await removeLabelled(FLOOR_LABEL);
  }
}

async function main(): Promise<void> {
  await requireTestImages();
  await removeLabelled(`berth.namespace=${NS}`);
  await removeLabelled(FLOOR_LABEL);
  console.log(
    `cold deploy of ${SERVICES} one-replica services on one node (create concurrency ${CONCURRENCY})`,
  );
  const floor = await benchFloor();
  console.log(`engine floor (${SERVICES} docker run in parallel): ${s(floor)}`);
  const berth = await benchBerth();
  console.log(
    `berth (plan, create, start, 5 s monitor window): ${s(berth)}   target <= ${TARGET_S} s  ${berth <= TARGET_S * 1000 ? 'OK' : 'MISSED'}`,
  );
  console.log(`berth / floor: ${(berth / floor).toFixed(2)}x`);
}

await main();
