/**
 * One contract for both agent transports: the same malformed calls, sent to a real local agent
 * over the HTTP agent API and over the cluster's WebSocket RPC, are refused the same way
 * (ERR_BAD_REQUEST, the same message naming the field) and create nothing on the engine.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { createAgentClient } from '../../src/agent/client.js';
import { createDockerRuntime } from '../../src/agent/docker-runtime.js';
import { createLocalAgent } from '../../src/agent/local-agent.js';
import { createAgentServer, type AgentServer } from '../../src/agent/server.js';
import type { NodeAgent, ReplicaRequest } from '../../src/api/types.js';
import { ConnectedNodeAgent } from '../../src/cluster/connected-node-agent.js';
import { messageText } from '../../src/cluster/rpc-protocol.js';
import { serveNodeAgent } from '../../src/cluster/serve-node-agent.js';
import { BerthError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { requireTestImages, testDocker } from '../helpers/docker.js';
import { createTestNode, webReplica, type TestNode } from './agent-fixtures.js';

const TOKEN = 'contract-token-0123456789';

/** The refusal a call meets: its code and message (a call that succeeds fails the test). */
async function refusal(call: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof BerthError, String(error));
    return { code: error.code, message: error.message };
  }
  assert.fail('the call was accepted');
}

describe('malformed agent calls over HTTP and over the cluster RPC', () => {
  let node: TestNode;
  let local: NodeAgent;
  let server: AgentServer;
  let url: string;
  let http: NodeAgent;
  let wss: WebSocketServer;
  let agentSide: WebSocket;
  let operatorSide: WebSocket;
  const cluster = new ConnectedNodeAgent('worker-1');

  before(async () => {
    await requireTestImages();
    node = await createTestNode();
    local = createLocalAgent({
      runtime: createDockerRuntime(),
      nodeName: node.name,
      stateDir: node.stateDir,
      log: silentLogger(),
    });
    server = createAgentServer({ agent: local, token: TOKEN, log: silentLogger() });
    url = await server.listen({ host: '127.0.0.1', port: 0 });
    http = createAgentClient({ url, token: TOKEN, nodeName: node.name });
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => wss.once('listening', resolve));
    const accepted = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
    agentSide = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    serveNodeAgent(agentSide, local, silentLogger());
    operatorSide = await accepted;
    cluster.attach(operatorSide);
    await new Promise((resolve) => agentSide.once('open', resolve));
  });

  after(async () => {
    await cluster.close();
    agentSide?.terminate();
    await new Promise((resolve) => wss?.close(resolve));
    await http?.close();
    await server?.close();
    await local?.close();
    await node?.cleanup();
  });

  /** A raw call over the WebSocket, as an operator that does not know the contract would send it. */
  const rawRpc = (method: string, params: unknown[]): Promise<unknown> =>
    new Promise((resolve) => {
      const id = 1_000_000 + Math.floor(Math.random() * 1_000_000);
      const onMessage = (data: WebSocket.RawData) => {
        const message = JSON.parse(messageText(data)) as { id: number };
        if (message.id !== id) return;
        operatorSide.off('message', onMessage);
        resolve(message);
      };
      operatorSide.on('message', onMessage);
      operatorSide.send(JSON.stringify({ id, method, params }));
    });

  const request = (): ReplicaRequest => webReplica(node.name, 'contract');
  const malformed: [string, () => unknown, RegExp][] = [
    [
      'a missing image',
      () => {
        const withoutImage: Partial<ReplicaRequest> = request();
        delete withoutImage.image;
        return withoutImage;
      },
      /request: missing required field "image"/,
    ],
    ['an image of the wrong type', () => ({ ...request(), image: 42 }), /request\.image: must be string/],
    [
      'a bad port',
      () => ({ ...request(), ports: [{ target: 'http', protocol: 'tcp' }] }),
      /request\.ports\[0\]\.target/,
    ],
  ];

  for (const [what, body, names] of malformed) {
    test(`ensureReplica with ${what} is refused the same way on both`, async () => {
      const bad = body() as ReplicaRequest;
      const overHttp = await refusal(http.ensureReplica(bad));
      const overRpc = await refusal(cluster.ensureReplica(bad));
      assert.equal(overHttp.code, 'ERR_BAD_REQUEST');
      assert.match(overHttp.message, names);
      assert.deepEqual(overRpc, overHttp);
      await assert.rejects(testDocker().getContainer(request().name).inspect());
    });
  }

  test('a wait of the wrong type is refused the same way on both', async () => {
    const wait = { timeoutMs: 'soon' } as unknown as { timeoutMs: number };
    const overHttp = await refusal(
      fetch(`${url}/v1/replicas/${request().name}/await`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(wait),
      }).then(async (response) => {
        const body = (await response.json()) as { code: 'ERR_BAD_REQUEST'; message: string };
        assert.equal(response.status, 400);
        throw new BerthError(body.code, body.message);
      }),
    );
    const overRpc = (await rawRpc('awaitReplica', [request().name, wait])) as { error: unknown };
    assert.match(overHttp.message, /options\.timeoutMs: must be integer/);
    assert.deepEqual(overRpc.error, overHttp);
  });

  test('an unknown call is ERR_BAD_REQUEST on both, and the agent carries on', async () => {
    const overHttp = await fetch(`${url}/v1/replicas/${request().name}/restart`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(overHttp.status, 404);
    assert.equal(((await overHttp.json()) as { code: string }).code, 'ERR_BAD_REQUEST');
    const overRpc = (await rawRpc('restartReplica', [request().name])) as {
      error: { code: string; message: string };
    };
    assert.equal(overRpc.error.code, 'ERR_BAD_REQUEST');
    assert.match(overRpc.error.message, /unknown agent call "restartReplica"/);
    const extraParam = (await rawRpc('removeReplica', [request().name, 'also this'])) as {
      error: { code: string };
    };
    assert.equal(extraParam.error.code, 'ERR_BAD_REQUEST');

    // Nothing was created by any of it, and both transports still answer.
    assert.deepEqual((await http.snapshot()).replicas, []);
    assert.deepEqual((await cluster.snapshot()).replicas, []);
    await assert.rejects(testDocker().getContainer(request().name).inspect());
  });
});
