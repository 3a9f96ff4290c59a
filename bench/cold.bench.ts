/**
 * npm run bench:cold — a cold deploy of 100 one-replica services on one node, beside the engine's
 * own floor in the same run.
 *
 * berth: one reconcile in-process, as `berth run` makes at start (the embedded node, the routing
 * mesh's membership, the default create concurrency unless BENCH_CREATE_CONCURRENCY says
 * otherwise), from an empty node to every service converged, its default 5 s monitor window
 * included, and when its last replica was healthy (the time before the windows close). The
 * floor: the same 100 containers (same image, command, init) created and started by dockerode,
 * all in parallel, with nothing else; and again at berth's create concurrency, since the engine
 * may do better with a short queue than with all at once. Printed side by side with their ratios
 * and the target (berth <= 10 s). Every container made is removed afterwards, also on failure.
 *
 * BENCH_SERVICES changes the number of services; BENCH_TRACE_LOG=FILE writes berth's debug log
 * (JSON, with each replica's inspect/create/start times on its node) there.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import pLimit from 'p-limit';
import { pino } from 'pino';
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
/** BENCH_TRACE_LOG=FILE: berth's own log lines, debug level, as JSON into FILE. */
const TRACE_LOG = process.env['BENCH_TRACE_LOG'];

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

/** The whole reconcile, and when the last replica was healthy (before the monitor windows end). */
async function benchBerth(): Promise<{ ms: number; lastHealthyMs: number }> {
  const stateDir = await mkdtemp(join(tmpdir(), 'berth-bench-cold-'));
  const repo = await createTestRepo(manifests());
  const log = TRACE_LOG ? pino({ level: 'debug' }, pino.destination(TRACE_LOG)) : silentLogger();
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
    let lastHealthyMs = 0;
    const result = await reconcile({
      source: createGitRevisionSource({ git, repo: repo.dir, branch: 'main', path: '.' }),
      agents,
      store: new StateStore(stateDir),
      log,
      readSecret: null,
      mesh,
      createConcurrency: CONCURRENCY,
      onEvent: (event) => {
        if (event.type === 'replica-healthy') lastHealthyMs = performance.now() - t0;
      },
    });
    const ms = performance.now() - t0;
    if (result.outcome !== 'succeeded')
      throw new Error(`cold deploy: ${result.outcome} ${result.reason ?? ''}`);
    return { ms, lastHealthyMs };
  } finally {
    await mesh.stop();
    await removeLabelled(`berth.namespace=${NS}`);
    await agent.close();
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  }
}

/**
 * The same containers with nothing but the engine: created and started `limit` at a time (all at
 * once by default, as 100 `docker run -d` side by side).
 */
async function benchFloor(limit: number = SERVICES): Promise<number> {
  const queue = pLimit(limit);
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: SERVICES }, (_, i) =>
        queue(async () => {
          const container = await docker.createContainer({
            name: `berth-bench-cold-${i}`,
            Image: TEST_IMAGES.busybox,
            Cmd: ['sleep', '3600'],
            Labels: { [FLOOR_LABEL]: 'true' },
            StopTimeout: 1,
            HostConfig: { Init: true },
          });
          await container.start();
        }),
      ),
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
  const floorLimited = await benchFloor(CONCURRENCY);
  console.log(`engine alone, ${CONCURRENCY} at a time (berth's create concurrency): ${s(floorLimited)}`);
  const berth = await benchBerth();
  console.log(`berth, until its last replica is healthy: ${s(berth.lastHealthyMs)}`);
  console.log(
    `berth (plan, create, start, 5 s monitor window): ${s(berth.ms)}   target <= ${TARGET_S} s  ${berth.ms <= TARGET_S * 1000 ? 'OK' : 'MISSED'}`,
  );
  console.log(`berth / floor: ${(berth.ms / floor).toFixed(2)}x`);
  console.log(`berth until healthy / floor: ${(berth.lastHealthyMs / floor).toFixed(2)}x`);
}

await main();
