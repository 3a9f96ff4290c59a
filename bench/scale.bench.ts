/**
 * npm run bench:scale — the real operator (`berth run --cluster-listen --no-local-node`, its own
 * process) against 100 simulated nodes: real agents (createLocalAgent) joined with the token and
 * served over mutual TLS, on an in-memory runtime (bench/scale/memory-runtime.ts), in a few
 * processes of their own so the operator's figures are its own. One node is alone in its process,
 * so that losing it (SIGSTOP: silent, as a power cut) loses nothing else.
 *
 * With 1000 services of 3 replicas (no health check, parallelism 1, no monitor window) it measures
 * and prints, each beside its target: converge from empty (commit to rollout done, minus the
 * simulated start latency of the 3 batches on each service's path), a rolling update of 100
 * services, a node lost until its replicas run elsewhere, the operator's CPU while idle with 100
 * nodes (heartbeats, observation), and its RSS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../test/helpers/load-loop.js';
import { SCHEDULE_NEVER, startBerth, targetArgs, type BerthProcess } from '../test/helpers/berth-cli.js';
import { createTestRepo, type TestRepo } from '../test/helpers/git-repo.js';

const NODES = Number(process.env['BENCH_NODES'] ?? 100);
const SERVICES = Number(process.env['BENCH_SERVICES'] ?? 1000);
const REPLICAS = 3;
const AGENT_PROCESSES = 3;
const START_LATENCY_MS = 100;
const IDLE_SECONDS = 10;
const NS = 'scale';

function manifests(revision: string, updated: number): Record<string, string> {
  const docs = [`apiVersion: berth/v1\nkind: Namespace\nmetadata: { name: ${NS} }\n`];
  for (let i = 0; i < SERVICES; i++) {
    docs.push(`apiVersion: berth/v1
kind: Service
metadata: { name: svc-${i}, namespace: ${NS} }
spec:
  image: berth-test/web:v1
  replicas: ${REPLICAS}
  env: { REVISION: "${i < updated ? revision : 'r0'}" }
  update: { parallelism: 1, monitor: 0s }
`);
  }
  return { 'services.yaml': docs.join('---\n') };
}

/** The operator's JSON log lines as they come: waits for a message logged after a point in time. */
class LogWatch {
  private lines: { time: number; msg: string; raw: string }[] = [];
  private waiters: (() => void)[] = [];
  constructor(child: ChildProcess) {
    // BENCH_LOG=FILE keeps the operator's whole log, for a look at what it did.
    const keep = process.env['BENCH_LOG'] ? createWriteStream(process.env['BENCH_LOG']) : null;
    createInterface({ input: child.stderr! }).on('line', (raw) => {
      keep?.write(`${raw}\n`);
      try {
        const { time, msg } = JSON.parse(raw) as { time: number; msg: string };
        this.lines.push({ time, msg, raw });
        if (this.lines.length > 20_000) this.lines = this.lines.slice(-10_000);
      } catch {
        return;
      }
      for (const wake of this.waiters.splice(0)) wake();
    });
  }
  async waitFor(msg: string, after: number, timeoutMs = 120_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find((l) => l.msg === msg && l.time >= after);
      if (hit) return hit.time;
      const error = this.lines.find((l) => l.time >= after && /"level":50/.test(l.raw));
      if (error) throw new Error(`operator error: ${error.raw}`);
      if (Date.now() > deadline) throw new Error(`no "${msg}" within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 1000);
      });
    }
  }
  /** Resolves once nothing was logged for `quietMs`. */
  async quiet(quietMs: number): Promise<void> {
    while (Date.now() - (this.lines.at(-1)?.time ?? 0) < quietMs)
      await new Promise((r) => setTimeout(r, 200));
  }
}

function startAgents(url: string, token: string, stateDir: string, nodes: string[]): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, 'scale', 'sim-agents.ts'),
      url,
      token,
      stateDir,
      String(START_LATENCY_MS),
      ...nodes,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === 'ready-all') resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`simulated agents exited (${code})`)));
  });
}

/** utime + stime of a process, in seconds (Linux /proc). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function memoryMiB(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const row = (what: string, value: string, target: string, ok: boolean | null): void =>
  console.log(
    `${what.padEnd(44)} ${value.padStart(12)}   target ${target}${ok === null ? '' : ok ? '   ok' : '   MISSED'}`,
  );

async function run(dir: string, repo: TestRepo): Promise<void> {
  const stateDir = join(dir, 'operator');
  const port = await freePort();
  const operator: BerthProcess = await startBerth(
    'run',
    [
      ...targetArgs({ repo: repo.dir, stateDir }),
      ...['--cluster-listen', `127.0.0.1:${port}`, '--no-local-node'],
      ...SCHEDULE_NEVER,
    ],
    // BENCH_OPERATOR_NODE_OPTIONS: NODE_OPTIONS for the operator alone (an --import that profiles it).
    { env: { NODE_OPTIONS: process.env['BENCH_OPERATOR_NODE_OPTIONS'] ?? '' } },
  );
  const agents: ChildProcess[] = [];
  try {
    const log = new LogWatch(operator.child);
    const pid = operator.child.pid ?? 0;
    const { endpoint, token } = operator.join!;
    const names = Array.from({ length: NODES }, (_, i) => `sim-${String(i).padStart(3, '0')}`);
    const t0 = Date.now();
    const [victim, ...rest] = names;
    const per = Math.ceil(rest.length / AGENT_PROCESSES);
    const victimProcess = startAgents(endpoint, token, join(dir, 'agents'), [victim!]);
    const groups = Array.from({ length: AGENT_PROCESSES }, (_, i) => rest.slice(i * per, (i + 1) * per));
    agents.push(
      ...(await Promise.all([
        victimProcess,
        ...groups.map((g) => startAgents(endpoint, token, join(dir, 'agents'), g)),
      ])),
    );
    console.log(`${NODES} simulated nodes joined in ${s(Date.now() - t0)}`);
    await log.quiet(2000);

    const cpu0 = await cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    const idleNodes = ((await cpuSeconds(pid)) - cpu0) / IDLE_SECONDS;

    const tDeploy = Date.now();
    await repo.commit(manifests('r0', 0), `${SERVICES} services`);
    const deployed = await log.waitFor('rollout succeeded', tDeploy);
    const converge = deployed - tDeploy - REPLICAS * START_LATENCY_MS;
    await log.quiet(2000);

    const cpu1 = await cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    const idle = ((await cpuSeconds(pid)) - cpu1) / IDLE_SECONDS;

    const tUpdate = Date.now();
    await repo.commit(manifests('r1', 100), 'update 100 services');
    const updated = (await log.waitFor('rollout succeeded', tUpdate)) - tUpdate;
    await log.quiet(2000);

    const tLost = Date.now();
    agents[0]!.kill('SIGSTOP');
    const rescheduled = (await log.waitFor('rollout succeeded', tLost)) - tLost;
    agents[0]!.kill('SIGKILL');
    const memory = await memoryMiB(pid);

    console.log('');
    console.log(
      `${NODES} simulated nodes, ${SERVICES} services x ${REPLICAS} replicas, start latency ${START_LATENCY_MS} ms (excluded)`,
    );
    row('converge from empty (plan + dispatch)', s(converge), '< 10 s', converge < 10_000);
    row('rolling update of 100 services (3 batches)', s(updated), '(time)', null);
    row('node lost -> its replicas rescheduled', s(rescheduled), '< 10 s', rescheduled < 10_000);
    row(
      `heartbeat cost, ${NODES} nodes idle, no services`,
      `${(idleNodes * 100).toFixed(1)} %`,
      '< 5 % of a core',
      idleNodes < 0.05,
    );
    row(
      `idle cost, ${NODES} nodes, ${SERVICES * REPLICAS} replicas`,
      `${(idle * 100).toFixed(1)} %`,
      '< 5 % of a core',
      idle < 0.05,
    );
    row('operator RSS (peak over the run)', `${memory.peak.toFixed(0)} MiB`, '< 500 MiB', memory.peak < 500);
  } finally {
    for (const agent of agents) agent.kill('SIGKILL');
    await operator.stop('SIGKILL');
  }
}

const dir = await mkdtemp(join(tmpdir(), 'berth-scale-'));
const repo = await createTestRepo({ 'README.md': 'bench:scale\n' });
try {
  await run(dir, repo);
} finally {
  await repo.cleanup();
  await rm(dir, { recursive: true, force: true });
}
