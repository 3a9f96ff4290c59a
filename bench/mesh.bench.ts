/**
 * npm run bench:mesh — the routing mesh on the local engine, loopback only.
 *
 * 1. Throughput and latency: the same closed-loop load generator (CONCURRENCY clients, a fresh TCP
 *    connection per request and no keep-alive on every row, in a child process of its own so that
 *    it does not share an event loop with a balancer it measures) against each path below. The
 *    rows are measured in ROUNDS interleaved slices of LOAD_S / ROUNDS seconds (mesh, userspace,
 *    direct, ...; again), so that a change of the machine's load hits every row alike. Node 1
 *    holds about half of the REPLICAS replicas, node 2 the others; both engines run on this
 *    machine with `--iptables=false`, so a published port is served by the engine's `docker-proxy`
 *    (a user-space hop) and a bridge address by the kernel alone. The rows:
 *    - `mesh, <plane>`: node 1's published port on the nodes' data plane (BENCH_DATA_PLANE,
 *      default auto). nftables: a DNAT in the kernel, to the bridge address of node 1's replicas
 *      (no user-space hop) and to the published port of node 2's (its docker-proxy, one hop).
 *      userspace: berth's balancer, then each replica's published port (two hops).
 *    - `mesh, userspace`: the same routes on the user-space balancer (a comparison mesh on an
 *      address of its own, fed every table node 1 gets).
 *    - `mesh, appProtocol http`: node 1's published port in http mode (always user space).
 *    - `direct, <plane>'s backends`: the client itself picks, at random per connection, among the
 *      very targets the nodes' data plane sends to (read from the nft table; the replicas'
 *      published ports for user space): the same hops as the mesh row without the mesh.
 *    - `direct, published ports`: the same, among every replica's published port.
 *    - `one replica (:port)` and `one replica (bridge:8080)`: one replica of node 1 at its
 *      published port and at its bridge address.
 *    The summary line `mesh / direct: throughput <ratio>x, p50 +<ms> ms ...` divides each mesh row
 *    by the direct row with the same hops behind the mesh (what the mesh adds and nothing else),
 *    and the next line by one replica's published port (the anchor of issue 18's first figures).
 * 2. Under a steady request loop (RATE requests a second through one node's published port, for
 *    the change's duration, bounded), reporting failed requests (target: 0) for: a rolling update
 *    of 10 replicas (parallelism 2, start-first); a failing update and its automatic rollback; a
 *    rollback by a revert commit; the loss of a node (its agent stops answering, its containers
 *    are killed); the drain of a node.
 *
 * berth runs in-process: two local agents, each on a Docker engine of its own started for the
 * bench (as the multi-node tests do; needs root), the MeshController of `berth run`, one
 * reconcile per step.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDockerRuntime } from '../src/agent/docker-runtime.js';
import { createLocalAgent } from '../src/agent/local-agent.js';
import { pino } from 'pino';
import { silentLogger } from '../src/core/log.js';
import type { MeshRoutes, NodeAgent, ReplicaRequest } from '../src/api/types.js';
import { MeshController } from '../src/operator/mesh-controller.js';
import { createNodeMesh, type NodeMesh } from '../src/mesh/node-mesh.js';
import { isDataPlaneChoice } from '../src/mesh/nftables.js';
import { nftTableName } from '../src/mesh/nftables-ruleset.js';
import { execFileSync } from 'node:child_process';
import { createGitRevisionSource } from '../src/operator/git-revision-source.js';
import { reconcile, type ReconcileDeps } from '../src/operator/reconcile.js';
import { StateStore } from '../src/operator/state-store.js';
import { openGitSource } from '../src/source/git-source.js';
import { createTestRepo } from '../test/helpers/git-repo.js';
import { freePort, getOnce, startLoadLoop } from '../test/helpers/load-loop.js';
import { startTestEngines, type TestEngine } from '../test/helpers/multi-node.js';

const REPLICAS = 10;
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 8);
const LOAD_S = Number(process.env['BENCH_LOAD_S'] ?? 6);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const RATE = Number(process.env['BENCH_RATE'] ?? 50);
const NS = 'benchmesh';
const DATA_PLANE_ASKED = process.env['BENCH_DATA_PLANE'] ?? 'auto';
if (!isDataPlaneChoice(DATA_PLANE_ASKED))
  throw new Error(`BENCH_DATA_PLANE: auto, nftables or userspace, not ${DATA_PLANE_ASKED}`);
const DATA_PLANE = DATA_PLANE_ASKED;

interface ClosedLoopResult {
  requests: number;
  failed: number;
  seconds: number;
  /** Every answered request's latency, ms. */
  latencies: number[];
}

