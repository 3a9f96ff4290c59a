import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import type { NodeAgent, NodeSnapshot, ObservedReplica, ReplicaRequest } from '../api/types.js';
import { AGENT_PROTOCOL } from '../api/agent-protocol.js';
import { BerthError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import { ConnectedNodeAgent } from './connected-node-agent.js';
import { serveNodeAgent } from './serve-node-agent.js';

/**
 * The operator's NodeAgent over the agent connection against the agent's side, on a real
 * WebSocket on loopback (TLS is proven end to end in test/cluster). An in-memory node stands in
 * for the Docker-backed one: what is checked here is that calls, results and errors cross the
 * wire unchanged.
 */
const replica: ObservedReplica = {
  name: 'berth.default.web.1.abc',
  id: 'id1',
  node: 'what-the-agent-calls-itself',
  namespace: 'default',
  service: 'web',
  slot: '1',
  specHash: 'abc',
  revision: 'r1',
  state: 'running',
  health: 'healthy',
  healthDetail: null,
  exitCode: null,
  restartCount: 0,
  createdAt: '2026-01-01T00:00:00Z',
  startedAt: '2026-01-01T00:00:01Z',
  ports: [],
  specSummary: null,
};

const memoryNode: NodeAgent = {
  name: 'what-the-agent-calls-itself',
  snapshot: async (): Promise<NodeSnapshot> => ({
    name: 'what-the-agent-calls-itself',
    address: '127.0.0.1',
    labels: { zone: 'a' },
    capacity: { nanoCpus: 1e9, memoryBytes: 2 ** 30 },
    engineVersion: 'memory',
    status: 'ready',
    images: [],
    replicas: [replica],
    agent: { version: '0.1.0', protocol: AGENT_PROTOCOL },
  }),
  ensureReplica: async (request: ReplicaRequest) => {
    throw new BerthError('ERR_IMAGE_NOT_FOUND', `image ${request.image} is not on this node`, {
      data: { image: request.image },
    });
  },
  prepareReplica: async () => undefined,
  awaitReplica: async (name, { timeoutMs }) => ({
    outcome: 'timeout',
    // A replica that names another node than the one that reports it.
    replica: name === replica.name ? replica : null,
    reason: `${name} ${timeoutMs}`,
  }),
  watchReplica: (name) => new Promise(() => void name),
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

describe('NodeAgent calls over the agent connection', () => {
  let server: WebSocketServer;
  let url: string;
  const remote = new ConnectedNodeAgent('worker-1');

  before(async () => {
    server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => server.once('listening', resolve));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const client of server.clients) client.terminate();
    await new Promise((resolve) => server.close(resolve));
  });

  const connect = async (): Promise<WebSocket> => {
    const accepted = new Promise<WebSocket>((resolve) => server.once('connection', resolve));
    const agentSide = new WebSocket(url);
    serveNodeAgent(agentSide, memoryNode, silentLogger());
    const operatorSide = await accepted;
    remote.attach(operatorSide);
    await new Promise((resolve) => agentSide.once('open', resolve));
    return agentSide;
  };

  test('a node never connected is unreachable, as an HTTP agent that does not answer', async () => {
    await assert.rejects(remote.snapshot(), (error: unknown) => {
      assert.ok(error instanceof BerthError);
      assert.equal(error.code, 'ERR_AGENT_UNREACHABLE');
      assert.equal(error.disposition, 'transient');
      return true;
    });
  });

  test('results come back; the node is named by its certificate, not by itself', async () => {
    await connect();
    const snapshot = await remote.snapshot();
    assert.equal(snapshot.name, 'worker-1');
    assert.equal(snapshot.status, 'ready');
    assert.deepEqual(snapshot.labels, { zone: 'a' });
    assert.deepEqual(
      snapshot.replicas.map((r) => [r.name, r.node]),
      [[replica.name, 'worker-1']],
    );
    assert.deepEqual(await remote.awaitReplica('x', { timeoutMs: 5 }), {
      outcome: 'timeout',
      replica: null,
      reason: 'x 5',
    });
    assert.equal((await remote.awaitReplica(replica.name, { timeoutMs: 5 })).replica?.node, 'worker-1');
    assert.equal(await remote.removeReplica('x'), undefined);
  });

  test('errors are rebuilt with their code, message, data and disposition', async () => {
    const request: ReplicaRequest = {
      name: 'r',
      namespace: 'default',
      service: 'web',
      slot: '1',
      specHash: 'abc',
      revision: 'r1',
      image: 'nope:1',
      command: null,
      args: null,
      env: {},
      ports: [],
      files: [],
      healthcheck: null,
      limits: { nanoCpus: 0, memoryBytes: 0 },
      restart: { condition: 'any', maxAttempts: 0 },
      stopGracePeriodMs: 1000,
      user: null,
      workingDir: null,
      init: false,
      specSummary: {},
    };
    await assert.rejects(remote.ensureReplica(request), (error: unknown) => {
      assert.ok(error instanceof BerthError);
      assert.equal(error.code, 'ERR_IMAGE_NOT_FOUND');
      assert.equal(error.message, 'image nope:1 is not on this node');
      assert.deepEqual(error.data, { image: 'nope:1' });
      assert.equal(error.disposition, 'terminal');
      return true;
    });
  });

  test('a drained node reports status drain', async () => {
    remote.drained = true;
    assert.equal((await remote.snapshot()).status, 'drain');
    remote.drained = false;
  });

  test('a call in flight when the connection drops fails as unreachable', async () => {
    const agentSide = await connect();
    const watching = remote.watchReplica('x', { durationMs: 60_000 });
    agentSide.terminate();
    await assert.rejects(
      watching,
      (error: unknown) => error instanceof BerthError && error.code === 'ERR_AGENT_UNREACHABLE',
    );
  });
});
