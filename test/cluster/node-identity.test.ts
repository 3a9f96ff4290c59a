/**
 * A node is who its certificate says, and where it stands for placement is the operator's: on
 * two real engines with `berth agent --join` processes, a token holder cannot take over a joined
 * node's name (only `berth node rm` frees it), an agent cannot relabel itself by restarting with
 * other --label values (only `berth node label` relabels, and placement follows), and the advertise
 * address defaults to the agent's address towards the operator, never a loopback one that other
 * hosts could not reach.
 */
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateKeyPair } from '../../src/cluster/certificates.js';
import { formatIdentityFile, parseIdentityFile } from '../../src/cluster/node-credentials.js';
import { BERTH_VERSION } from '../../src/core/version.js';
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
import { manifestFile, namespaceManifest, sleeperService } from '../helpers/manifests.js';
import {
  managedOn,
  startEngineAgent,
  startTestEngines,
  type TestEngine,
  type TestEngines,
} from '../helpers/multi-node.js';

const ns = `ni${Date.now().toString(36)}`;

interface NodeRow {
  name: string;
  status: string;
  address: string | null;
  labels: Record<string, string>;
  agentVersion: string | null;
  incompatible: string | null;
}

interface RegistryFile {
  nodes: { name: string; serial: string; labels?: Record<string, string>; address?: string }[];
}

/** `zoned`: two replicas that may run only on a node labelled zone=b. */
const zonedManifests = {
  'app.yaml': manifestFile(
    namespaceManifest(ns),
    sleeperService({
      namespace: ns,
      name: 'zoned',
      replicas: 2,
      placement: { constraints: ['node.labels.zone == b'] },
      update: { monitor: '300ms' },
    }),
  ),
};

