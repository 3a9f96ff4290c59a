/**
 * The agent's HTTP API on a real port, in front of a real local agent: authentication, error
 * transport, and the whole replica lifecycle through createAgentClient.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createAgentClient } from '../../src/agent/client.js';
import { createDockerRuntime } from '../../src/agent/docker-runtime.js';
import { createLocalAgent } from '../../src/agent/local-agent.js';
import { createAgentServer, type AgentServer } from '../../src/agent/server.js';
import type { NodeAgent } from '../../src/api/types.js';
import { BerthError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { MISSING_IMAGE, requireTestImages, testDocker } from '../helpers/docker.js';
import { freePort, getOnce } from '../helpers/load-loop.js';
import { createTestNode, publishedUrl, webReplica, type TestNode } from './agent-fixtures.js';

const TOKEN = 'test-token-0123456789';

void describe('agent HTTP server and client', () => {
  let node: TestNode;
  let local: NodeAgent;
  let server: AgentServer;
  let url: string;

  before(async () => {
    await requireTestImages();
    node = await createTestNode();
    local = createLocalAgent({
      runtime: createDockerRuntime(),
      nodeName: node.name,
      labels: { zone: 'a' },
      stateDir: node.stateDir,
      log: silentLogger(),
    });
    server = createAgentServer({ agent: local, token: TOKEN, log: silentLogger() });
    url = await server.listen({ host: '127.0.0.1', port: 0 });
  });

  after(async () => {
    await server.close();
    await local.close();
    await node.cleanup();
  });

  void test('healthz needs no token', async () => {
    const response = await fetch(`${url}/healthz`);
    assert.equal(response.status, 200);
  });

  void test('every API route refuses a missing or wrong token with 401', async () => {
    const attempts: [string, string, Record<string, string>][] = [
      ['GET', '/v1/node', {}],
      ['GET', '/v1/node', { authorization: `Bearer ${TOKEN}x` }],
      ['GET', '/v1/node', { authorization: `Bearer ${TOKEN.slice(0, -1)}` }],
      ['GET', '/v1/node', { authorization: TOKEN }],
      ['GET', '/v1/node', { authorization: 'Bearer ' }],
      ['DELETE', `/v1/replicas/${node.name}.x`, { authorization: 'Basic Zm9vOmJhcg==' }],
      ['POST', `/v1/replicas/${node.name}.x/await`, {}],
    ];
    for (const [method, path, headers] of attempts) {
      const response = await fetch(`${url}${path}`, { method, headers });
      assert.equal(response.status, 401, `${method} ${path} ${JSON.stringify(headers)}`);
      const body = (await response.json()) as { code: string; message: string };
      assert.equal(body.code, 'ERR_AGENT_UNAUTHORIZED');
      assert.equal(typeof body.message, 'string');
    }
  });

  void test('a client with the wrong token gets ERR_AGENT_UNAUTHORIZED', async () => {
    const client = createAgentClient({ url, token: 'wrong', nodeName: node.name });
    await assert.rejects(
      client.snapshot(),
      (error: unknown) => error instanceof BerthError && error.code === 'ERR_AGENT_UNAUTHORIZED',
    );
  });

  void test('bad requests are refused with ERR_BAD_REQUEST', async () => {
    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const request = webReplica(node.name, 'mismatch');
    const mismatch = await fetch(`${url}/v1/replicas/${node.name}.other`, {
      method: 'PUT',
      headers,
      body: JSON.stringify(request),
    });
    assert.equal(mismatch.status, 400);
    assert.equal(((await mismatch.json()) as { code: string }).code, 'ERR_BAD_REQUEST');

    const withoutImage: Partial<typeof request> = { ...request };
    delete withoutImage.image;
    const invalid = await fetch(`${url}/v1/replicas/${request.name}`, {
      method: 'PUT',
      headers,
      body: JSON.stringify(withoutImage),
    });
    assert.equal(invalid.status, 400);
    const body = (await invalid.json()) as { code: string; message: string };
    assert.equal(body.code, 'ERR_BAD_REQUEST');
    assert.match(body.message, /image/);

    const badTimeout = await fetch(`${url}/v1/replicas/${request.name}/await`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ timeoutMs: 'soon' }),
    });
    assert.equal(badTimeout.status, 400);
    await assert.rejects(testDocker().getContainer(request.name).inspect());
  });

  void test('the full replica lifecycle works through the client', async () => {
    const client = createAgentClient({ url, token: TOKEN, nodeName: node.name });
    try {
      const request = webReplica(node.name, 'remote', {
        files: [
          {
            target: '/www/index.html',
            mode: 0o444,
            uid: 0,
            gid: 0,
            contentBase64: Buffer.from('remote content\n').toString('base64'),
            secret: false,
          },
        ],
      });
      const created = await client.ensureReplica(request);
      assert.equal(created.name, request.name);
      assert.equal(created.node, node.name);

      const wait = await client.awaitReplica(request.name, { timeoutMs: 30_000 });
      assert.equal(wait.outcome, 'healthy', wait.reason ?? '');
      const page = await fetch(`${publishedUrl(wait.replica!.ports, 8080)}/`);
      assert.equal(await page.text(), 'remote content\n');

      const again = await client.ensureReplica(request);
      assert.equal(again.id, created.id);

      const snapshot = await client.snapshot();
      assert.equal(snapshot.name, node.name);
      assert.deepEqual(snapshot.labels, { zone: 'a' });
      const replica = snapshot.replicas.find((r) => r.name === request.name);
      assert.equal(replica?.health, 'healthy');

      const watched = await client.watchReplica(request.name, { durationMs: 500 });
      assert.equal(watched.outcome, 'healthy', watched.reason ?? '');

      await client.removeReplica(request.name);
      await client.removeReplica(request.name);
      const gone = await client.awaitReplica(request.name, { timeoutMs: 1000 });
      assert.equal(gone.outcome, 'missing');
    } finally {
      await client.close();
    }
  });

  void test('agent errors are rebuilt on the client side', async () => {
    const client = createAgentClient({ url, token: TOKEN, nodeName: node.name });
    const request = webReplica(node.name, 'noimage', { image: MISSING_IMAGE });
    await assert.rejects(client.ensureReplica(request), (error: unknown) => {
      assert.ok(error instanceof BerthError);
      assert.equal(error.code, 'ERR_IMAGE_NOT_FOUND');
      assert.ok(error.message.includes(MISSING_IMAGE));
      return true;
    });
  });

  void test('an agent that does not answer is ERR_AGENT_UNREACHABLE', async () => {
    const closedServer = createAgentServer({ agent: local, token: TOKEN, log: silentLogger() });
    const closedUrl = await closedServer.listen({ host: '127.0.0.1', port: 0 });
    await closedServer.close();
    const client = createAgentClient({ url: closedUrl, token: TOKEN, nodeName: 'gone' });
    await assert.rejects(client.snapshot(), (error: unknown) => {
      assert.ok(error instanceof BerthError);
      assert.equal(error.code, 'ERR_AGENT_UNREACHABLE');
      assert.equal(error.disposition, 'transient');
      assert.match(error.message, /gone/);
      return true;
    });
  });

  void test('mesh routes pushed over HTTP are served on the node address', async () => {
    const client = createAgentClient({ url, token: TOKEN, nodeName: node.name });
    // The agent's own HTTP port stands in for a replica: any TCP server works as a backend.
    const backendPort = Number(new URL(url).port);
    const published = await freePort();
    await client.setMeshRoutes(
      {
        version: 1,
        routes: [
          {
            service: 'ns/api',
            published,
            protocol: 'tcp',
            backends: [{ id: 'agent-api', host: '127.0.0.1', port: backendPort }],
          },
        ],
      },
      { drainTimeoutMs: 0 },
    );
    const answer = await getOnce('127.0.0.1', published);
    // The agent's own answer to a request without a token, reached through the mesh.
    assert.equal(answer.status, 401);
    assert.match(answer.body, /ERR_AGENT_UNAUTHORIZED/);
    await client.setMeshRoutes({ version: 2, routes: [] }, { drainTimeoutMs: 0 });
    await assert.rejects(getOnce('127.0.0.1', published));
  });
});
