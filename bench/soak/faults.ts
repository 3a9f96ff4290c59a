/**
 * The faults, one at a time, a few seconds apart, drawn from a seeded generator: an agent killed
 * (-9) or frozen (SIGSTOP), the operator killed (-9), an engine lost and back empty, each mended
 * after a few seconds; and commits arriving, good and bad. What was done and when is kept as a
 * timeline for the report and for judging failed requests.
 */
import { getOnce } from '../../test/helpers/load-loop.js';
import type { TestEngine } from '../../test/helpers/multi-node.js';
import type { SoakCluster } from './cluster.js';
import type { Random } from './random.js';
import {
  badFiles,
  describeVariant,
  goodFiles,
  nextGoodVariant,
  type BadKind,
  type GoodVariant,
} from './service.js';
import type { DownWindows, Window } from './traffic.js';

export type FaultKind =
  'agent-kill' | 'agent-stop' | 'operator-kill' | 'engine-restart' | 'good-commit' | 'bad-commit';

const WEIGHTS: readonly (readonly [FaultKind, number])[] = [
  ['agent-kill', 2],
  ['agent-stop', 2],
  ['operator-kill', 1],
  ['engine-restart', 1],
  ['good-commit', 2],
  ['bad-commit', 2],
];

/** How long an entry node's mesh port is waited for after its agent is back, at most. */
const ENTRY_BACK_CAP_MS = 60_000;

export interface FaultRecord {
  kind: FaultKind;
  target: string;
  detail: string;
  /** Milliseconds since the soak started. */
  startedAt: number;
  endedAt: number;
}

export interface CommitLog {
  shape: { replicas: number; published: number };
  lastGood: { revision: string; variant: GoodVariant };
  good: { revision: string; variant: GoodVariant }[];
  bad: { revision: string; kind: BadKind }[];
  seenVariants: Set<string>;
  counter: number;
}

export class FaultInjector {
  readonly timeline: FaultRecord[] = [];
  /**
   * Per node: when its agent was killed or frozen (until the node's published port answered again
   * after the agent was back), and when its engine was down.
   */
  readonly down: DownWindows = { agent: new Map(), engine: new Map() };
  private readonly closing: Promise<void>[] = [];

  constructor(
    private readonly cluster: SoakCluster,
    private readonly random: Random,
    readonly commits: CommitLog,
    private readonly startedAt: number,
    private readonly print: (line: string) => void,
  ) {}

  private since(): number {
    return Date.now() - this.startedAt;
  }

  /** Faults until `durationMs` have passed (the last one is mended before this returns). */
  async runFor(durationMs: number): Promise<void> {
    const end = Date.now() + durationMs;
    while (Date.now() < end) {
      await this.cluster.reviveExited();
      await this.inject(this.random.weighted(WEIGHTS));
      await sleep(this.random.int(2000, 6000));
    }
    await this.cluster.reviveExited();
  }

  /** Waits until every entry node whose agent came back answers again (or its cap passed). */
  async settle(): Promise<void> {
    await Promise.all(this.closing);
  }

  private async inject(kind: FaultKind): Promise<void> {
    const startedAt = this.since();
    const { target, detail } = await this.apply(kind);
    const record: FaultRecord = { kind, target, detail, startedAt, endedAt: this.since() };
    this.timeline.push(record);
    this.print(`${formatAt(startedAt)}  ${kind.padEnd(14)} ${target.padEnd(12)} ${detail}`);
  }

  private async apply(kind: FaultKind): Promise<{ target: string; detail: string }> {
    switch (kind) {
      case 'agent-kill':
      case 'agent-stop':
        return this.agentFault(kind, this.random.pick(this.cluster.engines));
      case 'operator-kill': {
        const downMs = this.random.int(1000, 5000);
        await this.cluster.killOperator();
        await sleep(downMs);
        await this.cluster.startOperator();
        return { target: 'operator', detail: `down ${seconds(downMs)}, restarted on the same state dir` };
      }
      case 'engine-restart':
        return this.engineFault(this.random.pick(this.cluster.engines));
      case 'good-commit':
        return this.goodCommit();
      case 'bad-commit':
        return this.badCommit(this.random.pick(['unhealthy', 'crash', 'invalid-yaml'] as const));
    }
  }

