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
 * The floor is the engine's alone, measured in the same run: the same rolling update done
 * straight on the engine by an ideal orchestrator that does not create ahead (same image, init,
 * port published on 127.0.0.1, the same http check probed back to back, the same batches, each
 * created, started and answering before the next; old containers stopped in the background; one
 * monitor window at the end). berth beats it only by what it overlaps (the next batch created
 * while the current one starts). Prints the medians, berth / floor (target < 1.0x), berth /
 * swarm and last `ratio=berth/swarm`. BENCH_SWARM=0 leaves Swarm out; BENCH_TRACE=1 prints
 * berth's rollout events with their times, BENCH_TRACE_LOG=FILE writes its debug log there.
 *
 * berth's code is the build in dist/ (`npm run build` first; the bench refuses a stale one).
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { pino } from 'pino';
import type { ReconcileDeps } from '../src/operator/reconcile.js';
import type { RolloutEvent } from '../src/rollout/apply-plan.js';
import { builtIsCurrent } from '../test/helpers/berth-cli.js';
import { createTestRepo } from '../test/helpers/git-repo.js';

// berth as it ships: the build in dist/, as the floor and Swarm are native code. From source,
// every reconcile's manifest loader thread (started again after 5 s idle, so once per round)
// would register tsx and compile berth's TypeScript first: 0.3-0.6 s a round that no user pays.
if (!builtIsCurrent()) throw new Error('dist/ is older than src/: run `npm run build` first');
const dist = new URL('../dist/', import.meta.url).href;
/** A module of the build, typed as its source. */
const built = <T>(path: string): Promise<T> => import(`${dist}${path}`) as Promise<T>;
const { createDockerRuntime } =
  await built<typeof import('../src/agent/docker-runtime.js')>('agent/docker-runtime.js');
const { createLocalAgent } =
  await built<typeof import('../src/agent/local-agent.js')>('agent/local-agent.js');
const { silentLogger } = await built<typeof import('../src/core/log.js')>('core/log.js');
const { createGitRevisionSource } = await built<typeof import('../src/operator/git-revision-source.js')>(
  'operator/git-revision-source.js',
);
const { reconcile } = await built<typeof import('../src/operator/reconcile.js')>('operator/reconcile.js');
const { StateStore } =
  await built<typeof import('../src/operator/state-store.js')>('operator/state-store.js');
const { openGitSource } = await built<typeof import('../src/source/git-source.js')>('source/git-source.js');

const exec = promisify(execFile);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const REPLICAS = 10;
const PARALLELISM = 2;
const MONITOR_S = 1;
const NS = 'bench';
const SWARM_SERVICE = 'berth-bench-web';
/** BENCH_TRACE=1: every rollout event of berth's rounds, at its time since the round began. */
const TRACE = process.env['BENCH_TRACE'] === '1';
/** BENCH_TRACE_LOG=FILE: berth's own log lines, debug level, as JSON into FILE. */
const TRACE_LOG = process.env['BENCH_TRACE_LOG'];

function traceEvent(atMs: number, event: RolloutEvent): void {
  const { type, ...rest } = event;
  const what = 'name' in rest ? rest.name : 'batch' in rest ? `${rest.batch}/${rest.batches}` : '';
  const ms = 'ms' in rest ? ` (${rest.ms} ms)` : '';
  console.log(`  ${(atMs / 1000).toFixed(3)} s ${type} ${what}${ms}`);
}

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

