/**
 * Service discovery on one node, with a real `berth run` on the real engine: containers reach
 * other services by name (`web`, `web.namespace`), balanced over healthy replicas, through a
 * rolling update without a failed request.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  eventually,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { dockerExec, requireDocker, requireTestImages } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { startLoopInside } from '../helpers/load-loop.js';
import {
  manifestFile,
  namespaceManifest,
  SERVE_HOSTNAME_AT_ID,
  sleeperService,
  webService,
} from '../helpers/manifests.js';
import { removeNamespace, replicasOf } from '../operator/cluster-probe.js';

const id = Date.now().toString(36);
const shop = `sd${id}`;
const other = `sdo${id}`;
// A range of its own, so this suite never shares addresses with another operator on the machine.
const range = '10.234.250.0/24';

function manifests(shopImage: string): Record<string, string> {
  // A web service whose replicas also serve their own hostname at /id, to see the balancing.
  const web = (namespace: string, image: string, replicas: number): string =>
    webService({
      namespace,
      image,
      command: SERVE_HOSTNAME_AT_ID,
      replicas,
      update: { parallelism: 1, order: 'start-first', monitor: '1s' },
      stopGracePeriod: '2s',
    });
  return {
    'deploy/ns.yaml': manifestFile(namespaceManifest(shop), namespaceManifest(other)),
    'deploy/shop.yaml': manifestFile(
      web(shop, shopImage, 2),
      sleeperService({ name: 'client', namespace: shop }),
    ),
    // Same service name and port in another namespace: two services share port 8080.
    'deploy/other.yaml': manifestFile(
      web(other, 'berth-test/web:v2', 1),
      sleeperService({ name: 'client', namespace: other }),
    ),
  };
}

async function clientOf(namespace: string): Promise<string> {
  const [replica] = (await replicasOf(namespace, 'client')).filter((r) => r.state === 'running');
  assert.ok(replica, `a running client in ${namespace}`);
  return replica.name;
}

async function fetchFrom(container: string, url: string): Promise<{ exitCode: number; output: string }> {
  // `timeout`, not wget's -T: the offline busybox stand-in crashes on -T.
  return dockerExec(container, ['timeout', '5', 'wget', '-q', '-O', '-', url]);
}

describe('service discovery on one node (berth run, real engine)', () => {
  let repo: TestRepo;
  let stateDir: string;
  let operator: BerthProcess | null = null;

  before(async () => {
    await requireDocker();
    await requireTestImages();
    repo = await createTestRepo(manifests('berth-test/web:v1'));
    stateDir = await mkdtemp(join(tmpdir(), 'berth-discovery-'));
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node: `test-${shop}` }),
      ...['--service-addresses', range],
      ...SCHEDULE_NEVER,
    ]);
  });
  after(async () => {
    await operator?.stop('SIGKILL');
    await removeNamespace(shop);
    await removeNamespace(other);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('a container reaches a service by name and by name.namespace, in its own and another namespace', async () => {
    await eventually('both clients run', async () => {
      const [a, b] = await Promise.all([replicasOf(shop, 'client'), replicasOf(other, 'client')]);
      return a.some((r) => r.state === 'running') && b.some((r) => r.state === 'running');
    });
    const inShop = await clientOf(shop);
    const inOther = await clientOf(other);
    await eventually(
      'web answers by name from the shop client',
      async () => (await fetchFrom(inShop, 'http://web:8080/')).output.trim() === 'v1',
      60_000,
    );
    const cases: [string, string, string][] = [
      [inShop, `http://web.${shop}:8080/`, 'v1'],
      [inShop, `http://web.${other}:8080/`, 'v2'],
      [inOther, 'http://web:8080/', 'v2'],
      [inOther, `http://web.${shop}:8080/`, 'v1'],
    ];
    for (const [container, url, body] of cases) {
      await eventually(`${url} from ${container} answers ${body}`, async () => {
        const answer = await fetchFrom(container, url);
        return answer.exitCode === 0 && answer.output.trim() === body;
      });
    }
    // The resolver inside: the node's DNS first, the namespace as search domain.
    const resolv = await dockerExec(inShop, ['cat', '/etc/resolv.conf']);
    assert.match(resolv.output, new RegExp(`^search ${shop}$`, 'm'));
    assert.match(resolv.output, /^nameserver 10\.234\.250\.1$/m);
  });

  test('requests by name are balanced over the replicas', async () => {
    const inShop = await clientOf(shop);
    const ids = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const answer = await fetchFrom(inShop, 'http://web:8080/id');
      assert.equal(answer.exitCode, 0, answer.output);
      ids.add(answer.output.trim());
    }
    assert.equal(ids.size, 2, `answered by ${[...ids].join(', ')}`);
  });

  test('an unknown service name does not resolve', async () => {
    const inShop = await clientOf(shop);
    const answer = await dockerExec(inShop, ['nslookup', `nope.${shop}`]);
    assert.notEqual(answer.exitCode, 0, answer.output);
    assert.match(answer.output, /NXDOMAIN|can't find/i);
  });

  test('a rolling update fails no request made by name', async () => {
    const inShop = await clientOf(shop);
    const loop = startLoopInside(inShop, 'http://web:8080/');
    const commit = await repo.commit(manifests('berth-test/web:v2'), 'web v2');
    let report: Awaited<ReturnType<typeof loop.stop>> | null = null;
    try {
      await eventually(
        'both shop replicas on v2, answering v2 by name',
        async () => {
          const replicas = (await replicasOf(shop, 'web')).filter((r) => r.state === 'running');
          if (replicas.length !== 2 || !replicas.every((r) => r.revision === commit)) return false;
          return (await fetchFrom(inShop, 'http://web:8080/')).output.trim() === 'v2';
        },
        90_000,
      );
    } finally {
      report = await loop.stop();
    }
    assert.equal(report.failed, 0, `failed requests by name: ${report.output}`);
    assert.ok(report.ok > 20, `only ${report.ok} requests were made`);
    assert.deepEqual(report.bodies, ['v1', 'v2']);
  });
});