describe('node identity: names, labels and addresses are the operator’s', () => {
  let cluster: TestEngines;
  let engines: TestEngine[];
  let repo: TestRepo;
  let dir: string;
  let stateDir: string;
  let operator: BerthProcess | undefined;
  let endpoint: string;
  let token: string;
  const agents = new Map<string, BerthProcess>();
  const agentDir = (name: string) => join(dir, `agent-${name}`);

  const nodeList = async (): Promise<NodeRow[]> => {
    const result = await runBerth(['node', 'ls', '--state-dir', stateDir, '--format', 'json']);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as NodeRow[];
  };
  const nodeRow = async (name: string) => (await nodeList()).find((n) => n.name === name);
  const registry = async () =>
    JSON.parse(await readFile(join(stateDir, 'cluster', 'nodes.json'), 'utf8')) as RegistryFile;
  const startAgent = async (engine: TestEngine, args: string[] = [], state = agentDir(engine.node)) => {
    const agent = await startEngineAgent(engine, { endpoint, token }, { stateDir: state, args });
    agents.set(engine.node, agent);
    return agent;
  };
  /** Running `zoned` replicas per engine. */
  const zoned = async (): Promise<number[]> =>
    Promise.all(
      engines.map(async (e) => (await managedOn(e, ns, 'zoned')).filter((r) => r.state === 'running').length),
    );
  /** A `berth agent --join` on the first engine under `node`, run to its end. */
  const joinAs = (node: string, state: string) =>
    runBerth([
      ...['agent', '--join', endpoint, '--token', token, '--node', node],
      ...['--state-dir', state, '--docker', engines[0]!.socketPath, '--pull', 'never'],
    ]);

  before(async () => {
    cluster = await startTestEngines(2, `${ns}n`);
    engines = cluster.engines;
    dir = await mkdtemp(join(tmpdir(), 'berth-identity-'));
    stateDir = join(dir, 'state');
    repo = await createTestRepo({ 'app.yaml': namespaceManifest(ns) });
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, stateDir }),
      ...['--cluster-listen', `127.0.0.1:${await freePort()}`, '--no-local-node'],
      ...SCHEDULE_NEVER,
    ]);
    assert.ok(operator.join, operator.output());
    ({ endpoint, token } = operator.join);
  });

  after(async () => {
    await Promise.all([...agents.values()].map((agent) => agent.stop()));
    await operator?.stop();
    await cluster?.stop();
    await repo?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('an explicit loopback --advertise-addr is refused when the operator is on another host', async () => {
    // A documentation address (TEST-NET-1): the check refuses before any connection is tried.
    const refused = await runBerth([
      ...['agent', '--join', 'https://192.0.2.10:7946', '--token', token, '--node', 'far'],
      ...['--advertise-addr', '127.0.0.1', '--state-dir', join(dir, 'far')],
      ...['--docker', engines[0]!.socketPath],
    ]);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(
      refused.stderr,
      /berth: --advertise-addr 127\.0\.0\.1 is loopback, but the operator at https:\/\/192\.0\.2\.10:7946 is on another host: other nodes could not reach this node's replicas/,
    );
  });

  test('without --advertise-addr a joined agent advertises its address towards the operator', async () => {
    const probe = await startBerth('agent', [
      ...['--join', endpoint, '--token', token, '--node', 'detect'],
      ...['--state-dir', join(dir, 'detect'), '--docker', engines[0]!.socketPath, '--pull', 'never'],
    ]);
    try {
      // The operator listens on 127.0.0.1: the connection's local address is loopback too.
      const row = await eventually('the probe node ready', async () => {
        const found = await nodeRow('detect');
        return found?.status === 'ready' ? found : null;
      });
      assert.equal(row.address, '127.0.0.1');
      assert.equal((await registry()).nodes.find((n) => n.name === 'detect')?.address, '127.0.0.1');
    } finally {
      await probe.stop();
    }
    assert.equal((await runBerth(['node', 'rm', 'detect', '--state-dir', stateDir])).code, 0);
  });

  test('two agents join with their labels and address recorded; a service constrained on zone=b lands on the second', async () => {
    await Promise.all(engines.map((e) => startAgent(e)));
    await eventually('both nodes ready', async () => {
      const list = await nodeList();
      return list.length === 2 && list.every((n) => n.status === 'ready');
    });
    const file = await registry();
    for (const engine of engines) {
      const entry = file.nodes.find((n) => n.name === engine.node);
      assert.deepEqual(entry?.labels, { zone: String.fromCharCode(96 + engine.index) });
      assert.equal(entry?.address, engine.address);
    }
    await repo.commit(zonedManifests, 'zoned');
    await eventually('zoned on the zone=b node', async () => (await zoned()).join() === '0,2', 60_000);
  });

  test('joining under a member’s name is refused, also for an agent whose stored certificate is unusable; the member stays', async () => {
    const member = engines[1]!;
    const before = (await registry()).nodes.find((n) => n.name === member.node)!;
    const refusal = `berth: join refused: node "${member.node}" is already a member of this cluster; remove it first with "berth node rm ${member.node}"`;

    const impostor = await joinAs(member.node, join(dir, 'impostor'));
    assert.equal(impostor.code, 1, impostor.stdout + impostor.stderr);
    assert.ok(impostor.stderr.includes(refusal), impostor.stderr);
    assert.match(operator!.stderr(), /"msg":"join refused"/);

    // The member's own state dir with a key that is not its certificate's: it joins again, and
    // the refusal says why the stored certificate was not used.
    const broken = join(dir, 'broken');
    await mkdir(join(broken, 'cluster'), { recursive: true });
    const stored = join(agentDir(member.node), 'cluster');
    await writeFile(join(broken, 'cluster', 'ca.crt'), await readFile(join(stored, 'ca.crt')));
    const identity = parseIdentityFile(await readFile(join(stored, 'node.pem'), 'utf8'))!;
    await writeFile(
      join(broken, 'cluster', 'node.pem'),
      formatIdentityFile({ ...identity, privateKeyPem: generateKeyPair().privateKeyPem }),
      { mode: 0o600 },
    );
    const unusable = await joinAs(member.node, broken);
    assert.equal(unusable.code, 1, unusable.stdout + unusable.stderr);
    assert.ok(unusable.stderr.includes(refusal), unusable.stderr);
    assert.match(unusable.stderr, /cannot be used: node\.pem: the key does not belong to the certificate/);

    const after = (await registry()).nodes.find((n) => n.name === member.node)!;
    assert.equal(after.serial, before.serial);
    const row = await nodeRow(member.node);
    assert.equal(row?.status, 'ready');
    // Its agent says which berth it is, and is not too old for this operator.
    assert.equal(row.agentVersion, BERTH_VERSION);
    assert.equal(row.incompatible, null);
    assert.equal(agents.get(member.node)!.child.exitCode, null, agents.get(member.node)!.output());
    assert.deepEqual(await zoned(), [0, 2]);
  });

  test('an agent restarted with other --label values changes nothing, and says where labels are changed', async () => {
    const first = engines[0]!;
    assert.equal((await agents.get(first.node)!.stop()).code, 0);
    // The harness gives zone=a; a later --label wins on the command line.
    const relabelled = await startAgent(first, ['--label', 'zone=b', '--label', 'gpu=yes']);
    await eventually('the agent warns', async () =>
      /labels are held by the operator; change them with berth node label/.test(relabelled.stderr()),
    );
    await eventually('the operator says it ignores them', async () =>
      /node reports a placement the operator does not hold/.test(operator!.stderr()),
    );
    const row = await eventually('the relabelled node ready', async () => {
      const found = await nodeRow(first.node);
      return found?.status === 'ready' ? found : null;
    });
    assert.deepEqual(row.labels, { zone: 'a' });
    assert.deepEqual((await registry()).nodes.find((n) => n.name === first.node)?.labels, { zone: 'a' });
    assert.deepEqual(await zoned(), [0, 2]);
  });

  test('berth node label changes the labels, and placement follows', async () => {
    const [first, second] = [engines[0]!, engines[1]!];
    const labelled = await runBerth([
      'node',
      'label',
      first.node,
      'zone=b',
      'tier=web',
      '--state-dir',
      stateDir,
    ]);
    assert.equal(labelled.code, 0, labelled.stderr);
    assert.equal(labelled.stdout, `node ${first.node} labels: tier=web,zone=b\n`);
    const moved = await runBerth(['node', 'label', second.node, 'zone=c', '--state-dir', stateDir]);
    assert.equal(moved.code, 0, moved.stderr);
    await eventually(
      'zoned moved to the node now labelled zone=b',
      async () => (await zoned()).join() === '2,0',
      60_000,
    );
    const removed = await runBerth(['node', 'label', first.node, '--rm', 'tier', '--state-dir', stateDir]);
    assert.equal(removed.stdout, `node ${first.node} labels: zone=b\n`);
    assert.deepEqual((await nodeRow(first.node))?.labels, { zone: 'b' });
    assert.deepEqual((await registry()).nodes.find((n) => n.name === second.node)?.labels, { zone: 'c' });
    const unknown = await runBerth(['node', 'label', 'nope', 'zone=b', '--state-dir', stateDir]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /berth: no joined node named nope/);
  });

  test('after berth node rm the name joins again, from a fresh state dir, with the labels it joins with', async () => {
    const second = engines[1]!;
    const old = agents.get(second.node)!;
    const result = await runBerth(['node', 'rm', second.node, '--state-dir', stateDir]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((await old.exited).code, 1);
    await startAgent(second, [], join(dir, 'second-again'));
    const row = await eventually('the name back as a ready node', async () => {
      const found = await nodeRow(second.node);
      return found?.status === 'ready' ? found : null;
    });
    assert.deepEqual(row.labels, { zone: 'b' });
    assert.equal(row.address, second.address);
  });
});
