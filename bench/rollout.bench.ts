/**
 * npm run bench:rollout — the same health-gated rolling update of a 10-replica service done by
 * berth and by Docker Swarm on the local engine, side by side, several rounds each.
 *
 * Both sides: busybox httpd (berth-test/web, offline stand-in images), an http health check
 * every 1 s, parallelism 2, order start-first, a 1 s monitor window, an init process so a stop
 * is quick. berth runs in-process (one reconcile per round, as `berth apply` does without the
 * process start); Swarm runs `docker service update --detach=false`, which returns once the
 * service has converged and passed its monitor window. The swarm is created for the benchmark
 * and left afterwards (unless this engine already was in a swarm, which is then left alone).
 *
 * Prints both medians, the floor (batches x median time to start one replica and see it healthy
 * + one monitor window), berth's time as a multiple of that floor, and last `ratio=berth/swarm`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { createDockerRuntime } from '../src/agent/docker-runtime.js';
import { createLocalAgent } from '../src/agent/local-agent.js';
import { silentLogger } from '../src/core/log.js';
import { createGitRevisionSource } from '../src/operator/git-revision-source.js';
import { reconcile, type ReconcileDeps } from '../src/operator/reconcile.js';
import { StateStore } from '../src/operator/state-store.js';
import { openGitSource } from '../src/source/git-source.js';
import { createTestRepo } from '../test/helpers/git-repo.js';

const exec = promisify(execFile);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const REPLICAS = 10;
const PARALLELISM = 2;
const MONITOR_S = 1;
const NS = 'bench';
const SWARM_SERVICE = 'berth-bench-web';

function manifest(image: string): Record<string, string> {
  return {
    'bench.yaml': `apiVersion: berth/v1
kind: Namespace
metadata: { name: ${NS} }
---
apiVersion: berth/v1
kind: Service
metadata: { name: web, namespace: ${NS} }
spec:
  image: ${image}
  replicas: ${REPLICAS}
  ports: [{ target: 8080 }]
  healthcheck: { http: { port: 8080, path: / }, interval: 1s, timeout: 1s, retries: 3 }
  update: { parallelism: ${PARALLELISM}, order: start-first, delay: 0s, monitor: ${MONITOR_S}s }
  init: true
`,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

async function benchBerth(): Promise<{ times: number[]; startToHealthy: number[] }> {
  const stateDir = await mkdtemp(join(tmpdir(), 'berth-bench-'));
  const repo = await createTestRepo(manifest('berth-test/web:v1'));
  const log = silentLogger();
  const agent = createLocalAgent({
    runtime: createDockerRuntime(),
    nodeName: 'local',
    stateDir: join(stateDir, 'agent'),
    log,
  });
  const git = await openGitSource({ repo: repo.dir, cacheDir: join(stateDir, 'git-cache'), log });
  const startToHealthy: number[] = [];
  const deps: ReconcileDeps = {
    source: createGitRevisionSource({ git, repo: repo.dir, branch: 'main', path: '.' }),
    agents: () => new Map([['local', agent]]),
    store: new StateStore(stateDir),
    log,
    readSecret: null,
    onEvent: (event) => {
      if (event.type === 'replica-healthy') startToHealthy.push(event.ms);
    },
  };
  const times: number[] = [];
  try {
    const initial = await reconcile(deps);
    if (initial.outcome !== 'succeeded')
      throw new Error(`initial deploy: ${initial.outcome} ${initial.reason ?? ''}`);
    startToHealthy.length = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      await repo.commit(manifest(round % 2 ? 'berth-test/web:v2' : 'berth-test/web:v1'), `round ${round}`);
      const t0 = performance.now();
      const result = await reconcile(deps);
      const ms = performance.now() - t0;
      if (result.outcome !== 'succeeded')
        throw new Error(`round ${round}: ${result.outcome} ${result.reason ?? ''}`);
      times.push(ms);
      console.log(`berth round ${round}: ${s(ms)}`);
    }
  } finally {
    const docker = new Docker();
    const left = await docker.listContainers({ all: true, filters: { label: [`berth.namespace=${NS}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    await agent.close();
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  }
  return { times, startToHealthy };
}

async function docker(...args: string[]): Promise<string> {
  const { stdout } = await exec('docker', args, { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

async function benchSwarm(): Promise<number[]> {
  const state = await docker('info', '--format', '{{.Swarm.LocalNodeState}}');
  const ownSwarm = state !== 'active';
  if (ownSwarm) await docker('swarm', 'init', '--advertise-addr', '127.0.0.1');
  const times: number[] = [];
  try {
    await docker(
      'service',
      'create',
      '--detach=false',
      '--quiet',
      '--name',
      SWARM_SERVICE,
      '--replicas',
      String(REPLICAS),
      '--health-cmd',
      'wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1',
      '--health-interval',
      '1s',
      '--health-timeout',
      '1s',
      '--health-retries',
      '3',
      '--health-start-period',
      '0s',
      '--update-parallelism',
      String(PARALLELISM),
      '--update-order',
      'start-first',
      '--update-delay',
      '0s',
      '--update-monitor',
      `${MONITOR_S}s`,
      '--update-failure-action',
      'rollback',
      '--init',
      'berth-test/web:v1',
    );
    for (let round = 1; round <= ROUNDS; round++) {
      const image = round % 2 ? 'berth-test/web:v2' : 'berth-test/web:v1';
      const t0 = performance.now();
      await docker('service', 'update', '--detach=false', '--quiet', '--image', image, SWARM_SERVICE);
      const ms = performance.now() - t0;
      times.push(ms);
      console.log(`swarm round ${round}: ${s(ms)}`);
    }
  } finally {
    await docker('service', 'rm', SWARM_SERVICE).catch(() => '');
    if (ownSwarm) await docker('swarm', 'leave', '--force').catch(() => '');
  }
  return times;
}

const berth = await benchBerth();
const swarm = await benchSwarm();
const berthMedian = median(berth.times);
const swarmMedian = median(swarm);
const batches = Math.ceil(REPLICAS / PARALLELISM);
const oneReplica = median(berth.startToHealthy);
const floor = batches * oneReplica + MONITOR_S * 1000;
console.log('');
console.log(
  `rolling update of ${REPLICAS} replicas, parallelism ${PARALLELISM}, start-first, http check every 1 s, monitor ${MONITOR_S} s; ${ROUNDS} rounds each`,
);
console.log(`berth median: ${s(berthMedian)}`);
console.log(`swarm median: ${s(swarmMedian)}`);
console.log(
  `floor: ${batches} batches x ${s(oneReplica)} (median start-to-healthy of one replica) + ${MONITOR_S} s monitor = ${s(floor)}`,
);
console.log(`berth / floor: ${(berthMedian / floor).toFixed(2)}x (target <= 1.5x)`);
console.log(`ratio=${(berthMedian / swarmMedian).toFixed(3)}`);
