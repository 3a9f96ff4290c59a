/**
 * An agent older than the operator (its snapshot says no agent protocol, as agents before the
 * protocol did) would drop request fields it does not know. The operator places nothing on it:
 * two real agents on the engine served over the HTTP agent API, one of them answering as an
 * older agent; `berth apply` through both puts every replica on the current one and says why;
 * once the old one answers as upgraded, replicas land on it again.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createDockerRuntime } from '../../src/agent/docker-runtime.js';
import { createLocalAgent } from '../../src/agent/local-agent.js';
import { createAgentServer, type AgentServer } from '../../src/agent/server.js';
import type { NodeAgent } from '../../src/api/types.js';
import { silentLogger } from '../../src/core/log.js';
import { createTestNode, type TestNode } from '../agent/agent-fixtures.js';
import { runBerth } from '../helpers/berth-cli.js';
import { requireTestImages, testDocker } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import { removeNamespace } from './cluster-probe.js';

const ns = `proto${Date.now().toString(36)}`;
const SECRET = 'agent-protocol-test-secret';

interface ServedAgent {
  node: TestNode;
  agent: NodeAgent;
  server: AgentServer;
  url: string;
}

/** A real agent on the engine behind the HTTP agent API; `old()` says whether it answers as an older agent. */
async function serveAgent(old: () => boolean): Promise<ServedAgent> {
  const node = await createTestNode();
  const agent = createLocalAgent({
    runtime: createDockerRuntime(),
    nodeName: node.name,
    stateDir: node.stateDir,
    log: silentLogger(),
  });
  const served: NodeAgent = {
    ...agent,
    snapshot: async () => {
      const snapshot = await agent.snapshot();
      if (!old()) return snapshot;
      const { agent: said, ...older } = snapshot;
      void said;
      return older;
    },
  };
  const server = createAgentServer({ agent: served, token: SECRET, log: silentLogger() });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  return { node, agent, server, url };
}

async function replicaNodes(): Promise<string[]> {
  const containers = await testDocker().listContainers({
    filters: { label: [`berth.namespace=${ns}`, 'berth.service=web'] },
  });
  return containers.map((c) => c.Labels['berth.node'] ?? '').sort();
}

describe('an agent older than the operator', () => {
  let repo: TestRepo;
  let stateDir: string;
  let olderAgent = true;
  const agents: ServedAgent[] = [];
  const apply = () =>
    runBerth([
      'apply',
      '--repo',
      repo.dir,
      '--state-dir',
      stateDir,
      ...agents.flatMap((a) => ['--agent', a.url, '--agent-token', SECRET]),
    ]);

  before(async () => {
    await requireTestImages();
    stateDir = await mkdtemp(join(tmpdir(), 'berth-proto-'));
    repo = await createTestRepo({
      'app.yaml': manifestFile(namespaceManifest(ns), webService({ namespace: ns, replicas: 2 })),
    });
    agents.push(await serveAgent(() => olderAgent), await serveAgent(() => false));
  });

  after(async () => {
    for (const { server, agent, node } of agents) {
      await server.close();
      await agent.close();
      await node.cleanup();
    }
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('gets no replica, and the operator says why', async () => {
    const [old, current] = agents;
    const result = await apply();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.deepEqual(await replicaNodes(), [current!.node.name, current!.node.name]);
    assert.match(
      result.stdout + result.stderr,
      new RegExp(
        `node ${old!.node.name}: its agent \\(an earlier berth, agent protocol 0\\) is older than this operator`,
      ),
    );
  });

  test('once upgraded, takes replicas again', async () => {
    const [old, current] = agents;
    olderAgent = false;
    await repo.commit(
      { 'app.yaml': manifestFile(namespaceManifest(ns), webService({ namespace: ns, replicas: 4 })) },
      'four',
    );
    const result = await apply();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const nodes = await replicaNodes();
    assert.equal(nodes.length, 4);
    assert.ok(nodes.includes(old!.node.name), `replicas on ${nodes.join(', ')}`);
    assert.ok(nodes.includes(current!.node.name));
  });
});
