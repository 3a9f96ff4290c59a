/**
 * The routing mesh across three real engines: an operator without a local node, three
 * `berth agent --join` processes, each advertising its own loopback address. A service whose
 * replicas run on two nodes only answers on the published port of all three.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  eventually,
  runBerth,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import {
  manifestFile,
  namespaceManifest,
  SERVE_HOSTNAME_AT_ID,
  sleeperService,
  webService,
} from '../helpers/manifests.js';
import { dockerExec } from '../helpers/docker.js';
import { assertNoneFailed, freePort, getOnce, startLoadLoop, startLoopInside } from '../helpers/load-loop.js';
import {
  managedOn,
  startEngineAgent,
  startTestEngines,
  stopEngine,
  stopMeshHosts,
  type TestEngine,
  type TestEngines,
} from '../helpers/multi-node.js';

const ns = `mm${Date.now().toString(36)}`;

function manifests(image: string, published: number, replicas = 3): Record<string, string> {
  return {
    'app.yaml': manifestFile(
      namespaceManifest(ns),
      webService({
        namespace: ns,
        image,
        // Each replica also serves its hostname at /id, to see which ones take traffic.
        command: SERVE_HOSTNAME_AT_ID,
        replicas,
        ports: [{ target: 8080, published }],
        placement: { constraints: ['node.labels.zone != c'] },
        update: { parallelism: 1, order: 'start-first', monitor: '300ms' },
      }),
      sleeperService({
        name: 'client',
        namespace: ns,
        placement: { constraints: ['node.labels.zone == c'] },
        stopGracePeriod: null,
      }),
    ),
  };
}

/** Runs a request by service name from inside a container of a node's engine. */
function fetchByName(engine: TestEngine, container: string, url: string) {
  // `timeout`, not wget's -T: the offline busybox stand-in crashes on -T.
  return dockerExec(container, ['timeout', '5', 'wget', '-q', '-O', '-', url], {
    socketPath: engine.socketPath,
  });
}

async function runningOn(engine: TestEngine): Promise<number> {
  return (await managedOn(engine, ns, 'web')).filter((r) => r.state === 'running').length;
}

async function clientOn(engine: TestEngine): Promise<string> {
  const [client] = (await managedOn(engine, ns, 'client')).filter((r) => r.state === 'running');
  assert.ok(client, `a client runs on ${engine.node}`);
  return client.name;
}

