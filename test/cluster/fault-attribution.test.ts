/**
 * A fault of the infrastructure is never blamed on a commit, on three real engines: a node is lost
 * (its agent killed with SIGKILL, or its whole engine stopped) while a rollout starts a batch, while
 * its last monitor window runs, and while a bad commit is rolled back. Each case ends with the
 * intended revision running on the surviving engines with exactly the desired replicas, and no
 * rollback of a good revision in the history. The lost node comes back between cases and the
 * operator removes what it still ran.
 *
 * The moment of the fault is read from the operator's own log (its rollout events), never slept for.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { WrittenUpdatePolicy } from '../../src/manifests/types.js';
import type { HistoryEntry } from '../../src/operator/state-store.js';
import {
  eventually,
  runBerth,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { freePort } from '../helpers/load-loop.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import {
  restartEngine,
  startEngineAgent,
  startTestEngines,
  stopEngine,
  type TestEngine,
  type TestEngines,
} from '../helpers/multi-node.js';

const ns = `fa${Date.now().toString(36)}`;
const SERVICE = `${ns}/web`;
const DESIRED = 6;
/** Bounds every wait on a replica, so a lost call cannot hold a rollout for the default 10 minutes. */
const DEADLINE = '60s';

type Phase = 'mid-batch' | 'monitor window' | 'rollback';
type Fault = 'agent killed' | 'engine stopped';

/** The web service at revision `label` (an env value makes each case's revision its own). */
function app(label: string, update: WrittenUpdatePolicy, command?: string[]): Record<string, string> {
  return {
    'app.yaml': manifestFile(
      namespaceManifest(ns),
      webService({
        namespace: ns,
        replicas: DESIRED,
        env: { CASE: label },
        ...(command ? { command } : {}),
        update: { ...update, progressDeadline: DEADLINE },
        rollback: { parallelism: 1, monitor: '0s', progressDeadline: DEADLINE },
      }),
    ),
  };
}

/** A revision whose replicas pass their health check, then exit 1 three seconds later. */
const CRASHES_AFTER_3S = ['sh', '-c', 'httpd -p 8080 -h /www && sleep 3 && exit 1'];

interface LogLine {
  at: number;
  msg?: string;
  service?: string;
  node?: string;
}