/** `between(round)` runs after each of berth's rounds: the floor's round, so both see the same load. */
async function benchBerth(
  between: (round: number) => Promise<void>,
): Promise<{ times: number[]; startToHealthy: number[]; beforeFirstStart: number[] }> {
  const stateDir = await mkdtemp(join(tmpdir(), 'berth-bench-'));
  const repo = await createTestRepo(manifest('berth-test/web:v1'));
  const log = TRACE_LOG ? pino({ level: 'debug' }, pino.destination(TRACE_LOG)) : silentLogger();
  const agent = createLocalAgent({
    runtime: createDockerRuntime(),
    nodeName: 'local',
    stateDir: join(stateDir, 'agent'),
    log,
  });
  const git = await openGitSource({ repo: repo.dir, cacheDir: join(stateDir, 'git-cache'), log });
  const startToHealthy: number[] = [];
  const beforeFirstStart: number[] = [];
  let roundStart = performance.now();
  const deps: ReconcileDeps = {
    source: createGitRevisionSource({ git, repo: repo.dir, branch: 'main', path: '.' }),
    agents: () => new Map([['local', agent]]),
    store: new StateStore(stateDir),
    log,
    readSecret: null,
    onEvent: (event) => {
      if (event.type === 'replica-healthy') startToHealthy.push(event.ms);
      if (event.type === 'service-started') beforeFirstStart.push(performance.now() - roundStart);
      if (TRACE) traceEvent(performance.now() - roundStart, event);
    },
  };
  const times: number[] = [];
  try {
    const initial = await reconcile(deps);
    if (initial.outcome !== 'succeeded')
      throw new Error(`initial deploy: ${initial.outcome} ${initial.reason ?? ''}`);
    startToHealthy.length = 0;
    beforeFirstStart.length = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      await repo.commit(manifest(round % 2 ? 'berth-test/web:v2' : 'berth-test/web:v1'), `round ${round}`);
      const t0 = performance.now();
      roundStart = t0;
      const result = await reconcile(deps);
      const ms = performance.now() - t0;
      if (result.outcome !== 'succeeded')
        throw new Error(`round ${round}: ${result.outcome} ${result.reason ?? ''}`);
      times.push(ms);
      console.log(`berth round ${round}: ${s(ms)}`);
      await between(round);
    }
  } finally {
    const docker = new Docker();
    const left = await docker.listContainers({ all: true, filters: { label: [`berth.namespace=${NS}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    await agent.close();
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  }
  return { times, startToHealthy, beforeFirstStart };
}

const FLOOR_LABEL = 'berth-bench.rollout-floor';

/** GET / on the published port until it answers 200, back to back (10 ms apart): no prober is faster. */
async function untilAnswering(port: number): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const request = http.get(
        { host: '127.0.0.1', port, path: '/', agent: false, timeout: 1000 },
        (response) => {
          response.resume();
          resolve(response.statusCode === 200);
        },
      );
      request.on('timeout', () => request.destroy());
      request.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** One replica from nothing to answering: create, start, find its port, probe until it answers. */
/** Where the floor's time goes, per replica of its rounds (ms). */
const floorSteps = { create: [] as number[], start: [] as number[], answer: [] as number[] };

async function startAnswering(engine: Docker, name: string, image: string): Promise<Docker.Container> {
  const t0 = performance.now();
  const container = await engine.createContainer({
    name,
    Image: image,
    Labels: { [FLOOR_LABEL]: 'true' },
    ExposedPorts: { '8080/tcp': {} },
    StopTimeout: 10,
    HostConfig: { Init: true, PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
  });
  const t1 = performance.now();
  await container.start();
  const t2 = performance.now();
  const info = await container.inspect();
  const port = Number(info.NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort);
  await untilAnswering(port);
  floorSteps.create.push(t1 - t0);
  floorSteps.start.push(t2 - t1);
  floorSteps.answer.push(performance.now() - t2);
  return container;
}

/**
 * The engine's floor for the same rolling update, with an ideal orchestrator that does not create
 * ahead: the same containers (image, init, the port published on 127.0.0.1, the same http check
 * probed back to back), batch after batch, each from nothing to answering; the old ones of a
 * batch are stopped and removed in the background once it answers; a round is done when the last
 * monitor window has passed and every old container is gone.
 */
async function openFloor(): Promise<{ round(round: number): Promise<number>; close(): Promise<void> }> {
  const engine = new Docker();
  let current: Docker.Container[] = [];
  for (let i = 0; i < REPLICAS; i++)
    current.push(await startAnswering(engine, `berth-bench-floor-r0-${i}`, 'berth-test/web:v1'));
  return {
    async round(round) {
      if (round === 1) for (const steps of Object.values(floorSteps)) steps.length = 0;
      const image = round % 2 ? 'berth-test/web:v2' : 'berth-test/web:v1';
      const t0 = performance.now();
      const next: Docker.Container[] = [];
      const stopping: Promise<unknown>[] = [];
      for (let first = 0; first < REPLICAS; first += PARALLELISM) {
        const olds = current.slice(first, first + PARALLELISM);
        const started = await Promise.all(
          olds.map((_, k) => startAnswering(engine, `berth-bench-floor-r${round}-${first + k}`, image)),
        );
        next.push(...started);
        stopping.push(...olds.map((old) => old.stop({ t: 10 }).then(() => old.remove({ force: true }))));
      }
      await Promise.all([...stopping, new Promise((resolve) => setTimeout(resolve, MONITOR_S * 1000))]);
      current = next;
      return performance.now() - t0;
    },
    async close() {
      const left = await engine.listContainers({ all: true, filters: { label: [FLOOR_LABEL] } });
      await Promise.all(left.map((c) => engine.getContainer(c.Id).remove({ force: true })));
    },
  };
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

const floorTimes: number[] = [];
const berth = await (async () => {
  const floorRun = await openFloor();
  try {
    return await benchBerth(async (round) => {
      const ms = await floorRun.round(round);
      floorTimes.push(ms);
      console.log(`floor round ${round}: ${s(ms)}`);
    });
  } finally {
    await floorRun.close();
  }
})();
// BENCH_SWARM=0 leaves Swarm out (while tuning berth); the ratio to Swarm is then not printed.
const swarm = process.env['BENCH_SWARM'] === '0' ? [] : await benchSwarm();
const berthMedian = median(berth.times);
const floor = median(floorTimes);
const batches = Math.ceil(REPLICAS / PARALLELISM);
console.log('');
console.log(
  `rolling update of ${REPLICAS} replicas, parallelism ${PARALLELISM}, start-first, http check every 1 s, monitor ${MONITOR_S} s; ${ROUNDS} rounds each`,
);
console.log(`berth median: ${s(berthMedian)}`);
console.log(
  `berth before its rollout begins (median: revision read, manifests loaded, nodes observed, planned): ${s(median(berth.beforeFirstStart))}`,
);
console.log(
  `berth's own start-to-healthy of one replica (median, its creation ahead included): ${s(median(berth.startToHealthy))}`,
);
console.log(
  `floor median: ${s(floor)} (the engine alone: ${batches} batches one after the other, each created, started and answering, + ${MONITOR_S} s monitor)`,
);
console.log(
  `floor per replica (median): create ${s(median(floorSteps.create))}, start ${s(median(floorSteps.start))}, start to answering ${s(median(floorSteps.answer))}`,
);
if (swarm.length > 0) console.log(`swarm median: ${s(median(swarm))}`);
console.log(`berth / floor: ${(berthMedian / floor).toFixed(2)}x (target < 1.0x)`);
if (swarm.length > 0) {
  const ratio = berthMedian / median(swarm);
  console.log(`berth / swarm: ${ratio.toFixed(2)}x`);
  console.log(`ratio=${ratio.toFixed(3)}`);
}
