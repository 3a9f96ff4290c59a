/**
 * npm run bench:idle — what an operator and an agent cost while nothing changes.
 *
 * The operator: `berth run` as built (bin/berth.js: run `npm run build` first) against a local
 * repository of 100 one-replica services (busybox sleepers, the offline test images) on its
 * embedded node, default settings. Once every service runs and the operator is Ready, and after a
 * settle, its RSS and CPU are read from /proc/PID over 30 s.
 *
 * The agent: `berth agent` on the same engine under the same node name (so it follows the same
 * 100 containers), asked once for a snapshot and then holding an operator's long poll for changes,
 * as a connected operator keeps it; its RSS and CPU over the same kind of window.
 *
 * Each figure is printed beside its target. Every container and process made is removed
 * afterwards, also on failure. BENCH_SERVICES and BENCH_IDLE_SECONDS change the size and window.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { createAgentClient } from '../src/agent/client.js';
import { eventually, startBerth, targetArgs, type BerthProcess } from '../test/helpers/berth-cli.js';
import { requireTestImages } from '../test/helpers/docker.js';
import { createTestRepo, type TestRepo } from '../test/helpers/git-repo.js';
import { manifestFile, namespaceManifest, sleeperService } from '../test/helpers/manifests.js';

const SERVICES = Number(process.env['BENCH_SERVICES'] ?? 100);
const WINDOW_S = Number(process.env['BENCH_IDLE_SECONDS'] ?? 30);
/**
 * From a burst (the deploy, the agent's start and first snapshot) to the idle window: V8 gives a
 * burst's garbage back to the system only when its memory reducer runs, 8 s after the burst at
 * the earliest; until then the process is not idle yet. The peak of these seconds is printed too.
 */
const SETTLE_MS = 15_000;
const NS = 'idlebench';
const NODE = 'idlebench';
/** Clock ticks per second of /proc/PID/stat (USER_HZ, 100 on every Linux berth runs on). */
const USER_HZ = 100;
const TARGETS = { operatorMiB: 100, operatorCpuPercent: 1, agentMiB: 60 };

const docker = new Docker();

function manifests(): Record<string, string> {
  const services = Array.from({ length: SERVICES }, (_, i) =>
    sleeperService({ name: `s${String(i).padStart(3, '0')}`, namespace: NS }),
  );
  return { 'deploy/idle.yaml': manifestFile(namespaceManifest(NS), ...services) };
}

async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime: fields 14 and 15 of stat(5), 12 and 13 after the command name.
  return Number(fields[11]) + Number(fields[12]);
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  return kib / 1024;
}

interface IdleFigures {
  rssMiB: number;
  peakRssMiB: number;
  cpuPercent: number;
  /** The peak of the settle between the burst and the window. */
  afterBurstMiB?: number;
}

/** RSS (last and peak, read every second) and the share of one core used over the window. */
/** The highest RSS while settling (MiB), read every second. */
async function settlePeak(pid: number): Promise<number> {
  let peak = 0;
  for (let waited = 0; waited < SETTLE_MS; waited += 1000) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    peak = Math.max(peak, await rssMiB(pid));
  }
  return peak;
}

async function sampleIdle(pid: number): Promise<IdleFigures> {
  const ticks0 = await cpuTicks(pid);
  const t0 = performance.now();
  let peak = 0;
  for (let i = 0; i < WINDOW_S; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    peak = Math.max(peak, await rssMiB(pid));
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpuPercent = (((await cpuTicks(pid)) - ticks0) / USER_HZ / seconds) * 100;
  return { rssMiB: await rssMiB(pid), peakRssMiB: peak, cpuPercent };
}

async function runningServices(): Promise<number> {
  const list = await docker.listContainers({ filters: { label: [`berth.namespace=${NS}`] } });
  return list.length;
}

/** The process runs the built CLI, not TypeScript through tsx: what is measured is what ships. */
async function assertBuilt(process: BerthProcess): Promise<void> {
  const cmdline = (await readFile(`/proc/${process.child.pid}/cmdline`, 'utf8')).split('\0');
  if (!cmdline.some((arg) => arg.endsWith('bin/berth.js')))
    throw new Error('dist/ is older than src/: run `npm run build` first, so the built CLI is measured');
}

async function benchOperator(repo: TestRepo, stateDir: string): Promise<IdleFigures> {
  const operator = await startBerth('run', [
    ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node: NODE }),
    ...['--listen', '127.0.0.1:0'],
  ]);
  try {
    await assertBuilt(operator);
    await eventually(
      `${SERVICES} services running`,
      async () => (await runningServices()) === SERVICES,
      300_000,
      500,
    );
    await eventually(
      'the operator Ready',
      async () => {
        const health = (await (await fetch(`${operator.url}/healthz`)).json()) as { status: string };
        return health.status === 'ok';
      },
      120_000,
      500,
    );
    const afterBurstMiB = await settlePeak(operator.child.pid!);
    return { ...(await sampleIdle(operator.child.pid!)), afterBurstMiB };
  } finally {
    await operator.stop('SIGTERM');
  }
}

