/**
 * Service discovery on one node, with a real `berth run` on the real engine: containers reach
 * other services by name (`web`, `web.namespace`, `web.namespace.svc`, the full
 * `web.namespace.svc.berth.internal`), balanced over healthy replicas, through a rolling update
 * without a failed request; and a namespace named like a top-level domain does not capture
 * outside names.
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
// Named like a top-level domain, with a service `github`: github.com must stay an outside name.
const tld = 'com';
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
    'deploy/ns.yaml': manifestFile(namespaceManifest(shop), namespaceManifest(other), namespaceManifest(tld)),
    'deploy/shop.yaml': manifestFile(
      web(shop, shopImage, 2),
      sleeperService({ name: 'client', namespace: shop }),
    ),
    // Same service name and port in another namespace: two services share port 8080.
    'deploy/other.yaml': manifestFile(
      web(other, 'berth-test/web:v2', 1),
      sleeperService({ name: 'client', namespace: other }),
    ),
    'deploy/tld.yaml': manifestFile(
      webService({ name: 'github', namespace: tld, image: 'berth-test/web:v2', stopGracePeriod: '2s' }),
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
    await removeNamespace(tld);
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
      [inShop, `http://web.${other}.svc:8080/`, 'v2'],
      [inShop, `http://web.${other}.svc.berth.internal:8080/`, 'v2'],
      [inOther, 'http://web:8080/', 'v2'],
      [inOther, `http://web.${shop}:8080/`, 'v1'],
      [inOther, `http://web.${shop}.svc.berth.internal:8080/`, 'v1'],
    ];
    for (const [container, url, body] of cases) {
      await eventually(`${url} from ${container} answers ${body}`, async () => {
        const answer = await fetchFrom(container, url);
        return answer.exitCode === 0 && answer.output.trim() === body;
      });
    }
    // The resolver inside: the node's DNS first, search domains into the zone, ndots 3.
    const resolv = await dockerExec(inShop, ['cat', '/etc/resolv.conf']);
    assert.match(
      resolv.output,
      new RegExp(`^search ${shop}\\.svc\\.berth\\.internal berth\\.internal$`, 'm'),
    );
    assert.match(resolv.output, /^nameserver 10\.234\.250\.1$/m);
    assert.match(resolv.output, /^options ndots:3$/m);
  });

  test('a namespace named like a top-level domain does not capture outside names', async () => {
    const inShop = await clientOf(shop);
    // The service is there, by its full name and by name.namespace.svc.
    await eventually(
      'github in namespace com answers by its full name',
      async () =>
        (await fetchFrom(inShop, `http://github.${tld}.svc.berth.internal:8080/`)).output.trim() === 'v2',
      60_000,
    );
    assert.equal((await fetchFrom(inShop, `http://github.${tld}.svc:8080/`)).output.trim(), 'v2');
    const full = await dockerExec(inShop, ['nslookup', `github.${tld}.svc.berth.internal`]);
    // The answer's address, not the server's (busybox prints `Address: 10.234.250.1:53` first).
    const serviceAddress =
      /^Name:\s*github\.com\.svc\.berth\.internal\s+Address:\s*(10\.234\.250\.\d+)$/m.exec(full.output)?.[1];
    assert.ok(serviceAddress !== undefined, full.output);

    // github.com is relayed to the host's resolvers (no internet here: they do not know it), never
    // answered with the service's address, through the search domains (wget) or as is (nslookup).
    const byName = await fetchFrom(inShop, `http://github.${tld}:8080/`);
    assert.notEqual(byName.exitCode, 0, byName.output);
    assert.doesNotMatch(byName.output, /v2/);
    assert.match(byName.output, /bad address/);
    const asked = await dockerExec(inShop, ['nslookup', `github.${tld}`]);
    assert.ok(!asked.output.includes(serviceAddress), asked.output);
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
    // busybox's nslookup asks a dotted name as it is: the node's DNS answers it itself.
    const answer = await dockerExec(inShop, ['nslookup', `nope.${shop}.svc.berth.internal`]);
    assert.notEqual(answer.exitCode, 0, answer.output);
    assert.match(answer.output, /NXDOMAIN/);
    assert.match(answer.output, /10\.234\.250\.1/);
    const byName = await fetchFrom(inShop, 'http://nope:8080/');
    assert.match(byName.output, /bad address/);
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
    // The loop spanned the rollout (answers of both versions); how many it made depends on how
    // fast the rollout went, which is not what this test is about.
    assert.deepEqual(report.bodies, ['v1', 'v2'], `${report.ok} answered`);
  });
});