  private async agentFault(
    kind: 'agent-kill' | 'agent-stop',
    engine: TestEngine,
  ): Promise<{
    target: string;
    detail: string;
  }> {
    const downMs = this.random.int(2000, 8000);
    const window: Window = { from: Date.now(), to: Number.POSITIVE_INFINITY };
    this.down.agent.set(engine.node, [...(this.down.agent.get(engine.node) ?? []), window]);
    if (kind === 'agent-kill') {
      await this.cluster.killAgent(engine);
      await sleep(downMs);
      await this.cluster.startAgent(engine);
    } else {
      const agent = this.cluster.agentOf(engine);
      agent.child.kill('SIGSTOP');
      await sleep(downMs);
      agent.child.kill('SIGCONT');
    }
    const backAt = Date.now();
    this.closing.push(this.closeWhenAnswering(engine, window, backAt));
    const how = kind === 'agent-kill' ? 'killed (-9), restarted' : 'frozen (SIGSTOP), SIGCONT';
    return { target: engine.node, detail: `agent ${how} after ${seconds(downMs)}` };
  }

  /** The agent-down window ends when the node's mesh port answers 200 again. */
  private async closeWhenAnswering(engine: TestEngine, window: Window, backAt: number): Promise<void> {
    const cap = backAt + ENTRY_BACK_CAP_MS;
    while (Date.now() < cap) {
      const ok = await getOnce(engine.address, this.cluster.published, 1000).then(
        (a) => a.status === 200,
        () => false,
      );
      if (ok) break;
      await sleep(200);
    }
    window.to = Math.min(Date.now(), cap);
    const late = window.to - backAt;
    if (late > 2000) {
      this.print(
        `${formatAt(this.since())}  (the mesh port of ${engine.node} answered ${seconds(late)} after its agent was back)`,
      );
    }
  }

  private async engineFault(engine: TestEngine): Promise<{ target: string; detail: string }> {
    const downMs = this.random.int(2000, 6000);
    const t0 = Date.now();
    const window: Window = { from: t0, to: Number.POSITIVE_INFINITY };
    this.down.engine.set(engine.node, [...(this.down.engine.get(engine.node) ?? []), window]);
    await this.cluster.stopEngine(engine);
    const stoppedMs = Date.now() - t0;
    await sleep(downMs);
    const t1 = Date.now();
    try {
      await this.cluster.startEngine(engine);
    } finally {
      window.to = Date.now();
    }
    return {
      target: engine.node,
      detail: `engine stopped (containers gone, ${seconds(stoppedMs)}), down ${seconds(downMs)}, started empty (${seconds(Date.now() - t1)})`,
    };
  }

  private async goodCommit(): Promise<{ target: string; detail: string }> {
    const c = this.commits;
    const change = this.random.pick(['image', 'env'] as const);
    const variant = nextGoodVariant(c.lastGood.variant, change, c.seenVariants, () => ++c.counter);
    const revision = await this.cluster.repo.commit(
      goodFiles(c.shape, variant),
      `good: ${describeVariant(variant)}`,
    );
    c.good.push({ revision, variant });
    c.lastGood = { revision, variant };
    return { target: revision.slice(0, 12), detail: describeVariant(variant) };
  }

  private async badCommit(kind: BadKind): Promise<{ target: string; detail: string }> {
    const c = this.commits;
    const revision = await this.cluster.repo.commit(
      badFiles(c.shape, kind, c.lastGood.variant),
      `bad: ${kind}`,
    );
    c.bad.push({ revision, kind });
    const what = {
      unhealthy: 'replicas fail their health check',
      crash: 'berth-test/crash:v1 (exits at once)',
      'invalid-yaml': 'app.yaml is not YAML',
    }[kind];
    return { target: revision.slice(0, 12), detail: `bad: ${what}` };
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function formatAt(ms: number): string {
  return `+${(ms / 1000).toFixed(1).padStart(6)}s`;
}
