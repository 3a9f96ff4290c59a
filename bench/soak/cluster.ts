/**
 * What the soak runs: three engines (the multi-node harness), the operator (`berth run
 * --cluster-listen --no-local-node --listen`) and one joined agent per engine, each a real
 * process; and the means to break and mend each of them. Every process the soak did not stop on
 * purpose and that exits is recorded (and started again before the next fault).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  runBerth,
  startBerth,
  targetArgs,
  type BerthProcess,
  type ProcessExit,
} from '../../test/helpers/berth-cli.js';
import { createTestRepo, type TestRepo } from '../../test/helpers/git-repo.js';
import { freePort } from '../../test/helpers/load-loop.js';
import {
  restartEngine,
  startEngineAgent,
  startTestEngines,
  stopEngine,
  type TestEngine,
  type TestEngines,
} from '../../test/helpers/multi-node.js';
import { emptyFiles } from './service.js';

const run = promisify(execFile);

export interface UnexpectedExit {
  at: number;
  who: string;
  exit: ProcessExit;
  /** The last lines it wrote. */
  tail: string;
}

export interface StatusReport {
  head: string | null;
  deployed: { revision: string; at: string } | null;
  converged: boolean | null;
  nodes: { name: string; status: string }[];
}

export class SoakCluster {
  readonly engines: TestEngine[];
  readonly repo: TestRepo;
  readonly stateDir: string;
  readonly published: number;
  readonly unexpectedExits: UnexpectedExit[] = [];
  private operator: BerthProcess | null = null;
  private readonly agents = new Map<string, BerthProcess | null>();
  /** Processes the soak stops itself: their exit is no finding. */
  private readonly stopping = new WeakSet<BerthProcess>();
  private join: { endpoint: string; token: string } | null = null;

  private constructor(
    private readonly cluster: TestEngines,
    private readonly dir: string,
    repo: TestRepo,
    private readonly ports: { cluster: number; listen: number; published: number },
    private readonly startedAt: number,
  ) {
    this.engines = cluster.engines;
    this.repo = repo;
    this.stateDir = join(dir, 'state');
    this.published = ports.published;
  }

