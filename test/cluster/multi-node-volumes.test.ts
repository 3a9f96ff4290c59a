/**
 * A node that holds a volume goes down, on two real engines: the one replica of a stateful service
 * runs where its volume is; its agent is killed; the replica is not started empty on the other
 * node but waits, pending with the reason naming the node, also through an operator restart (the
 * volume's location comes from the state dir then, not from the node). When the agent comes back,
 * the replica runs on its node again, updated, with the data it wrote.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { StatusReport } from '../../src/cli/status.js';
import {
  eventually,
  runBerth,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { dockerExec } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { freePort } from '../helpers/load-loop.js';
import { manifestFile, namespaceManifest, sleeperService } from '../helpers/manifests.js';
import {
  managedOn,
  startEngineAgent,
  startTestEngines,
  type TestEngine,
  type TestEngines,
} from '../helpers/multi-node.js';

const ns = `mv${Date.now().toString(36)}`;

/** Logs its version into its volume at start, then holds it until stopped. */
const WRITER = [
  'sh',
  '-c',
  ['echo "$VERSION" >> /data/log', 'trap "exit 0" TERM', 'while true; do sleep 1 & wait $!; done'].join('\n'),
];

function app(version: string): Record<string, string> {
  return {
    'app.yaml': manifestFile(
      namespaceManifest(ns),
      sleeperService({
        name: 'db',
        namespace: ns,
        command: WRITER,
        env: { VERSION: version },
        volumes: [{ name: 'data', target: '/data' }],
        stopGracePeriod: '5s',
        update: { monitor: '1s', progressDeadline: '60s' },
      }),
    ),
  };
}

describe('a node holding a volume goes down (two engines)', () => {
  let cluster: TestEngines;
  let repo: TestRepo;
  let dir: string;
  let stateDir: string;
  let listen: string;
  let operator: BerthProcess;
  let joinCommand: { endpoint: string; token: string };
  const agents = new Map<string, BerthProcess>();
  let holder: TestEngine;
  let other: TestEngine;

  const startOperator = async (): Promise<BerthProcess> =>
    startBerth('run', [
      ...targetArgs({ repo: repo.dir, stateDir }),
      ...['--cluster-listen', listen, '--no-local-node'],
      ...SCHEDULE_NEVER,
    ]);
  const startAgent = async (engine: TestEngine): Promise<void> => {
    agents.set(
      engine.node,
      await startEngineAgent(engine, joinCommand, { stateDir: join(dir, `agent-${engine.index}`) }),
    );
  };
  const status = async (): Promise<StatusReport> => {
    const result = await runBerth(['status', '--state-dir', stateDir, '--format', 'json']);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as StatusReport;
  };
  const running = async (engine: TestEngine) =>
    (await managedOn(engine, ns, 'db')).filter((c) => c.state === 'running');
  const logOn = async (engine: TestEngine): Promise<string[]> => {
    const [replica] = await running(engine);
    assert.ok(replica, `a running db replica on ${engine.node}`);
    const read = await dockerExec(replica.name, ['cat', '/data/log'], { socketPath: engine.socketPath });
    assert.equal(read.exitCode, 0, read.output);
    return read.output.trim().split('\n');
  };
  let lastReport: StatusReport | null = null;
  /** The db slot pending, waiting for the holder, as `berth status` reports it. */
  const pendingOnHolder = async (): Promise<StatusReport | null> => {
    const report = await status();
    lastReport = report;
    const db = report.services.find((s) => s.service === `${ns}/db`);
    const reason = db?.pending.find((p) => p.slot === '1')?.reason ?? '';
    return reason.includes(`volume berth.${ns}.db.data.1 is on node ${holder.node}, which is down`)
      ? report
      : null;
  };

  before(async () => {
    cluster = await startTestEngines(2, `${ns}n`);
    dir = await mkdtemp(join(tmpdir(), 'berth-node-volumes-'));
    stateDir = join(dir, 'state');
    listen = `127.0.0.1:${await freePort()}`;
    repo = await createTestRepo({ 'app.yaml': namespaceManifest(ns) });
    operator = await startOperator();
    assert.ok(operator.join, operator.output());
    joinCommand = operator.join;
    await Promise.all(cluster.engines.map((engine) => startAgent(engine)));
    await eventually('two nodes ready', async () => {
      const result = await runBerth(['node', 'ls', '--state-dir', stateDir, '--format', 'json']);
      const nodes = JSON.parse(result.stdout) as { status: string }[];
      return nodes.length === 2 && nodes.every((n) => n.status === 'ready');
    });
    await repo.commit(app('v1'), 'db v1');
    const [a, b] = cluster.engines as [TestEngine, TestEngine];
    holder = await eventually(
      'db running on one node',
      async () => ((await running(a)).length === 1 ? a : (await running(b)).length === 1 ? b : null),
      120_000,
    );
    other = holder === a ? b : a;
  });

  after(async () => {
    await Promise.all([...agents.values()].map((agent) => agent.stop('SIGKILL')));
    await operator?.stop();
    await cluster?.stop();
    await repo?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the replica writes into its volume on its node', async () => {
    assert.deepEqual(await logOn(holder), ['v1']);
  });

  test('with its agent down the replica waits for the node, pending with the reason', async () => {
    await agents.get(holder.node)!.stop('SIGKILL');
    // An update arrives while the node is down: it has to wait for it too.
    await repo.commit(app('v2'), 'db v2');
    const report = await eventually('db pending on its down node', pendingOnHolder, 120_000).catch(
      (error: unknown) => {
        throw new Error(`${String(error)}\n${JSON.stringify(lastReport)}\n${operator.output().slice(-6000)}`);
      },
    );
    assert.equal(report.nodes.find((n) => n.name === holder.node)?.status, 'down');
    assert.deepEqual(await managedOn(other, ns, 'db'), [], 'nothing started empty on the other node');
  });

  test('an operator restarted while the node is down keeps the replica pending', async () => {
    await operator.stop('SIGKILL');
    const restartedAt = new Date().toISOString();
    operator = await startOperator();
    // The first reconcile of the new operator sees the holder down (it never reconnects).
    await eventually(
      'a reconcile of the restarted operator with the holder down',
      async () => {
        const report = await pendingOnHolder();
        return report !== null && (report.conditionsRecordedAt ?? '') > restartedAt;
      },
      120_000,
    );
    assert.deepEqual(await managedOn(other, ns, 'db'), [], 'nothing started empty on the other node');
  });

  test('when the node is back the replica runs there again, updated, with its data', async () => {
    await startAgent(holder);
    await eventually(
      'db v2 running on its node',
      async () => (await logOn(holder).catch(() => [])).join(',') === 'v1,v2',
      120_000,
    );
    assert.equal((await running(holder)).length, 1);
    assert.deepEqual(await managedOn(other, ns, 'db'), []);
    assert.deepEqual((await status()).services.find((s) => s.service === `${ns}/db`)?.pending, []);
  });
});
