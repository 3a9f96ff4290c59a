/**
 * A node's own mesh follows the health of its replicas at once, before the operator's next table:
 * a real agent on the real engine, given one table and never another.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createDockerRuntime } from '../../src/agent/docker-runtime.js';
import { createLocalAgent } from '../../src/agent/local-agent.js';
import type { NodeAgent, ReplicaRequest } from '../../src/api/types.js';
import { silentLogger } from '../../src/core/log.js';
import { eventually } from '../helpers/berth-cli.js';
import { dockerExec, requireTestImages } from '../helpers/docker.js';
import { freePort, getOnce } from '../helpers/load-loop.js';
import { createTestNode, httpCheck, webReplica, type TestNode } from './agent-fixtures.js';

const AWAIT_MS = 30_000;

describe("a node's mesh and the health of its own replicas", () => {
  let node: TestNode;
  let agent: NodeAgent;
  let published: number;
  const replicas: ReplicaRequest[] = [];

  before(async () => {
    await requireTestImages();
    node = await createTestNode();
    agent = createLocalAgent({
      runtime: createDockerRuntime(),
      nodeName: node.name,
      stateDir: node.stateDir,
      log: silentLogger(),
    });
    for (const slot of ['1', '2']) {
      replicas.push(
        webReplica(node.name, slot, {
          // Each replica also serves its hostname at /id, to see which one answers.
          command: ['sh', '-c', 'hostname > /www/id && exec httpd -f -p 8080 -h /www'],
          healthcheck: httpCheck({ intervalMs: 200, retries: 2 }),
        }),
      );
    }
    const observed = [];
    for (const request of replicas) {
      await agent.ensureReplica(request);
      const wait = await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS });
      assert.equal(wait.outcome, 'healthy', wait.reason ?? '');
      observed.push(wait.replica!);
    }
    published = await freePort();
    // The operator's table: both replicas. No other table comes in this suite.
    await agent.setMeshRoutes(
      {
        version: 1,
        routes: [
          {
            service: 'default/web',
            published,
            protocol: 'tcp',
            backends: observed.map((r) => ({
              id: `${node.name}/${r.name}`,
              host: '127.0.0.1',
              port: r.ports.find((p) => p.target === 8080)!.hostPort,
            })),
          },
        ],
      },
      { drainTimeoutMs: 0 },
    );
  });

  after(async () => {
    await agent?.close();
    await node?.cleanup();
  });

  const answers = async (count: number): Promise<{ ids: Set<string>; failed: number }> => {
    const ids = new Set<string>();
    let failed = 0;
    for (let i = 0; i < count; i++) {
      const answer = await getOnce('127.0.0.1', published, 5000, '/id').catch(() => null);
      if (answer?.status === 200) ids.add(answer.body);
      else failed++;
    }
    return { ids, failed };
  };

  test('both replicas serve through the published port', async () => {
    assert.equal((await answers(8)).ids.size, 2);
  });

  test('a replica that turns unhealthy leaves at once, and comes back once healthy again', async () => {
    const broken = replicas[0]!;
    // The check asks for /: without it the replica answers 404 and turns unhealthy; /id stays.
    assert.equal((await dockerExec(broken.name, ['mv', '/www/index.html', '/www/index.bak'])).exitCode, 0);
    await eventually('the unhealthy replica is left out: 20 answers in a row from one replica', async () => {
      const { ids, failed } = await answers(20);
      return failed === 0 && ids.size === 1;
    });
    assert.equal((await dockerExec(broken.name, ['mv', '/www/index.bak', '/www/index.html'])).exitCode, 0);
    await eventually('healthy again, it serves again', async () => (await answers(8)).ids.size === 2);
  });
});