interface Target {
  host: string;
  port: number;
}

/** Child-process mode: a closed loop of `concurrency` clients for `seconds`, result as JSON. */
async function closedLoop(targets: Target[], concurrency: number, seconds: number): Promise<void> {
  const latencies: number[] = [];
  let failed = 0;
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        // A pick per connection, as numgen random does it in the kernel.
        const target = targets[Math.floor(Math.random() * targets.length)]!;
        try {
          const answer = await getOnce(target.host, target.port);
          if (answer.status !== 200) failed++;
          latencies.push(answer.ms);
        } catch {
          failed++;
        }
      }
    }),
  );
  const result: ClosedLoopResult = {
    requests: latencies.length + failed,
    failed,
    seconds: (performance.now() - t0) / 1000,
    latencies,
  };
  process.stdout.write(JSON.stringify(result));
}

function measureSlice(targets: Target[], seconds: number): Promise<ClosedLoopResult> {
  const self = fileURLToPath(import.meta.url);
  const list = targets.map((t) => `${t.host}:${t.port}`).join(',');
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', self, '--load', list, String(CONCURRENCY), String(seconds)],
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

/** Each of `paths` measured for LOAD_S seconds in all, in ROUNDS interleaved slices (an empty one is skipped). */
async function measureInterleaved<K extends string>(
  paths: Record<K, Target[]>,
): Promise<Record<K, ClosedLoopResult>> {
  const keys = Object.keys(paths) as K[];
  const results = Object.fromEntries(
    keys.map((k) => [k, { requests: 0, failed: 0, seconds: 0, latencies: [] as number[] }]),
  ) as Record<K, ClosedLoopResult>;
  for (let round = 0; round < ROUNDS; round++) {
    for (const key of keys) {
      if (paths[key].length === 0) continue;
      const slice = await measureSlice(paths[key], LOAD_S / ROUNDS);
      const total = results[key];
      total.requests += slice.requests;
      total.failed += slice.failed;
      total.seconds += slice.seconds;
      total.latencies.push(...slice.latencies);
    }
  }
  for (const key of keys) results[key].latencies.sort((x, y) => x - y);
  return results;
}

function percentile(r: ClosedLoopResult, q: number): number {
  return r.latencies[Math.min(r.latencies.length - 1, Math.floor(q * r.latencies.length))] ?? 0;
}

function manifest(
  variant: 'v1' | 'v2' | 'broken',
  published: number,
  appProtocol: 'tcp' | 'http' = 'tcp',
): Record<string, string> {
  // The broken variant serves no page: its health check fails and the update rolls back.
  const image = variant === 'v1' ? 'berth-test/web:v1' : 'berth-test/web:v2';
  const command =
    variant === 'broken'
      ? `\n  command: ["sh", "-c", "rm /www/index.html && exec httpd -f -p 8080 -h /www"]`
      : '';
  return {
    'mesh.yaml': `apiVersion: berth/v1
kind: Namespace
metadata: { name: ${NS} }
---
apiVersion: berth/v1
kind: Service
metadata: { name: web, namespace: ${NS} }
spec:
  image: ${image}${command}
  replicas: ${REPLICAS}
  ports: [{ target: 8080, published: ${published}, appProtocol: ${appProtocol} }]
  healthcheck: { http: { port: 8080, path: / }, interval: 1s, timeout: 1s, retries: 3 }
  update: { parallelism: 2, order: start-first, delay: 0s, monitor: 1s }
  stopGracePeriod: 2s
  init: true
`,
  };
}

/**
 * A node the bench can drain or lose: the same in-process agent, observed as `drain`, or not
 * answering at all (a lost host) while its containers are killed.
 */
type Controllable = NodeAgent & { mode: 'active' | 'drain' | 'lost'; address: string; engine: TestEngine };

function controllable(agent: NodeAgent, engine: TestEngine, mirror: NodeMesh | null = null): Controllable {
  const node = {
    engine,
    address: engine.address,
    mode: 'active' as 'active' | 'drain' | 'lost',
    name: agent.name,
    alive(): void {
      if (node.mode === 'lost') throw new Error(`node ${agent.name} is lost`);
    },
    async snapshot() {
      node.alive();
      const snapshot = await agent.snapshot();
      return node.mode === 'drain' ? { ...snapshot, status: 'drain' as const } : snapshot;
    },
    ensureReplica: async (request: ReplicaRequest) => (node.alive(), agent.ensureReplica(request)),
    prepareReplica: async (request: ReplicaRequest) => (node.alive(), agent.prepareReplica(request)),
    awaitReplica: async (name: string, o: { timeoutMs: number }) => (
      node.alive(),
      agent.awaitReplica(name, o)
    ),
    watchReplica: async (name: string, o: Parameters<NodeAgent['watchReplica']>[1]) => (
      node.alive(),
      agent.watchReplica(name, o)
    ),
    removeReplica: async (name: string) => (node.alive(), agent.removeReplica(name)),
    listVolumes: async () => (node.alive(), agent.listVolumes()),
    removeVolume: async (name: string) => (node.alive(), agent.removeVolume(name)),
    setMeshRoutes: async (table: MeshRoutes, o: { drainTimeoutMs: number }) => {
      node.alive();
      await Promise.all([agent.setMeshRoutes(table, o), mirror?.apply(table, o)]);
    },
    logs: (name: string, o: Parameters<NodeAgent['logs']>[1]) => agent.logs(name, o),
    awaitChange: (since: string | null, o: { timeoutMs: number }) => agent.awaitChange(since, o),
    close: () => agent.close(),
  };
  return node;
}

function outcomeOf(result: Awaited<ReturnType<typeof reconcile>>): string {
  return result.outcome === 'succeeded' || result.reason === null
    ? result.outcome
    : `${result.outcome} (${result.reason})`;
}

interface ScenarioRow {
  what: string;
  outcome: string;
  seconds: number;
  requests: number;
  failed: number;
  failures: string[];
}

async function bench(): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'berth-bench-mesh-'));
  const published = await freePort();
  const repo = await createTestRepo(manifest('v1', published));
  // BERTH_LOG_LEVEL=debug shows what berth does during the scenarios (on stderr).
  const level = process.env['BERTH_LOG_LEVEL'];
  const log = level ? pino({ level }, pino.destination(2)) : silentLogger();
  // Two nodes, each a Docker engine of its own publishing on a loopback address of its own.
  const cluster = await startTestEngines(2, 'benchmesh');
  // The user-space balancer beside the default data plane: node 1's routes on an address of its own.
  const userspaceAddress = cluster.engines[0]!.address.replace(/\.\d+$/, '.200');
  const userspace = createNodeMesh({ address: userspaceAddress, log, dataPlane: 'userspace' });
  const [a, b] = cluster.engines.map((engine) =>
    controllable(
      createLocalAgent({
        runtime: createDockerRuntime({ socketPath: engine.socketPath }),
        nodeName: engine.node,
        address: engine.address,
        stateDir: join(stateDir, `agent-${engine.index}`),
        log,
        serviceAddresses: null,
        dataPlane: DATA_PLANE,
      }),
      engine,
      engine.index === 1 ? userspace : null,
    ),
  ) as [Controllable, Controllable];
  const agents = () => new Map([a, b].map((n) => [n.name, n as NodeAgent]));
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
    await throughput({
      a,
      b,
      published,
      userspaceAddress,
      engine: cluster.engines[0]!,
      switchTo: async (appProtocol) => {
        await repo.commit(manifest('v1', published, appProtocol), `appProtocol ${appProtocol}`);
        await reconcile(deps);
        await mesh.refresh();
      },
    });

    // Each change under a steady request loop through one node's published port.
    const rows: ScenarioRow[] = [];
    const underLoad = async (what: string, via: string, change: () => Promise<string>): Promise<void> => {
      const load = startLoadLoop({ host: via, port: published, perSecond: RATE, maxMs: 180_000 });
      const t0 = performance.now();
      let outcome: string;
      try {
        outcome = await change();
      } catch (error) {
        outcome = `error: ${error instanceof Error ? error.message : String(error)}`;
      }
      const seconds = (performance.now() - t0) / 1000;
      // A last second of load once the change is done, on what serves now.
      await new Promise((r) => setTimeout(r, 1000));
      const report = await load.stop();
      rows.push({
        what,
        outcome,
        seconds,
        requests: report.requests,
        failed: report.failed,
        failures: report.failures,
      });
    };
    const commitAndReconcile = async (variant: 'v1' | 'v2' | 'broken', message: string): Promise<string> => {
      await repo.commit(manifest(variant, published), message);
      return outcomeOf(await reconcile(deps));
    };

    await underLoad(`rolling update of ${REPLICAS} replicas v1 -> v2`, b.address, () =>
      commitAndReconcile('v2', 'v2'),
    );
    await underLoad('failing update (health check fails), automatic rollback', b.address, () =>
      commitAndReconcile('broken', 'broken'),
    );
    await underLoad('rollback by a revert commit v2 -> v1', b.address, () =>
      commitAndReconcile('v1', 'Revert to v1'),
    );
    await underLoad('loss of node 1 (agent gone, containers killed)', b.address, async () => {
      a.mode = 'lost';
      const lost = await a.engine.docker.listContainers({ filters: { label: [`berth.namespace=${NS}`] } });
      await Promise.all(lost.map((c) => a.engine.docker.getContainer(c.Id).kill()));
      return outcomeOf(await reconcile(deps));
    });
    a.mode = 'active';
    await reconcile(deps);
    await underLoad('drain of node 2 (replicas move to node 1)', a.address, async () => {
      b.mode = 'drain';
      return outcomeOf(await reconcile(deps));
    });

    console.log('');
    console.log(
      `under a steady ${RATE} req/s loop (a new connection per request, 5 s timeout), 2 nodes (an engine each), ${REPLICAS} replicas, start-first`,
    );
    for (const r of rows) {
      const [outcome, ...why] = r.outcome.split(' (');
      console.log(
        `${r.what.padEnd(58)} ${(outcome ?? '').padEnd(12)} ${r.seconds.toFixed(2).padStart(6)} s   requests ${String(r.requests).padStart(5)}   failed ${r.failed} (target 0)${r.failures.length ? `: ${r.failures.slice(0, 3).join('; ')}` : ''}`,
      );
      if (why.length > 0) console.log(`${''.padEnd(4)}(${why.join(' (')}`);
    }
    console.log(`failed=${rows.reduce((sum, r) => sum + r.failed, 0)}`);
  } finally {
    await mesh.stop();
    await Promise.all([a.close(), b.close(), userspace.close()]);
    await cluster.stop();
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  }
}