describe('a node lost during a rollout is not blamed on the commit (three engines)', () => {
  let cluster: TestEngines;
  let engines: TestEngine[];
  let repo: TestRepo;
  let dir: string;
  let stateDir: string;
  let operator: BerthProcess;
  let joinCommand: { endpoint: string; token: string };
  const agents = new Map<string, BerthProcess>();

  const startAgent = async (engine: TestEngine): Promise<void> => {
    agents.set(
      engine.node,
      await startEngineAgent(engine, joinCommand, { stateDir: join(dir, `agent-${engine.index}`) }),
    );
  };

  /** The operator's JSON log lines from character `from` on, each with where it starts. */
  const logFrom = (from: number): LogLine[] => {
    const text = operator.stderr();
    const lines: LogLine[] = [];
    let at = from;
    for (const line of text.slice(from).split('\n')) {
      try {
        lines.push({ ...(JSON.parse(line) as Omit<LogLine, 'at'>), at });
      } catch {
        // A line still being written, or not JSON.
      }
      at += line.length + 1;
    }
    return lines;
  };
  const waitForLog = (what: string, from: number, match: (line: LogLine) => boolean, count = 1) =>
    eventually(
      what,
      async () => {
        const found = logFrom(from).filter(match);
        return found.length >= count ? found[count - 1] : null;
      },
      120_000,
      25,
    );

  /** Every container of the web service on `on`, in any state, with its revision. */
  const replicasOn = async (on: TestEngine[]) =>
    (
      await Promise.all(
        on.map(async (engine) =>
          (
            await engine.docker.listContainers({
              all: true,
              filters: { label: [`berth.namespace=${ns}`, 'berth.service=web'] },
            })
          ).map((c) => ({ node: engine.node, state: c.State, revision: c.Labels['berth.revision'] ?? '' })),
        ),
      )
    ).flat();
  /** Exactly the desired replicas on `on`, all running `revision`, and nothing else of the service. */
  const exactlyDesired = async (on: TestEngine[], revision: string): Promise<boolean> => {
    const replicas = await replicasOn(on);
    return (
      replicas.length === DESIRED && replicas.every((r) => r.state === 'running' && r.revision === revision)
    );
  };
  const history = async (): Promise<HistoryEntry[]> => {
    const result = await runBerth(['history', '--state-dir', stateDir, '--format', 'json', '-n', '1000']);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as HistoryEntry[];
  };
  const nodesReady = async (): Promise<boolean> => {
    const result = await runBerth(['node', 'ls', '--state-dir', stateDir, '--format', 'json']);
    const nodes = JSON.parse(result.stdout) as { status: string }[];
    return nodes.length === 3 && nodes.every((n) => n.status === 'ready');
  };
  const deployed = async (): Promise<string> => {
    const status = await runBerth(['status', '--state-dir', stateDir, '--format', 'json']);
    return (JSON.parse(status.stdout) as { deployed: { revision: string } }).deployed.revision;
  };

  before(async () => {
    cluster = await startTestEngines(3, `${ns}n`);
    engines = cluster.engines;
    dir = await mkdtemp(join(tmpdir(), 'berth-faults-'));
    stateDir = join(dir, 'state');
    // The service arrives once every node has joined, so it is spread over all three.
    repo = await createTestRepo({ 'app.yaml': namespaceManifest(ns) });
    operator = await startBerth(
      'run',
      [
        ...targetArgs({ repo: repo.dir, stateDir }),
        ...['--cluster-listen', `127.0.0.1:${await freePort()}`, '--no-local-node'],
        ...SCHEDULE_NEVER,
      ],
      { keep: Infinity },
    );
    assert.ok(operator.join, operator.output());
    joinCommand = operator.join;
    await Promise.all(engines.map((engine) => startAgent(engine)));
    await eventually('three nodes ready', nodesReady, 60_000);
    const first = await repo.commit(app('first', { parallelism: DESIRED, monitor: '0s' }), 'web');
    await eventually('the first revision running', () => exactlyDesired(engines, first), 120_000);
  });

  after(async () => {
    await Promise.all([...agents.values()].map((agent) => agent.stop('SIGKILL')));
    await operator?.stop();
    await cluster?.stop();
    await repo?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Commits what the phase needs and waits for its moment; the revision meant to run, and the node to lose. */
  const reachPhase = async (phase: Phase, label: string): Promise<{ intended: string; victim: string }> => {
    const from = operator.stderr().length;
    const ofWeb = (msg: string) => (line: LogLine) => line.msg === msg && line.service === SERVICE;
    if (phase === 'mid-batch') {
      // One replica at a time, each awaited through its health check: a node is lost while its
      // new replica starts.
      const intended = await repo.commit(app(label, { parallelism: 1, monitor: '0s' }), label);
      const starting = await waitForLog('a new replica starting', from, ofWeb('replica-starting'));
      return { intended, victim: starting.node! };
    }
    if (phase === 'monitor window') {
      const intended = await repo.commit(app(label, { parallelism: DESIRED, monitor: '20s' }), label);
      await waitForLog('every new replica healthy', from, ofWeb('replica-healthy'), DESIRED);
      // All healthy, the one monitor window open: lose the node with the most of them.
      const counts = new Map<string, number>();
      for (const r of await replicasOn(engines)) counts.set(r.node, (counts.get(r.node) ?? 0) + 1);
      const victim = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
      return { intended, victim };
    }
    const intended = await deployed();
    await repo.commit(
      app(label, { parallelism: DESIRED, monitor: '10s' }, CRASHES_AFTER_3S),
      `${label}: crashes`,
    );
    const rollingBack = await waitForLog('the rollback begun', from, (line) => line.msg === 'rolling back');
    // The first replica of the way back is healthy; the node of the next one is lost.
    const healthy = await waitForLog(
      'a replica of the rollback healthy',
      rollingBack.at,
      ofWeb('replica-healthy'),
    );
    return { intended, victim: healthy.node! };
  };

  /** Brings the lost node back (an empty engine, or the agent on the engine it left running). */
  const restore = async (victim: TestEngine, fault: Fault): Promise<void> => {
    if (fault === 'engine stopped') {
      await agents.get(victim.node)?.stop('SIGKILL');
      await restartEngine(victim);
    }
    await startAgent(victim);
    await eventually('three nodes ready again', nodesReady, 60_000);
  };

  const loseNodeDuring = async (t: TestContext, phase: Phase, fault: Fault): Promise<void> => {
    const begin = Date.now();
    const since = new Date().toISOString();
    const label = `${phase} ${fault}`.replaceAll(' ', '-');
    const { intended, victim: victimName } = await reachPhase(phase, label);
    const victim = engines.find((e) => e.node === victimName)!;
    const survivors = engines.filter((e) => e !== victim);
    if (fault === 'agent killed') await agents.get(victim.node)!.stop('SIGKILL');
    else await stopEngine(victim);
    const lostAt = Date.now();
    let converged = 0;
    try {
      await eventually(
        `exactly ${DESIRED} replicas of ${intended.slice(0, 12)} on the survivors`,
        () => exactlyDesired(survivors, intended),
        180_000,
      );
      converged = Date.now();
      // The revision meant to run is the last good one once its rollout (and monitor windows) ended.
      await eventually(
        `${intended.slice(0, 12)} deployed`,
        async () => (await deployed()) === intended,
        120_000,
      );
      const entries = (await history()).filter((e) => e.at >= since);
      const rollbacksOfGood = entries.filter(
        (e) =>
          e.rolledBackFrom === intended ||
          (e.revision === intended &&
            ['rolled back', 'rollback failed', 'rollback interrupted'].includes(e.outcome)),
      );
      assert.deepEqual(
        rollbacksOfGood,
        [],
        `a good revision was rolled back:\n${JSON.stringify(entries, null, 2)}`,
      );
      if (phase === 'rollback') {
        // The bad commit failed on its own: held as failed, and rolled back (or on its way back).
        const own = entries.filter((e) => e.revision !== intended && e.rolledBackFrom === undefined);
        assert.ok(
          own.some((e) => ['rolled back', 'rollback interrupted'].includes(e.outcome)),
          JSON.stringify(entries, null, 2),
        );
      } else {
        const interrupted = entries.find((e) => e.revision === intended && e.outcome === 'interrupted');
        assert.ok(interrupted, `no interrupted entry:\n${JSON.stringify(entries, null, 2)}`);
        assert.match(interrupted.reason ?? '', new RegExp(`node ${victim.node} lost during the rollout`));
      }
    } finally {
      // Back for the next case, also when this one failed.
      await restore(victim, fault);
    }
    await eventually(
      `exactly ${DESIRED} replicas of ${intended.slice(0, 12)} on the three engines once ${victim.node} is back`,
      () => exactlyDesired(engines, intended),
      120_000,
    );
    t.diagnostic(
      `${phase}, ${fault} (${victim.node}): converged ${((converged - lostAt) / 1000).toFixed(1)}s after the loss; case ${((Date.now() - begin) / 1000).toFixed(1)}s`,
    );
  };

  test('agent killed mid-batch: the intended revision runs on the survivors, and berth history says why the rollout was interrupted', async (t) => {
    await loseNodeDuring(t, 'mid-batch', 'agent killed');
    const text = await runBerth(['history', '--state-dir', stateDir, '-n', '1000']);
    assert.match(text.stdout, / interrupted .*\n(.*\n)?\s+reason: node \S+ lost during the rollout \(/);
  });

  for (const [phase, fault] of [
    ['monitor window', 'agent killed'],
    ['mid-batch', 'engine stopped'],
    ['monitor window', 'engine stopped'],
    ['rollback', 'agent killed'],
    ['rollback', 'engine stopped'],
  ] as const) {
    test(`${fault} in the ${phase}: the intended revision runs on the survivors; no good revision rolled back`, (t) =>
      loseNodeDuring(t, phase, fault));
  }
});
