import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import type { NodeAgent, NodeSnapshot } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import { createCertificateAuthority, generateKeyPair } from './certificates.js';
import { clusterDir } from './cluster-identity.js';
import { NodeRegistry, type JoinedNode } from './node-registry.js';
import { serveNodeAgent } from './serve-node-agent.js';

/**
 * The registry's rules for who a node is and where it stands for placement: a name is taken
 * once (until `berth node rm`), and labels and address are the operator's, recorded at join.
 * Snapshots travel over a real WebSocket on loopback from an in-memory node that reports
 * whatever a test wants it to claim.
 */
const ca = createCertificateAuthority();

/** An agent that reports `claims` about itself. */
function claimingNode(claims: { labels: Record<string, string>; address: string }): NodeAgent {
  const snapshot = async (): Promise<NodeSnapshot> => ({
    name: 'whatever-it-says',
    address: claims.address,
    labels: claims.labels,
    capacity: { nanoCpus: 1e9, memoryBytes: 2 ** 30 },
    engineVersion: 'memory',
    status: 'ready',
    images: [],
    replicas: [],
  });
  const never = (): never => {
    throw new BerthError('ERR_NOT_SUPPORTED', 'not in this test');
  };
  return {
    name: 'whatever-it-says',
    snapshot,
    ensureReplica: never,
    prepareReplica: never,
    awaitReplica: never,
    watchReplica: never,
    removeReplica: async () => undefined,
    listVolumes: async () => [],
    removeVolume: async () => undefined,
    setMeshRoutes: async () => undefined,
    logs: () => {
      throw new Error('no logs in this test');
    },
    awaitChange: async () => ({ mark: 'fake' }),
    close: async () => undefined,
  };
}