/** Section 1: every path under the same closed loop, and the summary lines. */
async function throughput(o: {
  a: Controllable;
  b: Controllable;
  published: number;
  userspaceAddress: string;
  engine: TestEngine;
  switchTo: (appProtocol: 'tcp' | 'http') => Promise<void>;
}): Promise<void> {
  const { a, b, published, userspaceAddress, engine, switchTo } = o;
  const snapshot = await a.snapshot();
  const direct = snapshot.replicas[0]?.ports.find((p) => p.target === 8080)?.hostPort;
  if (direct === undefined) throw new Error('no replica port');
  // The same replica at its own bridge address, where the kernel data plane sends node 1's replicas.
  const bridge = (await engine.docker.getContainer(snapshot.replicas[0]!.name).inspect()).NetworkSettings
    .Networks['bridge']?.IPAddress;
  if (!bridge) throw new Error('no bridge address for the replica');
  const publishedPorts = await publishedTargets([a, b]);
  const kernel = nftTable(a.address, published);
  const plane = kernel === null ? 'userspace' : 'nftables';
  const loopback = await measureInterleaved({
    mesh: [{ host: a.address, port: published }],
    userspace: [{ host: userspaceAddress, port: published }],
    // Without a kernel table the nodes' backends are the published ports, measured below.
    kernelTargets: kernel?.targets ?? [],
    publishedPorts,
    oneReplica: [{ host: a.address, port: direct }],
    oneBridge: [{ host: bridge, port: 8080 }],
  });
  const planeTargets = kernel === null ? loopback.publishedPorts : loopback.kernelTargets;
  // The same port with appProtocol http (per-request balancing), then back to tcp.
  await switchTo('http');
  const { http: throughHttp } = await measureInterleaved({ http: [{ host: a.address, port: published }] });
  await switchTo('tcp');
  const row = (what: string, r: ClosedLoopResult): string =>
    `${what.padEnd(44)} ${(r.requests / r.seconds).toFixed(0).padStart(7)} req/s   p50 ${percentile(r, 0.5).toFixed(2).padStart(6)} ms   p99 ${percentile(r, 0.99).toFixed(2).padStart(6)} ms   failed ${r.failed}/${r.requests}`;
  console.log(
    `closed loop, ${CONCURRENCY} clients, a new connection per request, ${LOAD_S} s each in ${ROUNDS} interleaved slices (loopback)`,
  );
  console.log(
    `data plane of the nodes: ${plane} (--data-plane ${DATA_PLANE})${kernel === null ? '' : `; nft table ${nftTableName(a.address, process.pid)}: :${published} -> ${kernel.targets.length} backends`}`,
  );
  console.log(row(`mesh, ${plane} (:${published}, ${REPLICAS} replicas)`, loopback.mesh));
  console.log(row(`mesh, userspace`, loopback.userspace));
  console.log(row(`mesh, appProtocol http`, throughHttp));
  if (kernel !== null)
    console.log(
      row(`direct, the nft map's ${kernel.targets.length} targets (${kernel.local} bridge)`, planeTargets),
    );
  console.log(row(`direct, the ${publishedPorts.length} published ports`, loopback.publishedPorts));
  console.log(row(`one replica (:${direct})`, loopback.oneReplica));
  console.log(row(`one replica (${bridge}:8080)`, loopback.oneBridge));
  const ratio = (r: ClosedLoopResult, anchor: ClosedLoopResult): string =>
    `${(r.requests / r.seconds / (anchor.requests / anchor.seconds)).toFixed(2)}x, p50 +${(percentile(r, 0.5) - percentile(anchor, 0.5)).toFixed(2)} ms`;
  console.log(
    `mesh / direct: throughput ${ratio(loopback.mesh, planeTargets)} (${plane}; direct = the same backends, picked by the client); userspace ${ratio(loopback.userspace, loopback.publishedPorts)}; http mode ${ratio(throughHttp, loopback.publishedPorts)}`,
  );
  console.log(
    `mesh / one replica's published port: ${plane} ${ratio(loopback.mesh, loopback.oneReplica)}; userspace ${ratio(loopback.userspace, loopback.oneReplica)}; http mode ${ratio(throughHttp, loopback.oneReplica)}`,
  );
}