async function benchAgent(stateDir: string): Promise<IdleFigures> {
  const agent = await startBerth(
    'agent',
    [...['--listen', '127.0.0.1:0', '--insecure-http', '--node', NODE, '--state-dir', stateDir]],
    { env: { BERTH_AGENT_TOKEN: 'idle-bench-token' } },
  );
  const client = createAgentClient({ url: agent.url!, token: 'idle-bench-token', nodeName: NODE });
  try {
    await assertBuilt(agent);
    const snapshot = await client.snapshot();
    if (snapshot.replicas.length !== SERVICES)
      throw new Error(`the agent sees ${snapshot.replicas.length} replicas, not ${SERVICES}`);
    const { mark } = await client.awaitChange(null, { timeoutMs: 1 });
    // Held as a connected operator holds it; answered only on a change.
    const polling = client.awaitChange(mark, { timeoutMs: (WINDOW_S + 30) * 1000 }).catch(() => undefined);
    const afterBurstMiB = await settlePeak(agent.child.pid!);
    const figures = { ...(await sampleIdle(agent.child.pid!)), afterBurstMiB };
    await client.close();
    await polling;
    return figures;
  } finally {
    await agent.stop('SIGTERM');
  }
}

const mib = (value: number) => `${value.toFixed(1)} MiB`;
const verdict = (ok: boolean) => (ok ? 'OK' : 'MISSED');

async function main(): Promise<void> {
  await requireTestImages();
  const stateDir = await mkdtemp(join(tmpdir(), 'berth-bench-idle-'));
  const repo = await createTestRepo(manifests());
  try {
    console.log(`idle cost with ${SERVICES} one-replica services on the embedded node, over ${WINDOW_S} s`);
    const operator = await benchOperator(repo, join(stateDir, 'operator'));
    console.log(
      `operator RSS: ${mib(operator.rssMiB)} (peak ${mib(operator.peakRssMiB)})   target <= ${TARGETS.operatorMiB} MiB  ${verdict(operator.peakRssMiB <= TARGETS.operatorMiB)}`,
    );
    console.log(`  in the ${SETTLE_MS / 1000} s after the deploy: peak ${mib(operator.afterBurstMiB ?? 0)}`);
    console.log(
      `operator CPU: ${operator.cpuPercent.toFixed(2)} % of a core   target <= ${TARGETS.operatorCpuPercent} %  ${verdict(operator.cpuPercent <= TARGETS.operatorCpuPercent)}`,
    );
    const agent = await benchAgent(join(stateDir, 'agent'));
    console.log(
      `agent RSS: ${mib(agent.rssMiB)} (peak ${mib(agent.peakRssMiB)})   target <= ${TARGETS.agentMiB} MiB  ${verdict(agent.peakRssMiB <= TARGETS.agentMiB)}`,
    );
    console.log(
      `  in the ${SETTLE_MS / 1000} s after its start and first snapshot: peak ${mib(agent.afterBurstMiB ?? 0)}`,
    );
    console.log(`agent CPU: ${agent.cpuPercent.toFixed(2)} % of a core`);
  } finally {
    const left = await docker.listContainers({ all: true, filters: { label: [`berth.namespace=${NS}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  }
}

await main();
