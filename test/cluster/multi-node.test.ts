import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TEST_IMAGES, testDocker } from '../helpers/docker.js';
import { startTestEngines, type TestEngines } from '../helpers/multi-node.js';

const run = promisify(execFile);

describe('the multi-node harness', () => {
  let cluster: TestEngines;

  before(async () => {
    cluster = await startTestEngines(2, 'harness');
  });

  after(async () => {
    await cluster.stop();
  });

  test('each node is an engine of its own with the test images, publishing on its own address', async () => {
    const [a, b] = cluster.engines;
    assert.ok(a && b);
    const infoA = await a.docker.info();
    const infoB = await b.docker.info();
    const main = await testDocker().info();
    // Engines share the daemon key (and so the ID); their data roots say they are separate.
    assert.notEqual(infoA.DockerRootDir, infoB.DockerRootDir);
    assert.notEqual(infoA.DockerRootDir, main.DockerRootDir);
    for (const engine of cluster.engines) {
      await engine.docker.getImage(TEST_IMAGES.webV1).inspect();
      const { stdout } = await run('docker', [
        '-H',
        `unix://${engine.socketPath}`,
        'run',
        '-d',
        '--rm',
        '-p',
        `${engine.address}::8080`,
        TEST_IMAGES.webV1,
      ]);
      const id = stdout.trim();
      try {
        const port = (await engine.docker.getContainer(id).inspect()).NetworkSettings.Ports['8080/tcp']?.[0]
          ?.HostPort;
        assert.ok(port);
        // Until the server in the container answers (on a loaded machine its start can take many
        // seconds), or the container is gone; the bound only ends a test that would hang.
        let body = '';
        const deadline = Date.now() + 120_000;
        while (body === '' && Date.now() < deadline) {
          body = await fetch(`http://${engine.address}:${port}/`).then(
            (r) => r.text(),
            () => '',
          );
          if (body !== '') break;
          const state = (await engine.docker.getContainer(id).inspect()).State;
          assert.ok(state.Running, `the web container stopped: ${state.Status} (exit ${state.ExitCode})`);
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(body.trim(), 'v1');
      } finally {
        await engine.docker.getContainer(id).remove({ force: true });
      }
    }
    // The main engine's default bridge is untouched.
    const bridge = await testDocker().getNetwork('bridge').inspect();
    assert.equal(bridge.Name, 'bridge');
  });
});