/** Every replica's published port 8080 on its node's address. */
async function publishedTargets(nodes: Controllable[]): Promise<Target[]> {
  const targets: Target[] = [];
  for (const node of nodes) {
    for (const replica of (await node.snapshot()).replicas) {
      const hostPort = replica.ports.find((p) => p.target === 8080)?.hostPort;
      if (hostPort !== undefined) targets.push({ host: node.address, port: hostPort });
    }
  }
  return targets;
}

/** What node `address`'s nftables table DNATs `published` to (and how many are bridge addresses), or null without a table. */
function nftTable(address: string, published: number): { targets: Target[]; local: number } | null {
  let listing: string;
  try {
    listing = execFileSync('nft', ['list', 'table', 'ip', nftTableName(address, process.pid)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return null;
  }
  const map = new RegExp(`tcp dport ${published} dnat ip to numgen random mod \\d+ map \\{ ([^}]*) \\}`).exec(
    listing,
  );
  if (!map) throw new Error(`the nft table does not serve :${published}:\n${listing}`);
  const targets = [...map[1]!.matchAll(/\d+ : ([\d.]+) \. (\d+)/g)].map(([, host, port]) => ({
    host: host!,
    port: Number(port),
  }));
  return { targets, local: targets.filter((t) => !t.host.startsWith('127.')).length };
}

if (process.argv[2] === '--load') {
  const [list, concurrency, seconds] = process.argv.slice(3);
  const targets = (list ?? '').split(',').map((t) => {
    const [host, port] = t.split(':');
    return { host: host ?? '127.0.0.1', port: Number(port) };
  });
  await closedLoop(targets, Number(concurrency), Number(seconds));
} else {
  await bench();
}