describe('the node registry: names, labels and addresses are the operator’s', () => {
  let dir: string;
  let registry: NodeRegistry;
  let changes: string[];
  let server: WebSocketServer;
  const sockets: WebSocket[] = [];

  const open = async (): Promise<NodeRegistry> => {
    const opened = new NodeRegistry({
      stateDir: dir,
      local: new Map(),
      log: silentLogger(),
      onChange: (reason) => changes.push(reason),
    });
    await opened.load();
    return opened;
  };
  const joinNode = (name: string, placement: { labels?: Record<string, string>; address?: string } = {}) =>
    registry.join({ ca, name, publicKeyPem: generateKeyPair().publicKeyPem, ...placement });
  const nodesFile = async () =>
    JSON.parse(await readFile(join(clusterDir(dir), 'nodes.json'), 'utf8')) as {
      nodes: JoinedNode[];
      revoked: { serial: string; node: string }[];
    };
  /** Connects `name` to the registry as an agent that claims `claims` in its snapshots. */
  const connect = async (name: string, claims: { labels: Record<string, string>; address: string }) => {
    const accepted = new Promise<WebSocket>((resolve) => server.once('connection', resolve));
    const agentSide = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
    sockets.push(agentSide);
    serveNodeAgent(agentSide, claimingNode(claims), silentLogger());
    registry.attach(name, await accepted);
    await new Promise((resolve) => agentSide.once('open', resolve));
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-registry-'));
    changes = [];
    registry = await open();
    server ??= new WebSocketServer({ host: '127.0.0.1', port: 0 });
    if (server.address() === null) await new Promise((resolve) => server.once('listening', resolve));
  });

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.terminate();
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  after(async () => {
    for (const client of server.clients) client.terminate();
    await new Promise((resolve) => server.close(resolve));
  });

  test('a name that is already a member is refused, and the member keeps its certificate', async () => {
    await joinNode('bn2', { labels: { zone: 'a' }, address: '10.0.0.2' });
    const before = await nodesFile();
    await assert.rejects(
      joinNode('bn2', { labels: { zone: 'b' }, address: '10.0.0.66' }),
      (error: unknown) => {
        assert.ok(error instanceof BerthError);
        assert.equal(error.code, 'ERR_AGENT_UNAUTHORIZED');
        assert.equal(
          error.message,
          'join refused: node "bn2" is already a member of this cluster; remove it first with "berth node rm bn2"',
        );
        return true;
      },
    );
    assert.deepEqual(await nodesFile(), before);
    assert.equal(registry.standing('bn2', before.nodes[0]!.serial).kind, 'current');
  });

  test("a member's advertise address is refused to another node, unless it is loopback (one host)", async () => {
    await joinNode('bn1', { address: '10.0.0.1' });
    await assert.rejects(
      joinNode('bn2', { address: '10.0.0.1' }),
      /^BerthError: join refused: address 10\.0\.0\.1 is the advertise address of node "bn1"/,
    );
    await joinNode('bn3', { address: '127.0.0.1' });
    await joinNode('bn4', { address: '127.0.0.1' });
    await registry.remove('bn1');
    await joinNode('bn2', { address: '10.0.0.1' });
    assert.deepEqual(
      (await nodesFile()).nodes.map((n) => [n.name, n.address]),
      [
        ['bn2', '10.0.0.1'],
        ['bn3', '127.0.0.1'],
        ['bn4', '127.0.0.1'],
      ],
    );
  });

  test('two joins under one name at once: one is admitted, the other refused', async () => {
    const results = await Promise.allSettled([joinNode('race'), joinNode('race')]);
    assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    assert.equal((await nodesFile()).nodes.length, 1);
  });

  test('after berth node rm the name joins again, with a new certificate; the old one stays revoked', async () => {
    await joinNode('bn2', { labels: { zone: 'a' }, address: '10.0.0.2' });
    const old = (await nodesFile()).nodes[0]!.serial;
    await registry.remove('bn2');
    await joinNode('bn2', { labels: { zone: 'c' }, address: '10.0.0.3' });
    const file = await nodesFile();
    assert.equal(file.nodes.length, 1);
    assert.notEqual(file.nodes[0]!.serial, old);
    assert.deepEqual(file.nodes[0]!.labels, { zone: 'c' });
    assert.equal(file.nodes[0]!.address, '10.0.0.3');
    assert.equal(registry.standing('bn2', old).kind, 'refused');
  });

  test('labels and address given at join are recorded, and snapshots cannot change them', async () => {
    await joinNode('bn1', { labels: { zone: 'a' }, address: '10.0.0.1' });
    await connect('bn1', { labels: { zone: 'b', gpu: 'yes' }, address: '10.6.6.6' });
    const seen = await registry.agents().get('bn1')!.snapshot();
    assert.equal(seen.name, 'bn1');
    assert.deepEqual(seen.labels, { zone: 'a' });
    assert.equal(seen.address, '10.0.0.1');
    const row = registry.list().find((n) => n.name === 'bn1');
    assert.deepEqual(row?.labels, { zone: 'a' });
    assert.equal(row?.address, '10.0.0.1');
    const recorded = (await nodesFile()).nodes[0]!;
    assert.deepEqual(recorded.labels, { zone: 'a' });
    assert.equal(recorded.address, '10.0.0.1');
  });

  test('berth node label sets and removes labels, is kept in nodes.json and starts a reconcile', async () => {
    await joinNode('bn1', { labels: { zone: 'a', disk: 'hdd' }, address: '10.0.0.1' });
    await connect('bn1', { labels: { zone: 'a', disk: 'hdd' }, address: '10.0.0.1' });
    changes.length = 0;
    const labels = await registry.setLabels('bn1', { set: { zone: 'b', gpu: 'yes' }, remove: ['disk'] });
    assert.deepEqual(labels, { gpu: 'yes', zone: 'b' });
    assert.deepEqual(changes, ['node bn1 labels']);
    assert.deepEqual((await registry.agents().get('bn1')!.snapshot()).labels, { gpu: 'yes', zone: 'b' });
    assert.deepEqual((await nodesFile()).nodes[0]!.labels, { gpu: 'yes', zone: 'b' });
    // A restarted operator reads them back.
    await registry.close();
    registry = await open();
    assert.deepEqual(registry.list()[0]?.labels, { gpu: 'yes', zone: 'b' });
    await assert.rejects(
      registry.setLabels('nope', { set: { a: 'b' }, remove: [] }),
      /no joined node named nope/,
    );
    await assert.rejects(
      registry.setLabels('bn1', { set: { 'bad key': 'x' }, remove: [] }),
      /label key "bad key"/,
    );
  });

  test('a node joined by an earlier version (nothing recorded) has its first report recorded, then held', async () => {
    const legacy = {
      nodes: [{ ...(await joinedEntry('old')), labels: undefined, address: undefined }],
      revoked: [],
    };
    await registry.close();
    await writeFile(join(clusterDir(dir), 'nodes.json'), JSON.stringify(legacy));
    registry = await open();
    await connect('old', { labels: { zone: 'a' }, address: '10.0.0.9' });
    await registry.agents().get('old')!.snapshot();
    const recorded = await eventuallyRecorded(nodesFile, 'old');
    assert.deepEqual(recorded.labels, { zone: 'a' });
    assert.equal(recorded.address, '10.0.0.9');
    for (const socket of sockets.splice(0)) socket.terminate();
    await connect('old', { labels: { zone: 'z' }, address: '10.0.0.66' });
    const seen = await registry.agents().get('old')!.snapshot();
    assert.deepEqual(seen.labels, { zone: 'a' });
    assert.equal(seen.address, '10.0.0.9');
  });

  /** A nodes.json entry as join writes it (then stripped by the caller). */
  async function joinedEntry(name: string): Promise<JoinedNode> {
    await joinNode(name);
    return (await nodesFile()).nodes.find((n) => n.name === name)!;
  }
});

/** nodes.json once it records an address for `name` (recording runs beside the snapshot). */
async function eventuallyRecorded(
  read: () => Promise<{ nodes: JoinedNode[] }>,
  name: string,
): Promise<JoinedNode> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const node = (await read()).nodes.find((n) => n.name === name);
    if (node?.address !== undefined) return node;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`nodes.json never recorded the address of ${name}`);
}