describe('routing mesh on three engines', () => {
  let cluster: TestEngines;
  let engines: TestEngine[];
  let repo: TestRepo;
  let dir: string;
  let published: number;
  const children: BerthProcess[] = [];
  const agents = new Map<string, BerthProcess>();
  let startAgent: (engine: TestEngine) => Promise<void> = () => Promise.reject(new Error('no operator'));
  /** The node whose agent the agent-kill test killed. */
  let agentKilled: TestEngine | null = null;

  before(async () => {
    cluster = await startTestEngines(3, `${ns}n`);
    engines = cluster.engines;
    dir = await mkdtemp(join(tmpdir(), 'berth-mesh-cluster-'));
    published = await freePort();
    // Services arrive once every node has joined, so placement sees all three.
    repo = await createTestRepo({
      'app.yaml': namespaceManifest(ns),
    });
    const clusterPort = await freePort();
    const operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, stateDir: join(dir, 'state') }),
      ...['--cluster-listen', `127.0.0.1:${clusterPort}`, '--no-local-node'],
      ...SCHEDULE_NEVER,
    ]);
    children.push(operator);
    assert.ok(operator.join, operator.output());
    const joinCommand = operator.join;
    startAgent = async (engine: TestEngine) => {
      const agent = await startEngineAgent(engine, joinCommand, {
        stateDir: join(dir, `agent-${engine.index}`),
        args: ['--service-addresses', engine.serviceAddresses],
      });
      children.push(agent);
      agents.set(engine.node, agent);
    };
    await Promise.all(engines.map((engine) => startAgent(engine)));
  });

  after(async () => {
    await Promise.all(children.map((child) => child.stop('SIGKILL')));
    await cluster?.stop();
    await repo?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the published port answers on every node, including the one with no replica', async () => {
    await repo.commit(manifests('berth-test/web:v1', published), 'web with a published port');
    for (const engine of engines) {
      await eventually(
        `the published port answers on ${engine.node} (${engine.address})`,
        async () => (await getOnce(engine.address, published)).body === 'v1',
        90_000,
      );
    }
    // The port answers as soon as the first replica is healthy; the deploy goes on meanwhile.
    await eventually(
      '3 replicas running on nodes 1 and 2',
      async () => (await runningOn(engines[0]!)) + (await runningOn(engines[1]!)) === 3,
      90_000,
    );
    assert.equal(await runningOn(engines[2]!), 0, 'node 3 runs no replica');
    for (const engine of engines) {
      for (let i = 0; i < 6; i++) {
        const answer = await getOnce(engine.address, published);
        assert.equal(answer.status, 200, engine.node);
        assert.equal(answer.body, 'v1', engine.node);
      }
    }
  });

  test('a second service reaches the first by name from the node with no replica', async () => {
    const empty = engines[2]!;
    await eventually('the client runs on the node with no web replica', async () =>
      (await managedOn(empty, ns, 'client')).some((r) => r.state === 'running'),
    );
    const client = await clientOn(empty);
    for (const url of ['http://web:8080/', `http://web.${ns}:8080/`]) {
      await eventually(`${url} answers v1 from ${empty.node}`, async () => {
        const answer = await fetchByName(empty, client, url);
        return answer.exitCode === 0 && answer.output.trim() === 'v1';
      });
    }
    for (let i = 0; i < 6; i++) {
      const answer = await fetchByName(empty, client, 'http://web:8080/');
      assert.equal(answer.exitCode, 0, answer.output);
      assert.equal(answer.output.trim(), 'v1');
    }
  });

  test('a rolling update under load through the node with no replica fails no request', async () => {
    const empty = engines[2]!;
    const load = startLoadLoop({ host: empty.address, port: published, perSecond: 20, maxMs: 120_000 });
    await repo.commit(manifests('berth-test/web:v2', published), 'v2');
    try {
      await eventually(
        'only v2 replicas run, and the mesh answers v2',
        async () => {
          const all = (await Promise.all(engines.map((e) => managedOn(e, ns, 'web')))).flat();
          if (all.length !== 3 || all.some((r) => r.state !== 'running')) return false;
          const answers = await Promise.all([0, 1, 2].map(() => getOnce(empty.address, published)));
          return answers.every((a) => a.body === 'v2');
        },
        110_000,
      );
    } finally {
      const report = await load.stop();
      assertNoneFailed(report);
      assert.ok(report.bodies.has('v1') && report.bodies.has('v2'), JSON.stringify([...report.bodies]));
    }
  });

  test('draining a node under load fails no request; its replicas move before they stop', async () => {
    const [drained, other, empty] = engines as [TestEngine, TestEngine, TestEngine];
    assert.ok((await runningOn(drained)) > 0, 'the node to drain runs a replica');
    const load = startLoadLoop({ host: empty.address, port: published, perSecond: 20, maxMs: 120_000 });
    const byName = startLoopInside(await clientOn(empty), 'http://web:8080/', {
      socketPath: empty.socketPath,
    });
    try {
      const drain = await runBerth(['node', 'drain', drained.node, '--state-dir', join(dir, 'state')]);
      assert.equal(drain.code, 0, drain.stderr);
      await eventually(
        `every replica on ${other.node}, none left on ${drained.node}`,
        async () => (await runningOn(other)) === 3 && (await managedOn(drained, ns, 'web')).length === 0,
        90_000,
      );
      // A little more load on the moved replicas.
      await new Promise((r) => setTimeout(r, 1500));
      // Every moved replica takes traffic (a replacement has the name of the replica it replaced:
      // withdrawing the old one must not keep the new one out).
      await eventually('all 3 replicas answer through the mesh', async () => {
        const ids = new Set<string>();
        for (let i = 0; i < 12; i++) ids.add((await getOnce(empty.address, published, 5000, '/id')).body);
        return ids.size === 3;
      });
    } finally {
      const report = await load.stop();
      const named = await byName.stop();
      assertNoneFailed(report);
      assert.equal(named.failed, 0, `failed requests by name: ${named.output}`);
    }
    const activate = await runBerth(['node', 'activate', drained.node, '--state-dir', join(dir, 'state')]);
    assert.equal(activate.code, 0, activate.stderr);
  });

  test('freezing the agent of a node with replicas (SIGSTOP) fails no request through that node', async () => {
    // The drain above left every replica on one node: that is the one whose agent freezes.
    const [frozen, other] =
      (await runningOn(engines[0]!)) > 0 ? [engines[0]!, engines[1]!] : [engines[1]!, engines[0]!];
    assert.ok((await runningOn(frozen)) > 0, 'the node to freeze runs a replica');
    const agent = agents.get(frozen.node)!;
    // Through the frozen node's own published port: its mesh host does not freeze with the agent.
    // (Not through another node here: when the node is declared down, the operator drops its
    // replicas from every table before their replacements are healthy, and the node held them all.)
    const load = startLoadLoop({ host: frozen.address, port: published, perSecond: 10, maxMs: 150_000 });
    try {
      agent.child.kill('SIGSTOP');
      // Down after 5 s without a word; its replicas are started again on the other zone allowed.
      await eventually(
        `3 replicas running on ${other.node} while ${frozen.node}'s agent is frozen`,
        async () => (await runningOn(other)) === 3,
        90_000,
      );
      await new Promise((r) => setTimeout(r, 1500));
      agent.child.kill('SIGCONT');
      // Back: its old replicas were replaced, so they are withdrawn from every node and go.
      await eventually(
        `${frozen.node} is back and runs no web replica`,
        async () => (await managedOn(frozen, ns, 'web')).length === 0,
        90_000,
      );
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      agent.child.kill('SIGCONT');
      const report = await load.stop();
      assertNoneFailed(report);
      assert.ok(report.requests > 60, `only ${report.requests} requests were made`);
    }
  });

  test('killing the agent of a node with replicas (-9) drops no request, through that node either', async () => {
    const empty = engines[2]!;
    // The freeze above left every replica on one node: that is the one to lose.
    const [lost, survivor] =
      (await runningOn(engines[0]!)) > 0 ? [engines[0]!, engines[1]!] : [engines[1]!, engines[0]!];
    assert.ok((await runningOn(lost)) > 0, 'the node to lose runs a replica');
    const load = startLoadLoop({ host: empty.address, port: published, perSecond: 20, maxMs: 120_000 });
    // Its mesh host keeps serving the node's published port (with the last table) without the agent.
    const direct = startLoadLoop({ host: lost.address, port: published, perSecond: 10, maxMs: 120_000 });
    // And by name, from the client on the node with no replica.
    const byName = startLoopInside(await clientOn(empty), 'http://web:8080/', {
      socketPath: empty.socketPath,
    });
    try {
      await agents.get(lost.node)?.stop('SIGKILL');
      agentKilled = lost;
      // Down after 5 s without a word; its replicas are rescheduled on the only other zone allowed.
      await eventually(
        '3 replicas running on the surviving node',
        async () => (await runningOn(survivor)) === 3,
        90_000,
      );
      // A little more load once the new replicas serve.
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      const report = await load.stop();
      const through = await direct.stop();
      const named = await byName.stop();
      assertNoneFailed(report);
      assertNoneFailed(through);
      assert.ok(report.requests > 60, `only ${report.requests} requests were made`);
      assert.ok(through.requests > 30, `only ${through.requests} requests through ${lost.node} were made`);
      assert.equal(named.failed, 0, `failed requests by name: ${named.output}`);
      assert.ok(named.ok > 30, `only ${named.ok} requests by name were made`);
    }
  });

  test('losing a whole node under load fails no request sent after it is gone', async (t) => {
    const empty = engines[2]!;
    const back = agentKilled;
    assert.ok(back, 'the agent-kill test ran first');
    // The node whose agent was killed comes back; its old replicas were rescheduled, so they go.
    await startAgent(back);
    await eventually(
      `${back.node} is back and runs no web replica`,
      async () => (await managedOn(back, ns, 'web')).length === 0,
      90_000,
    );
    const host = engines.find((e) => e !== back && e !== empty)!;
    // A fourth replica lands on the node that came back: one healthy replica outlives the host.
    await repo.commit(manifests('berth-test/web:v2', published, 4), 'four replicas');
    await eventually(`a replica runs on ${back.node}`, async () => (await runningOn(back)) === 1, 90_000);
    assert.equal(await runningOn(host), 3);
    const load = startLoadLoop({ host: empty.address, port: published, perSecond: 20, maxMs: 120_000 });
    let goneAt = 0;
    try {
      await new Promise((r) => setTimeout(r, 1000));
      // The host goes: its agent, its mesh host and its engine, with every container on it.
      await agents.get(host.node)?.stop('SIGKILL');
      await stopMeshHosts(host);
      await stopEngine(host);
      goneAt = Date.now();
      // Down after 5 s without a word; its replicas are started on the node that is left.
      await eventually(
        `4 replicas running on ${back.node}`,
        async () => (await runningOn(back)) === 4,
        90_000,
      );
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      const report = await load.stop();
      const after = report.failedAt.filter((sent) => sent >= goneAt).length;
      t.diagnostic(
        `${report.requests} requests, ${report.failed} failed (in flight as the host went), ${after} after`,
      );
      assert.equal(
        after,
        0,
        `${after} requests sent after the host was gone failed (${report.failed}/${report.requests} in all: ${report.failures.join('; ')})`,
      );
      assert.ok(report.requests > 100, `only ${report.requests} requests were made`);
    }
  });
});
