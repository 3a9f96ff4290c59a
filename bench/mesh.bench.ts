/**
 * npm run bench:mesh — the routing mesh on the local engine, loopback only.
 *
 * 1. Throughput and latency: the same bounded closed-loop load (CONCURRENCY clients, a fresh TCP
 *    connection per request, for LOAD_S seconds each) through the mesh's published port and
 *    straight to one replica's own port, side by side. The load runs in a child process so that
 *    it does not share an event loop with the balancer it measures.
 * 2. A rolling update of 10 replicas (parallelism 2, start-first) under a steady request loop
 *    (RATE requests a second, for the update's duration, bounded), reporting failed requests
 *    (target: 0).
 *
 * berth runs in-process: a local agent, the MeshController of `berth run`, one reconcile per step.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { createDockerRuntime } from '../src/agent/docker-runtime.js';
import { createLocalAgent } from '../src/agent/local-agent.js';
import { silentLogger } from '../src/log.js';
import { MeshController } from '../src/mesh/mesh-controller.js';
import { createGitRevisionSource } from '../src/operator/git-revision-source.js';
import { reconcile, type ReconcileDeps } from '../src/operator/reconcile.js';
import { StateStore } from '../src/operator/state-store.js';
import { openGitSource } from '../src/source/git-source.js';
import { createTestRepo } from '../test/helpers/git-repo.js';
import { freePort, getOnce, startLoadLoop } from '../test/helpers/load-loop.js';

const REPLICAS = 10;
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 8);
const LOAD_S = Number(process.env['BENCH_LOAD_S'] ?? 5);
const RATE = Number(process.env['BENCH_RATE'] ?? 50);
const NS = 'benchmesh';

interface ClosedLoopResult {
  requests: number;
  failed: number;
  seconds: number;
  p50: number;
  p99: number;
}

/** Child-process mode: a closed loop of `concurrency` clients for `seconds`, result as JSON. */
async function closedLoop(host: string, port: number, concurrency: number, seconds: number): Promise<void> {
  const latencies: number[] = [];
  let failed = 0;
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        try {
          const answer = await getOnce(host, port);
          if (answer.status !== 200) failed++;
          latencies.push(answer.ms);
        } catch {
          failed++;
        }
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const pick = (q: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  const result: ClosedLoopResult = {
    requests: latencies.length + failed,
    failed,
    seconds: (performance.now() - t0) / 1000,
    p50: pick(0.5),
    p99: pick(0.99),
  };
  process.stdout.write(JSON.stringify(result));
}

function measure(port: number): Promise<ClosedLoopResult> {
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', self, '--load', '127.0.0.1', String(port), String(CONCURRENCY), String(LOAD_S)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`load process exited with ${code}`));
      resolve(JSON.parse(out) as ClosedLoopResult);
    });
  });
}

function manifest(image: string, published: number): Record<string, string> {
  return {
    'mesh.yaml': `apiVersion: berth/v1
kind: Namespace
metadata: { name: ${NS} }
---
apiVersion: berth/v1
kind: Service
metadata: { name: web, namespace: ${NS} }
spec:
  image: ${image}
  replicas: ${REPLICAS}
  ports: [{ target: 8080, published: ${published} }]
  healthcheck: { http: { port: 8080, path: / }, interval: 1s, timeout: 1s, retries: 3 }
  update: { parallelism: 2, order: start-first, delay: 0s, monitor: 1s }
  stopGracePeriod: 2s
  init: true
`,
  };
}

async function bench(): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'berth-bench-mesh-'));
  const published = await freePort();
  const repo = await createTestRepo(manifest('berth-test/web:v1', published));
  const log = silentLogger();
  const agent = createLocalAgent({
    runtime: createDockerRuntime(),
    nodeName: 'bench-mesh',
    stateDir: join(stateDir, 'agent'),
    log,
  });
  const agents = () => new Map([['bench-mesh', agent]]);
  const mesh = new MeshController({ agents, log });
  const git = await openGitSource({ repo: repo.dir, cacheDir: join(stateDir, 'git-cache'), log });
  const deps: ReconcileDeps = {
    source: createGitRevisionSource({ git, repo: repo.dir, branch: 'main', path: '.' }),
    agents,
    store: new StateStore(stateDir),
    log,
    readSecret: null,
    mesh,
  };
  try {
    const initial = await reconcile(deps);
    if (initial.outcome !== 'succeeded')
      throw new Error(`deploy: ${initial.outcome} ${initial.reason ?? ''}`);
    mesh.start();
    await mesh.refresh();
    const snapshot = await agent.snapshot();
    const direct = snapshot.replicas[0]?.ports.find((p) => p.target === 8080)?.hostPort;
    if (direct === undefined) throw new Error('no replica port');

    const throughMesh = await measure(published);
    const straight = await measure(direct);
    const row = (what: string, r: ClosedLoopResult): string =>
      `${what.padEnd(26)} ${(r.requests / r.seconds).toFixed(0).padStart(7)} req/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   failed ${r.failed}/${r.requests}`;
    console.log(
      `closed loop, ${CONCURRENCY} clients, a new connection per request, ${LOAD_S} s each (loopback)`,
    );
    console.log(row(`mesh (:${published}, ${REPLICAS} replicas)`, throughMesh));
    console.log(row(`one replica (:${direct})`, straight));
    console.log(
      `mesh / direct: throughput ${(throughMesh.requests / throughMesh.seconds / (straight.requests / straight.seconds)).toFixed(2)}x, p50 +${(throughMesh.p50 - straight.p50).toFixed(2)} ms`,
    );

    const load = startLoadLoop({ host: '127.0.0.1', port: published, perSecond: RATE, maxMs: 180_000 });
    await repo.commit(manifest('berth-test/web:v2', published), 'v2');
    const t0 = performance.now();
    const update = await reconcile(deps);
    const ms = performance.now() - t0;
    // A last second of load after the update, on the new replicas only.
    await new Promise((r) => setTimeout(r, 1000));
    const report = await load.stop();
    console.log('');
    console.log(
      `rolling update of ${REPLICAS} replicas (parallelism 2, start-first) under ${RATE} req/s: ${update.outcome} in ${(ms / 1000).toFixed(2)} s`,
    );
    console.log(
      `requests ${report.requests}, answers ${JSON.stringify(Object.fromEntries(report.bodies))}, failed ${report.failed} (target 0)${report.failures.length ? `: ${report.failures.join('; ')}` : ''}`,
    );
    console.log(`failed=${report.failed}`);
  } finally {
    await mesh.stop();
    const docker = new Docker();
    const left = await docker.listContainers({ all: true, filters: { label: [`berth.namespace=${NS}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    await agent.close();
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--load') {
  const [host, port, concurrency, seconds] = process.argv.slice(3);
  await closedLoop(host ?? '127.0.0.1', Number(port), Number(concurrency), Number(seconds));
} else {
  await bench();
}