  /** Engines, operator and agents, ready; on failure everything started is removed again. */
  static async start(
    startedAt: number,
    register: (cleanup: () => Promise<void>) => void,
  ): Promise<SoakCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'berth-soak-'));
    let engines: TestEngines | null = null;
    let repo: TestRepo | null = null;
    let soak: SoakCluster | null = null;
    register(async () => {
      if (soak) return soak.cleanup();
      await engines?.stop();
      await repo?.cleanup();
      await rm(dir, { recursive: true, force: true });
    });
    engines = await startTestEngines(3, 'soak');
    repo = await createTestRepo(emptyFiles());
    // Fixed ports: the agents find a restarted operator at the same address.
    const ports = { cluster: await freePort(), listen: await freePort(), published: await freePort() };
    const started = new SoakCluster(engines, dir, repo, ports, startedAt);
    soak = started;
    await started.startOperator();
    await Promise.all(started.engines.map((e) => started.startAgent(e)));
    return started;
  }

  /** Once cleanup began nothing starts any more; what was starting meanwhile is stopped again. */
  private closed = false;

  private refuseWhenClosed(): void {
    if (this.closed) throw new Error('the soak is stopping');
  }

  private async keepUnlessClosed(child: BerthProcess): Promise<void> {
    if (!this.closed) return;
    this.stopping.add(child);
    await child.stop('SIGKILL');
    throw new Error('the soak is stopping');
  }

  async startOperator(): Promise<void> {
    this.refuseWhenClosed();
    const operator = await startBerth('run', [
      ...targetArgs({ repo: this.repo.dir, stateDir: this.stateDir }),
      ...['--cluster-listen', `127.0.0.1:${this.ports.cluster}`, '--no-local-node'],
      ...['--listen', `127.0.0.1:${this.ports.listen}`],
    ]);
    await this.keepUnlessClosed(operator);
    this.join ??= operator.join;
    this.operator = operator;
    this.watch(operator, 'operator');
  }

  async startAgent(engine: TestEngine): Promise<void> {
    this.refuseWhenClosed();
    if (!this.join) throw new Error('no join token: the operator never started');
    const agent = await startEngineAgent(engine, this.join, {
      stateDir: join(this.dir, `agent-${engine.index}`),
      args: ['--service-addresses', engine.serviceAddresses],
    });
    await this.keepUnlessClosed(agent);
    this.agents.set(engine.node, agent);
    this.watch(agent, `agent ${engine.node}`);
  }

  private watch(child: BerthProcess, who: string): void {
    void child.exited.then((exit) => {
      if (this.stopping.has(child)) return;
      const tail = child.output().split('\n').slice(-8).join('\n');
      this.unexpectedExits.push({ at: Date.now() - this.startedAt, who, exit, tail });
    });
  }

  agentOf(engine: TestEngine): BerthProcess {
    const agent = this.agents.get(engine.node);
    if (!agent) throw new Error(`no agent runs on ${engine.node}`);
    return agent;
  }

  async killAgent(engine: TestEngine): Promise<void> {
    const agent = this.agentOf(engine);
    this.stopping.add(agent);
    this.agents.set(engine.node, null);
    await agent.stop('SIGKILL');
  }

  async killOperator(): Promise<void> {
    const operator = this.operator;
    if (!operator) throw new Error('no operator runs');
    this.stopping.add(operator);
    this.operator = null;
    await operator.stop('SIGKILL');
  }

  /** As a lost host: its containers killed, dockerd stopped, its data gone. */
  stopEngine(engine: TestEngine): Promise<void> {
    return stopEngine(engine);
  }

  /** The host back, empty, with the test images. */
  async startEngine(engine: TestEngine): Promise<void> {
    this.refuseWhenClosed();
    await restartEngine(engine);
    if (this.closed) {
      await stopEngine(engine);
      throw new Error('the soak is stopping');
    }
  }

  /** Starts again what exited without the soak stopping it (recorded in unexpectedExits). */
  async reviveExited(): Promise<void> {
    if (this.closed) return;
    const gone = (p: BerthProcess | null): boolean =>
      p !== null && (p.child.exitCode !== null || p.child.signalCode !== null);
    if (gone(this.operator)) await this.startOperator();
    for (const engine of this.engines) {
      if (gone(this.agents.get(engine.node) ?? null)) await this.startAgent(engine);
    }
  }

  /** `berth status --format json` against the state dir (asks the operator). */
  async status(): Promise<StatusReport> {
    const result = await runBerth(['status', '--state-dir', this.stateDir, '--format', 'json']);
    if (result.code !== 0) throw new Error(`berth status exited ${result.code}: ${result.stderr.trim()}`);
    return JSON.parse(result.stdout) as StatusReport;
  }

  private cleaned: Promise<void> | null = null;

  /** Stops and removes everything: processes, engines, bridges, routes, temp dirs. Once. */
  cleanup(): Promise<void> {
    this.cleaned ??= (async () => {
      this.closed = true;
      // SIGKILL also ends a process the soak froze with SIGSTOP.
      const processes = [this.operator, ...this.agents.values()].filter((p): p is BerthProcess => p !== null);
      for (const p of processes) this.stopping.add(p);
      await Promise.all(processes.map((p) => p.stop('SIGKILL')));
      await this.cluster.stop();
      // The agents made their service-address ranges local to this host; nothing else removes them.
      for (const engine of this.engines) {
        await run('ip', [
          'route',
          'del',
          'local',
          engine.serviceAddresses,
          'dev',
          'lo',
          'table',
          'local',
        ]).catch(() => undefined);
      }
      await this.repo.cleanup();
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.cleaned;
  }
}
