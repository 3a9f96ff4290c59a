/**
 * The local agent against the real Docker engine: replicas are created, probed, awaited and
 * removed, and what runs is checked from the outside (HTTP answers, docker inspect, files).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { createDockerRuntime } from '../../src/agent/docker-runtime.js';
import { createLocalAgent } from '../../src/agent/local-agent.js';
import { LABELS, type NodeAgent } from '../../src/api/types.js';
import { BerthError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { eventually } from '../helpers/berth-cli.js';
import { dockerExec, MISSING_IMAGE, requireTestImages, TEST_IMAGES, testDocker } from '../helpers/docker.js';
import { createTestNode, httpCheck, publishedUrl, webReplica, type TestNode } from './agent-fixtures.js';

const AWAIT_MS = 30_000;

void describe('local agent on a real Docker engine', () => {
  let node: TestNode;
  let agent: NodeAgent;
  const runtime = createDockerRuntime();

  before(async () => {
    await requireTestImages();
    node = await createTestNode();
    agent = createLocalAgent({ runtime, nodeName: node.name, stateDir: node.stateDir, log: silentLogger() });
  });

  after(async () => {
    await agent.close();
    await node.cleanup();
  });

  void test('a replica with an http health check becomes healthy and serves its image content', async () => {
    const request = webReplica(node.name, 'http');
    const created = await agent.ensureReplica(request);
    assert.equal(created.name, request.name);
    const wait = await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS });
    assert.equal(wait.outcome, 'healthy', wait.reason ?? '');
    assert.equal(wait.replica?.health, 'healthy');
    const url = publishedUrl(wait.replica.ports, 8080);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const response = await fetch(`${url}/`);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'v1\n');
  });

  void test('a replica prepared ahead is created, not started; ensureReplica starts that very container', async () => {
    const request = webReplica(node.name, 'ahead');
    await agent.prepareReplica(request);
    const prepared = await testDocker().getContainer(request.name).inspect();
    assert.equal(prepared.State.Status, 'created');
    // Asked again (a retried call): the same container, still not started.
    await agent.prepareReplica(request);
    assert.equal((await testDocker().getContainer(request.name).inspect()).Id, prepared.Id);
    await agent.ensureReplica(request);
    const wait = await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS });
    assert.equal(wait.outcome, 'healthy', wait.reason ?? '');
    assert.equal(wait.replica?.id, prepared.Id);
    await agent.removeReplica(request.name);
  });

  void test('a replica prepared ahead and removed behind berth`s back is created again by ensureReplica', async () => {
    const request = webReplica(node.name, 'ahead-gone');
    await agent.prepareReplica(request);
    const prepared = await testDocker().getContainer(request.name).inspect();
    await testDocker().getContainer(prepared.Id).remove({ force: true });
    await agent.ensureReplica(request);
    const wait = await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS });
    assert.equal(wait.outcome, 'healthy', wait.reason ?? '');
    assert.notEqual(wait.replica?.id, prepared.Id);
    await agent.removeReplica(request.name);
  });

  void test('a job run only created (its start cut short) is started by the next ask; a finished run is never run again', async () => {
    const request = webReplica(node.name, 'run', {
      service: 'migrate',
      image: TEST_IMAGES.busybox,
      command: ['sh', '-c', 'echo ran'],
      ports: [],
      healthcheck: null,
      restart: { condition: 'none', maxAttempts: 0 },
      job: { name: `${node.name}.migrate-1`, attempt: 1 },
    });
    // What an operator killed between the create and the start of the run leaves behind.
    await agent.prepareReplica(request);
    const created = await testDocker().getContainer(request.name).inspect();
    assert.equal(created.State.Status, 'created');
    await agent.ensureReplica(request);
    const ran = await eventually('the run exits', async () => {
      const info = await testDocker().getContainer(request.name).inspect();
      return info.State.Status === 'exited' ? info : null;
    });
    assert.equal(ran.Id, created.Id, 'the very container that was created');
    assert.equal(ran.State.ExitCode, 0);
    // Asked again (a retried call): what the run did stands; it does not run a second time.
    await agent.ensureReplica(request);
    const again = await testDocker().getContainer(request.name).inspect();
    assert.equal(again.State.Status, 'exited');
    assert.equal(again.State.StartedAt, ran.State.StartedAt);
    await agent.removeReplica(request.name);
  });

  void test('labels, env, command, limits and restart policy are applied', async () => {
    const request = webReplica(node.name, 'spec', {
      env: { GREETING: 'hello world', EMPTY: '' },
      command: ['sh', '-c'],
      args: ['echo "$GREETING" > /tmp/greeting && exec httpd -f -p 8080 -h /www'],
      limits: { nanoCpus: 500_000_000, memoryBytes: 64 * 1024 * 1024 },
      restart: { condition: 'on-failure', maxAttempts: 3 },
      stopGracePeriodMs: 2500,
      workingDir: '/tmp',
      user: 'nobody',
      specSummary: { image: TEST_IMAGES.webV1, note: 'summary' },
    });
    await agent.ensureReplica(request);
    const wait = await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS });
    assert.equal(wait.outcome, 'healthy', wait.reason ?? '');

    const info = await testDocker().getContainer(request.name).inspect();
    assert.deepEqual(info.Config.Entrypoint, ['sh', '-c']);
    assert.deepEqual(info.Config.Cmd, ['echo "$GREETING" > /tmp/greeting && exec httpd -f -p 8080 -h /www']);
    assert.ok(info.Config.Env.includes('GREETING=hello world'));
    assert.ok(info.Config.Env.includes('EMPTY='));
    assert.equal(info.Config.User, 'nobody');
    assert.equal(info.Config.WorkingDir, '/tmp');
    assert.equal(info.HostConfig.NanoCpus, 500_000_000);
    assert.equal(info.HostConfig.Memory, 64 * 1024 * 1024);
    assert.deepEqual(info.HostConfig.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });
    assert.equal(info.HostConfig.Init, true);
    assert.equal((info.Config as { StopTimeout?: number }).StopTimeout, 3);
    assert.deepEqual(info.HostConfig.PortBindings, { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] });

    const labels = info.Config.Labels;
    assert.equal(labels[LABELS.managed], 'true');
    assert.equal(labels[LABELS.service], 'web');
    assert.equal(labels[LABELS.namespace], 'default');
    assert.equal(labels[LABELS.revision], request.revision);
    assert.equal(labels[LABELS.specHash], request.specHash);
    assert.equal(labels[LABELS.slot], 'spec');
    assert.equal(labels[LABELS.node], node.name);
    assert.deepEqual(JSON.parse(labels[LABELS.healthcheck]!), request.healthcheck);
    assert.deepEqual(JSON.parse(labels[LABELS.specSummary]!), request.specSummary);
    assert.equal(labels[LABELS.stopGraceMs], '2500');

    const greeting = await dockerExec(request.name, ['cat', '/tmp/greeting']);
    assert.equal(greeting.output, 'hello world\n');
    const whoami = await dockerExec(request.name, ['id', '-u']);
    assert.equal(whoami.output.trim(), '65534');
  });

  void test('a command without args replaces the image default entirely (Kubernetes semantics)', async () => {
    const request = webReplica(node.name, 'cmd', {
      command: ['httpd', '-f', '-p', '8080', '-h', '/tmp'],
      args: null,
      healthcheck: httpCheck({}, '/'),
    });
    await agent.ensureReplica(request);
    const info = await testDocker().getContainer(request.name).inspect();
    assert.deepEqual(info.Config.Entrypoint, ['httpd', '-f', '-p', '8080', '-h', '/tmp']);
    assert.equal(info.Config.Cmd, null);
    const wait = await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS });
    // /tmp has no index.html: httpd answers 404, which is not healthy.
    assert.equal(wait.outcome, 'unhealthy');
    assert.match(wait.reason ?? '', /404/);
  });

  void test('ensureReplica replaces a replica of the same spec that fails its health check (a repair)', async () => {
    const request = webReplica(node.name, 'repair');
    const first = await agent.ensureReplica(request);
    assert.equal((await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS })).outcome, 'healthy');
    // Broken from inside: the check's page is gone, the replica turns unhealthy but keeps running.
    assert.equal((await dockerExec(request.name, ['rm', '/www/index.html'])).exitCode, 0);
    await eventually('the replica is unhealthy', async () =>
      (await agent.snapshot()).replicas.some((r) => r.name === request.name && r.health === 'unhealthy'),
    );
    const second = await agent.ensureReplica(request);
    assert.notEqual(second.id, first.id, 'a new container, not the broken one handed back');
    assert.equal((await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS })).outcome, 'healthy');
  });

  void test('config files are delivered byte for byte, read-only, and removed with the replica', async () => {
    const content = Buffer.from('<h1>from a config</h1>\n\u00e9\u0000binary\n', 'utf8');
    const request = webReplica(node.name, 'files', {
      files: [
        {
          target: '/www/index.html',
          mode: 0o444,
          uid: 0,
          gid: 0,
          contentBase64: content.toString('base64'),
          secret: false,
        },
        {
          target: '/etc/app/settings.conf',
          mode: 0o640,
          uid: 65534,
          gid: 65534,
          contentBase64: Buffer.from('x=1\n').toString('base64'),
          secret: false,
        },
      ],
    });
    await agent.ensureReplica(request);
    const wait = await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS });
    assert.equal(wait.outcome, 'healthy', wait.reason ?? '');

    const response = await fetch(`${publishedUrl(wait.replica!.ports, 8080)}/index.html`);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), content);

    const write = await dockerExec(request.name, ['sh', '-c', 'echo changed > /www/index.html']);
    assert.notEqual(write.exitCode, 0);
    assert.match(write.output, /read-only/i);
    const stat = await dockerExec(request.name, ['stat', '-c', '%a %u %g', '/etc/app/settings.conf']);
    assert.equal(stat.output.trim(), '640 65534 65534');

    const filesDir = path.join(node.stateDir, 'files', request.name);
    assert.equal((await readdir(filesDir)).length, 2);
    await agent.removeReplica(request.name);
    await assert.rejects(access(filesDir));
    await assert.rejects(
      testDocker().getContainer(request.name).inspect(),
      (error: { statusCode?: number }) => error.statusCode === 404,
    );
  });

  void test("files of a container removed behind the agent's back are cleaned up", async () => {
    const request = webReplica(node.name, 'rmfiles', {
      files: [
        { target: '/www/index.html', mode: 0o444, uid: 0, gid: 0, contentBase64: 'eA==', secret: false },
      ],
    });
    await agent.ensureReplica(request);
    const filesDir = path.join(node.stateDir, 'files', request.name);
    await access(filesDir);
    await testDocker().getContainer(request.name).remove({ force: true });
    await eventually(
      'files dir removed after docker rm',
      async () =>
        access(filesDir).then(
          () => false,
          () => true,
        ),
      60_000,
      50,
    );

    // Left-overs from a time no agent was watching go when an agent starts.
    const stale = path.join(node.stateDir, 'files', `${node.name}.web.long-gone`);
    await mkdir(stale, { recursive: true });
    const fresh = createLocalAgent({
      runtime,
      nodeName: node.name,
      stateDir: node.stateDir,
      log: silentLogger(),
    });
    try {
      await fresh.snapshot();
      await assert.rejects(access(stale));
    } finally {
      await fresh.close();
    }
  });

  void test('secret files live on a tmpfs and are mounted read-only', async () => {
    const request = webReplica(node.name, 'secret', {
      files: [
        {
          target: '/run/secrets/db-password',
          mode: 0o400,
          uid: 0,
          gid: 0,
          contentBase64: Buffer.from('s3cr3t').toString('base64'),
          secret: true,
        },
      ],
    });
    await agent.ensureReplica(request);
    const read = await dockerExec(request.name, ['cat', '/run/secrets/db-password']);
    assert.equal(read.output, 's3cr3t');
    const mounts = await dockerExec(request.name, ['cat', '/proc/mounts']);
    const line = mounts.output.split('\n').find((entry) => entry.includes(' /run/secrets/db-password '));
    assert.match(line ?? '', /^\S+ \/run\/secrets\/db-password tmpfs ro[, ]/);
    const info = await testDocker().getContainer(request.name).inspect();
    assert.ok(!JSON.stringify(info).includes('s3cr3t'), 'the secret value must not show in docker inspect');
    await agent.removeReplica(request.name);
    await assert.rejects(access(path.join(node.stateDir, 'secrets', request.name)));
  });

  void test('ensureReplica is idempotent: same name and hash keep the same container', async () => {
    const request = webReplica(node.name, 'idem');
    const first = await agent.ensureReplica(request);
    const second = await agent.ensureReplica(request);
    assert.equal(second.id, first.id);
    const changed = await agent.ensureReplica({ ...request, specHash: 'c'.repeat(64) });
    assert.notEqual(changed.id, first.id);
    assert.equal(changed.specHash, 'c'.repeat(64));
  });

  void test('an exited container of the same name is replaced', async () => {
    const request = webReplica(node.name, 'stale');
    const first = await agent.ensureReplica(request);
    await testDocker().getContainer(request.name).stop({ t: 0 });
    const second = await agent.ensureReplica(request);
    assert.notEqual(second.id, first.id);
    assert.equal(second.state, 'running');
  });

  void test('a crashing image ends the wait with exited', async () => {
    const request = webReplica(node.name, 'crash', { image: TEST_IMAGES.crash });
    await agent.ensureReplica(request);
    const wait = await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS });
    assert.equal(wait.outcome, 'exited');
    assert.match(wait.reason ?? '', /exit code 1|restart/);
  });

  void test('a crashing image without a restart policy is reported exited with its exit code', async () => {
    const request = webReplica(node.name, 'crash-once', {
      image: TEST_IMAGES.crash,
      healthcheck: null,
      restart: { condition: 'none', maxAttempts: 0 },
    });
    await agent.ensureReplica(request);
    await testDocker().getContainer(request.name).wait();
    const wait = await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS });
    assert.equal(wait.outcome, 'exited');
    assert.equal(wait.replica?.exitCode, 1);
    assert.equal(wait.replica?.health, 'unhealthy');
    assert.match(wait.reason ?? '', /exit code 1/);
  });

  void test('an http check on the wrong path or port ends the wait with unhealthy', async () => {
    const wrongPath = webReplica(node.name, 'badpath', { healthcheck: httpCheck({}, '/missing') });
    const wrongPort = webReplica(node.name, 'badport', {
      healthcheck: { ...httpCheck(), probe: { type: 'http', port: 9999, path: '/', expectStatus: [] } },
    });
    await agent.ensureReplica(wrongPath);
    await agent.ensureReplica(wrongPort);
    const [pathWait, portWait] = await Promise.all([
      agent.awaitReplica(wrongPath.name, { timeoutMs: AWAIT_MS }),
      agent.awaitReplica(wrongPort.name, { timeoutMs: AWAIT_MS }),
    ]);
    assert.equal(pathWait.outcome, 'unhealthy');
    assert.match(pathWait.reason ?? '', /404/);
    assert.equal(portWait.outcome, 'unhealthy');
    // The check's port is published even though it is not in `ports`, so the probe reaches it.
    assert.ok(portWait.replica?.ports.some((port) => port.target === 9999));
  });

  void test('tcp and exec probes', async () => {
    const tcpGood = webReplica(node.name, 'tcp-good', {
      healthcheck: { ...httpCheck(), probe: { type: 'tcp', port: 8080 } },
    });
    const tcpBad = webReplica(node.name, 'tcp-bad', {
      healthcheck: { ...httpCheck(), probe: { type: 'tcp', port: 8081 } },
    });
    const execGood = webReplica(node.name, 'exec-good', {
      healthcheck: { ...httpCheck(), probe: { type: 'exec', command: ['test', '-f', '/www/index.html'] } },
    });
    const execBad = webReplica(node.name, 'exec-bad', {
      healthcheck: {
        ...httpCheck(),
        probe: { type: 'exec', command: ['sh', '-c', 'echo not ready; exit 3'] },
      },
    });
    for (const request of [tcpGood, tcpBad, execGood, execBad]) await agent.ensureReplica(request);
    const [a, b, c, d] = await Promise.all(
      [tcpGood, tcpBad, execGood, execBad].map((request) =>
        agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS }),
      ),
    );
    assert.equal(a?.outcome, 'healthy', a?.reason ?? '');
    assert.equal(b?.outcome, 'unhealthy');
    assert.equal(c?.outcome, 'healthy', c?.reason ?? '');
    assert.equal(d?.outcome, 'unhealthy');
    assert.match(d?.reason ?? '', /exit(ed with)? code 3.*not ready/);
  });

  void test('a replica without a health check is ready once running', async () => {
    const request = webReplica(node.name, 'nocheck', { healthcheck: null });
    await agent.ensureReplica(request);
    const wait = await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS });
    assert.equal(wait.outcome, 'healthy');
    assert.equal(wait.replica?.health, 'none');
  });

  void test('watchReplica passes a replica that stays up and fails one that dies', async () => {
    const steady = webReplica(node.name, 'watch-ok');
    const doomed = webReplica(node.name, 'watch-die', { restart: { condition: 'none', maxAttempts: 0 } });
    await agent.ensureReplica(steady);
    await agent.ensureReplica(doomed);
    assert.equal((await agent.awaitReplica(steady.name, { timeoutMs: AWAIT_MS })).outcome, 'healthy');
    assert.equal((await agent.awaitReplica(doomed.name, { timeoutMs: AWAIT_MS })).outcome, 'healthy');
    const watchSteady = agent.watchReplica(steady.name, { durationMs: 1500 });
    const watchDoomed = agent.watchReplica(doomed.name, { durationMs: 60_000 });
    await testDocker().getContainer(doomed.name).kill();
    const doomedResult = await watchDoomed;
    assert.equal(doomedResult.outcome, 'exited');
    const steadyResult = await watchSteady;
    assert.equal(steadyResult.outcome, 'healthy', steadyResult.reason ?? '');
  });

  void test('awaiting or removing a missing replica', async () => {
    const wait = await agent.awaitReplica(`${node.name}.nothing`, { timeoutMs: 1000 });
    assert.equal(wait.outcome, 'missing');
    await agent.removeReplica(`${node.name}.nothing`);
  });

  void test('a missing image fails with ERR_IMAGE_NOT_FOUND naming the image', async () => {
    const request = webReplica(node.name, 'noimage', { image: MISSING_IMAGE });
    await assert.rejects(agent.ensureReplica(request), (error: unknown) => {
      assert.ok(error instanceof BerthError);
      assert.equal(error.code, 'ERR_IMAGE_NOT_FOUND');
      assert.ok(error.message.includes(MISSING_IMAGE), error.message);
      return true;
    });
    await assert.rejects(testDocker().getContainer(request.name).inspect());
  });

  void test('snapshot reports node, images and replicas with health', async () => {
    const request = webReplica(node.name, 'snap');
    await agent.ensureReplica(request);
    assert.equal((await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS })).outcome, 'healthy');
    const snapshot = await agent.snapshot();
    assert.equal(snapshot.name, node.name);
    assert.equal(snapshot.address, '127.0.0.1');
    assert.equal(snapshot.status, 'ready');
    assert.ok(snapshot.capacity.nanoCpus >= 1e9);
    assert.ok(snapshot.capacity.memoryBytes > 0);
    assert.ok(snapshot.images.includes(TEST_IMAGES.webV1));
    const replica = snapshot.replicas.find((r) => r.name === request.name);
    assert.ok(replica);
    assert.equal(replica.node, node.name);
    assert.equal(replica.service, 'web');
    assert.equal(replica.slot, 'snap');
    assert.equal(replica.state, 'running');
    assert.equal(replica.health, 'healthy');
    assert.deepEqual(replica.specSummary, request.specSummary);
    assert.ok(snapshot.replicas.every((r) => r.node === node.name));
  });

  void test('a new agent on the same engine picks up running replicas and their health', async () => {
    const request = webReplica(node.name, 'resume');
    await agent.ensureReplica(request);
    assert.equal((await agent.awaitReplica(request.name, { timeoutMs: AWAIT_MS })).outcome, 'healthy');
    const restarted = createLocalAgent({
      runtime,
      nodeName: node.name,
      stateDir: node.stateDir,
      log: silentLogger(),
    });
    try {
      const snapshot = await restarted.snapshot();
      const replica = snapshot.replicas.find((r) => r.name === request.name);
      assert.equal(replica?.health, 'healthy', replica?.healthDetail ?? '');
      const again = await restarted.ensureReplica(request);
      assert.equal(again.id, replica?.id);
    } finally {
      await restarted.close();
    }
  });

  void test('an agent does not see or touch containers of another node name', async () => {
    const request = webReplica(node.name, 'owned');
    await agent.ensureReplica(request);
    const other = createLocalAgent({
      runtime,
      nodeName: `${node.name}-other`,
      stateDir: node.stateDir,
      log: silentLogger(),
    });
    try {
      const snapshot = await other.snapshot();
      assert.ok(!snapshot.replicas.some((r) => r.name === request.name));
      await other.removeReplica(request.name);
      assert.equal((await testDocker().getContainer(request.name).inspect()).State.Running, true);
      await assert.rejects(
        other.ensureReplica(request),
        (error: unknown) => error instanceof BerthError && error.code === 'ERR_STATE',
      );
    } finally {
      await other.close();
    }
  });

  void test('removeReplica stops with the grace period and removes; twice is fine', async () => {
    const request = webReplica(node.name, 'remove', { init: false, stopGracePeriodMs: 1000 });
    await agent.ensureReplica(request);
    await agent.removeReplica(request.name);
    await agent.removeReplica(request.name);
    await assert.rejects(
      testDocker().getContainer(request.name).inspect(),
      (error: { statusCode?: number }) => error.statusCode === 404,
    );
    const snapshot = await agent.snapshot();
    assert.ok(!snapshot.replicas.some((r) => r.name === request.name));
  });
});
