import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  eventually,
  runBerth,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { dockerExec, requireDocker, requireTestImages } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { assertNoneFailed, freePort, getOnce, startLoadLoop } from '../helpers/load-loop.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import { bodies, removeNamespace, replicasOf } from '../operator/cluster-probe.js';

const ns = `mesh${Date.now().toString(36)}`;
const node = `test-${ns}`;

function manifests(
  image: string,
  published: number,
  broken = false,
  appProtocol: 'tcp' | 'http' = 'tcp',
): Record<string, string> {
  return {
    'deploy/all.yaml': manifestFile(
      namespaceManifest(ns),
      webService({
        namespace: ns,
        image,
        // The broken variant serves no page: its health check fails, and the update rolls back.
        ...(broken ? { command: ['sh', '-c', 'rm /www/index.html && exec httpd -f -p 8080 -h /www'] } : {}),
        replicas: 3,
        ports: [{ target: 8080, published, appProtocol }],
        update: { parallelism: 1, order: 'start-first', monitor: '1s' },
        stopGracePeriod: '2s',
      }),
    ),
  };
}

/** The Connection header of one answer through the mesh to a client that asks for keep-alive. */
function connectionHeader(port: number): Promise<string> {
  const agent = new Agent({ keepAlive: true });
  return new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.headers.connection)));
    });
    req.on('error', reject);
    req.end();
  }).finally(() => agent.destroy());
}

