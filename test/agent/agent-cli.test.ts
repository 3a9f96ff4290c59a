/** `berth agent` as a real process: flags, token, serving, clean shutdown, Docker errors. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createAgentClient } from '../../src/agent/client.js';
import { BerthError } from '../../src/core/errors.js';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { eventually, runBerth, startBerth } from '../helpers/berth-cli.js';
import { requireTestImages, testDocker } from '../helpers/docker.js';
import { createTestNode, webReplica, type TestNode } from './agent-fixtures.js';

const TOKEN = 'cli-test-token';

/** Whether `pid` runs; a zombie (exited, not yet reaped) does not. */
async function processRuns(pid: number): Promise<boolean> {
  const status = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return status !== null && status.slice(status.lastIndexOf(')') + 2)[0] !== 'Z';
}

void describe('berth agent command', () => {
  let node: TestNode;

  before(async () => {
    await requireTestImages();
    node = await createTestNode();
  });

  after(async () => {
    await node.cleanup();
  });

  void test('an unreachable Docker engine is one clear line and exit code 1', async () => {
    const result = await runBerth([
      'agent',
      '--token',
      TOKEN,
      '--docker',
      '/nonexistent/docker.sock',
      '--listen',
      '127.0.0.1:0',
    ]);
    assert.equal(result.code, 1);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(
      lines[0] ?? '',
      /^berth: cannot reach the Docker engine at unix:\/\/\/nonexistent\/docker\.sock/,
    );
  });

  void test('joining needs a token', async () => {
    const result = await runBerth(['agent', '--join', 'https://127.0.0.1:9'], {
      env: { BERTH_AGENT_TOKEN: '' },
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /--join needs a token/);
  });

  void test('serves the node over plain HTTP on loopback (--insecure-http) with the token from the environment, stops on SIGTERM', async () => {
    const agent = await startBerth(
      'agent',
      [
        '--listen',
        '127.0.0.1:0',
        '--insecure-http',
        '--node',
        node.name,
        '--label',
        'zone=b',
        '--label',
        'disk=ssd',
        '--state-dir',
        node.stateDir,
      ],
      { env: { BERTH_AGENT_TOKEN: TOKEN } },
    );
    try {
      const url = agent.url;
      assert.ok(url, agent.output());
      const client = createAgentClient({ url, token: TOKEN, nodeName: node.name });
      const snapshot = await client.snapshot();
      assert.equal(snapshot.name, node.name);
      assert.deepEqual(snapshot.labels, { zone: 'b', disk: 'ssd' });

      const request = webReplica(node.name, 'cli');
      await client.ensureReplica(request);
      const wait = await client.awaitReplica(request.name, { timeoutMs: 30_000 });
      assert.equal(wait.outcome, 'healthy', wait.reason ?? '');

      const intruder = createAgentClient({ url, token: 'nope', nodeName: node.name });
      await assert.rejects(
        intruder.snapshot(),
        (error: unknown) => error instanceof BerthError && error.code === 'ERR_AGENT_UNAUTHORIZED',
      );

      // The node's mesh runs in a process of its own, which a clean stop stops too.
      const meshHostPid = await eventually('the mesh host runs', async () =>
        Number((await readFile(join(node.stateDir, 'mesh-host.pid'), 'utf8')).trim()),
      );
      assert.notEqual(meshHostPid, agent.child.pid);
      const { code } = await agent.stop('SIGTERM');
      assert.equal(code, 0, agent.output());
      assert.ok(!(await processRuns(meshHostPid)), 'the mesh host stopped with its agent');
      await assert.rejects(stat(join(node.stateDir, 'mesh-host.sock')));
      // Stopping the agent leaves the node's containers running.
      assert.equal((await testDocker().getContainer(request.name).inspect()).State.Running, true);
    } finally {
      await agent.stop('SIGKILL');
    }
  });
});