describe('routing mesh on one node (berth run, real engine)', () => {
  let repo: TestRepo;
  let stateDir: string;
  let operator: BerthProcess | null = null;
  let published: number;

  before(async () => {
    await requireDocker();
    await requireTestImages();
    published = await freePort();
    repo = await createTestRepo(manifests('berth-test/web:v1', published));
    stateDir = await mkdtemp(join(tmpdir(), 'berth-mesh-'));
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node }),
      // No service discovery here: containers keep Docker's resolvers (checked below).
      ...['--service-addresses', 'off'],
      // The user-space balancer (kernel-data-plane.test.ts has the nftables one).
      ...['--data-plane', 'userspace'],
      // Every deploy here is triggered by the watch.
      ...SCHEDULE_NEVER,
    ]);
  });
  after(async () => {
    await operator?.stop('SIGKILL');
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('the published port answers on the node address, served by the 3 replicas', async () => {
    await eventually(
      '3 replicas serving v1',
      async () => (await bodies(ns, 'web')).filter((b) => b === 'v1').length === 3,
    );
    await eventually(
      'the published port answers',
      async () => (await getOnce('127.0.0.1', published)).body === 'v1',
    );
    for (let i = 0; i < 9; i++) {
      const answer = await getOnce('127.0.0.1', published);
      assert.equal(answer.status, 200);
      assert.equal(answer.body, 'v1');
    }
    // Only the mesh serves the service port: the replicas publish on ephemeral ports.
    const replicas = await replicasOf(ns, 'web');
    assert.equal(replicas.length, 3);
    for (const r of replicas) assert.notEqual(r.port, published);
    const pid = (await readFile(join(stateDir, 'agent', 'mesh-host.pid'), 'utf8')).trim();
    assert.match(await readFile(join(stateDir, 'agent', 'mesh-host.log'), 'utf8'), /data plane: user space/);
    assert.equal(
      spawnSync('nft', ['list', 'table', 'ip', `berth_127_0_0_1_p${pid}`]).status,
      1,
      'no nftables table',
    );
    const resolv = await dockerExec(replicas[0]!.name, ['cat', '/etc/resolv.conf']);
    assert.doesNotMatch(resolv.output, /10\.234\./, "with --service-addresses off, Docker's resolvers");
  });

  test('a rolling update under a steady request loop fails no request', async () => {
    const load = startLoadLoop({ host: '127.0.0.1', port: published, perSecond: 20, maxMs: 120_000 });
    const commit = await repo.commit(manifests('berth-test/web:v2', published), 'v2');
    try {
      await eventually(
        'every replica on v2, and only v2 through the mesh',
        async () => {
          const replicas = await replicasOf(ns, 'web');
          if (replicas.length !== 3 || !replicas.every((r) => r.revision === commit && r.state === 'running'))
            return false;
          return (await getOnce('127.0.0.1', published)).body === 'v2';
        },
        110_000,
      );
    } finally {
      const report = await load.stop();
      assertNoneFailed(report);
      // Answers of both versions prove the loop spanned the rollout (a count would depend on its speed).
      assert.ok(
        report.bodies.has('v1') && report.bodies.has('v2'),
        `${report.requests} requests: ${JSON.stringify([...report.bodies])}`,
      );
    }
  });

  test('a failing update rolls back under a steady request loop and fails no request', async () => {
    const before = await replicasOf(ns, 'web');
    const good = before[0]?.revision;
    assert.ok(good && before.every((r) => r.revision === good));
    const load = startLoadLoop({ host: '127.0.0.1', port: published, perSecond: 20, maxMs: 120_000 });
    const broken = await repo.commit(manifests('berth-test/web:v2', published, true), 'broken page');
    try {
      await eventually(
        'a replica of the broken commit starts',
        async () => (await replicasOf(ns, 'web')).some((r) => r.revision === broken),
        60_000,
        50,
      );
      await eventually(
        'rolled back: only the 3 replicas of the last good commit',
        async () => {
          const replicas = await replicasOf(ns, 'web');
          return replicas.length === 3 && replicas.every((r) => r.revision === good && r.state === 'running');
        },
        90_000,
      );
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      const report = await load.stop();
      assertNoneFailed(report);
      assert.deepEqual([...report.bodies.keys()], ['v2'], 'only the good replicas answered');
    }
  });

  test('a replica that fails its health check stops receiving traffic', async () => {
    const [victim] = await replicasOf(ns, 'web');
    assert.ok(victim);
    // The check asks for /: without its page the replica answers 404 and turns unhealthy.
    const removed = await dockerExec(victim.name, ['mv', '/www/index.html', '/www/kept.html']);
    assert.equal(removed.exitCode, 0, removed.output);
    await eventually(
      '30 requests in a row answered 200 through the mesh (round robin over 3 would hit the broken one)',
      async () => {
        for (let i = 0; i < 30; i++) {
          if ((await getOnce('127.0.0.1', published)).status !== 200) return false;
        }
        return true;
      },
      60_000,
    );
    const still = (await replicasOf(ns, 'web')).find((r) => r.name === victim.name);
    assert.equal(still?.state, 'running', 'the broken replica still runs: the mesh keeps traffic off it');
    // Leave a healthy cluster to the next test: an unhealthy replica is replaced at the next
    // reconcile, which would race with what the next test asserts.
    const restored = await dockerExec(victim.name, ['mv', '/www/kept.html', '/www/index.html']);
    assert.equal(restored.exitCode, 0, restored.output);
    await eventually('the 3 replicas are healthy again', async () => {
      const status = await runBerth(['status', '--state-dir', stateDir, '--node', node, '--format', 'json']);
      const report = JSON.parse(status.stdout) as { services: { service: string; healthy: number }[] };
      return report.services.find((s) => s.service === `${ns}/web`)?.healthy === 3;
    });
  });

  test('appProtocol http: switching restarts nothing; a rolling update under kept-alive clients fails no request', async () => {
    const before = (await replicasOf(ns, 'web')).map((r) => r.name).sort();
    assert.equal(await connectionHeader(published), 'close', 'per connection: the replica closes it');
    await repo.commit(manifests('berth-test/web:v2', published, false, 'http'), 'web speaks http');
    // The replicas (busybox httpd) close every connection after one answer; per connection, the
    // mesh passes that on. Per request, the mesh keeps the client's connection and says so.
    await eventually(
      'the published port keeps a client connection alive',
      async () => (await connectionHeader(published)) === 'keep-alive',
    );
    assert.deepEqual((await replicasOf(ns, 'web')).map((r) => r.name).sort(), before, 'no replica replaced');

    const load = startLoadLoop({
      host: '127.0.0.1',
      port: published,
      perSecond: 20,
      maxMs: 120_000,
      keepAlive: true,
    });
    const commit = await repo.commit(manifests('berth-test/web:v1', published, false, 'http'), 'back to v1');
    try {
      await eventually(
        'every replica on v1, and only v1 through the mesh',
        async () => {
          const replicas = await replicasOf(ns, 'web');
          if (replicas.length !== 3 || !replicas.every((r) => r.revision === commit && r.state === 'running'))
            return false;
          return (await getOnce('127.0.0.1', published)).body === 'v1';
        },
        110_000,
      );
    } finally {
      const report = await load.stop();
      assertNoneFailed(report);
      assert.ok(report.bodies.has('v1') && report.bodies.has('v2'), JSON.stringify([...report.bodies]));
    }
  });
});
