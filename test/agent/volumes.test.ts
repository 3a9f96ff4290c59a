/**
 * Volumes on a real Docker engine, deployed from git with `berth apply`: a stateful service keeps
 * what it wrote into its volume across an update, a failed update's rollback and restarts of the
 * agent, the update stops the old writer before the new one starts, and removing the service from
 * git keeps its volume unless it says volumeReclaim: delete. Every `berth apply` is a process of its
 * own with its own embedded agent, so each step below also restarts the operator and the agent;
 * one step kills a long-running `berth run` (and its embedded agent) with SIGKILL and starts it again.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { VolumeRow } from '../../src/cli/volume.js';
import { stopMeshHostByPidFile } from '../../src/mesh/mesh-host-client.js';
import { MESH_HOST_FILES } from '../../src/mesh/mesh-host-protocol.js';
import { eventually, runBerth, SCHEDULE_NEVER, startBerth } from '../helpers/berth-cli.js';
import { dockerExec, requireTestImages, testDocker } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import {
  manifestFile,
  namespaceManifest,
  sleeperService,
  type ServiceOptions,
} from '../helpers/manifests.js';
import { removeNamespace } from '../operator/cluster-probe.js';

const ns = `vol${Date.now().toString(36)}`;
const node = `test-${ns}`;

/**
 * A writer that logs its version into its volume at start and holds /data/owner while it runs: a
 * replica that starts while another still holds it logs `conflict` (two writers on one volume).
 * FAIL=1 makes a version that logs itself and crashes.
 */
const WRITER = [
  'sh',
  '-c',
  [
    'if [ -e /data/owner ]; then echo conflict >> /data/log; fi',
    'echo "$VERSION" >> /data/log',
    'if [ "$FAIL" = 1 ]; then exit 1; fi',
    'echo "$VERSION" > /data/owner',
    'trap "rm -f /data/owner; exit 0" TERM',
    'while true; do sleep 1 & wait $!; done',
  ].join('\n'),
];

function store(version: string, extra: ServiceOptions = {}): string {
  return sleeperService({
    name: 'store',
    namespace: ns,
    command: WRITER,
    env: { VERSION: version },
    volumes: [{ name: 'data', target: '/data' }],
    tmpfs: [{ target: '/scratch', size: '1Mi' }],
    stopGracePeriod: '5s',
    update: { monitor: '1s', progressDeadline: '1m' },
    ...extra,
  });
}

/** The namespace, `store` as given and a `scratch` service whose volume goes with it. */
function allWith(storeManifest: string): string {
  return manifestFile(
    namespaceManifest(ns),
    storeManifest,
    sleeperService({
      name: 'scratch',
      namespace: ns,
      volumes: [{ name: 'cache', target: '/cache' }],
      volumeReclaim: 'delete',
    }),
  );
}

async function containerOf(service: string): Promise<{ name: string; id: string }> {
  const [container] = await testDocker().listContainers({
    filters: { label: [`berth.namespace=${ns}`, `berth.service=${service}`] },
  });
  assert.ok(container, `no running container of ${service}`);
  return { name: (container.Names[0] ?? '').replace(/^\//, ''), id: container.Id };
}

async function logOf(service: string): Promise<string[]> {
  const read = await dockerExec((await containerOf(service)).name, ['cat', '/data/log']);
  assert.equal(read.exitCode, 0, read.output);
  return read.output.trim().split('\n');
}

async function volumesOf(service: string): Promise<string[]> {
  const { Volumes } = await testDocker().listVolumes({
    filters: { label: [`berth.namespace=${ns}`, `berth.service=${service}`] },
  });
  return (Volumes ?? []).map((v) => v.Name).sort();
}

describe('volumes on a real engine', () => {
  let repo: TestRepo;
  let work: string;
  let args: string[];

  const apply = async (): Promise<{ code: number | null; output: string }> => {
    const applied = await runBerth(['apply', ...args]);
    return { code: applied.code, output: applied.stdout + applied.stderr };
  };

  before(async () => {
    await requireTestImages();
    work = await mkdtemp(join(tmpdir(), 'berth-volumes-'));
    repo = await createTestRepo({
      'deploy/all.yaml': allWith(store('v1')),
    });
    args = ['--repo', repo.dir, '--path', 'deploy', '--state-dir', join(work, 'state'), '--node', node];
    const applied = await apply();
    assert.equal(applied.code, 0, applied.output);
  });

  after(async () => {
    await stopMeshHostByPidFile(join(work, 'state', 'agent', MESH_HOST_FILES.pid));
    await removeNamespace(ns);
    const { Volumes } = await testDocker().listVolumes({ filters: { label: [`berth.namespace=${ns}`] } });
    await Promise.all(
      (Volumes ?? []).map((v) =>
        testDocker()
          .getVolume(v.Name)
          .remove()
          .catch(() => undefined),
      ),
    );
    await repo?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  test('each replica mounts its slot’s labelled volume and its tmpfs', async () => {
    assert.deepEqual(await volumesOf('store'), [`berth.${ns}.store.data.1`]);
    const volume = await testDocker().getVolume(`berth.${ns}.store.data.1`).inspect();
    assert.deepEqual(
      {
        managed: volume.Labels?.['berth.managed'],
        volume: volume.Labels?.['berth.volume'],
        slot: volume.Labels?.['berth.slot'],
      },
      { managed: 'true', volume: 'data', slot: '1' },
    );
    const mounts = await dockerExec((await containerOf('store')).name, ['cat', '/proc/mounts']);
    assert.match(mounts.output, /^tmpfs \/scratch tmpfs [^\n]*size=1024k/m);
    assert.deepEqual(await logOf('store'), ['v1']);
  });

  test('berth volume ls lists each volume with its node, service, replica and size', async () => {
    const listed = await runBerth(['volume', 'ls', '--format', 'json', ...args.slice(4)]);
    assert.equal(listed.code, 0, listed.stdout + listed.stderr);
    const rows = (JSON.parse(listed.stdout) as VolumeRow[]).filter((r) => r.service.startsWith(`${ns}/`));
    assert.deepEqual(
      rows.map((r) => [
        r.node,
        r.service,
        r.volume,
        r.slot,
        r.replica !== null,
        r.driver,
        typeof r.sizeBytes,
      ]),
      [
        [node, `${ns}/scratch`, 'cache', '1', true, 'local', 'number'],
        [node, `${ns}/store`, 'data', '1', true, 'local', 'number'],
      ],
    );
    assert.equal(rows[1]?.replica, (await containerOf('store')).name);
    const text = await runBerth(['volume', 'ls', ...args.slice(4)]);
    assert.match(text.stdout, new RegExp(`^${node} +${ns}/store +data +1 +berth\\.`, 'm'));
  });

  test('an update keeps the data and stops the old writer before the new one starts', async () => {
    await repo.commit(
      {
        'deploy/all.yaml': allWith(store('v2')),
      },
      'v2',
    );
    const applied = await apply();
    assert.equal(applied.code, 0, applied.output);
    assert.deepEqual(await logOf('store'), ['v1', 'v2'], 'no conflict line: the update was stop-first');
  });

  test('a failed update is rolled back onto the same volume, data intact', async () => {
    await repo.commit(
      {
        'deploy/all.yaml': allWith(store('v3', { env: { VERSION: 'v3', FAIL: '1' } })),
      },
      'v3 crashes',
    );
    const applied = await apply();
    assert.notEqual(applied.code, 0, 'the update fails');
    const log = await logOf('store');
    assert.deepEqual(log.slice(0, 3), ['v1', 'v2', 'v3'], log.join(','));
    assert.equal(log.at(-1), 'v2', 'the rollback started v2 again on the same volume');
    assert.ok(!log.includes('conflict'), log.join(','));
  });

  test('a new agent and operator find the data and change nothing', async () => {
    const before = await containerOf('store');
    // The failed head stays refused; a commit back to v2 is what runs, so nothing changes.
    await repo.commit({ 'deploy/all.yaml': allWith(store('v2')) }, 'back to v2');
    const applied = await apply();
    assert.equal(applied.code, 0, applied.output);
    assert.equal((await containerOf('store')).id, before.id);
    assert.equal((await logOf('store')).at(-1), 'v2');
  });

  test('an operator killed with SIGKILL, with its embedded agent, and started again keeps the data and the replica', async () => {
    await repo.commit({ 'deploy/all.yaml': allWith(store('v4')) }, 'v4');
    const start = () => startBerth('run', [...args, ...SCHEDULE_NEVER]);
    let operator = await start();
    try {
      await eventually(
        'v4 running',
        async () => (await logOf('store').catch(() => [])).at(-1) === 'v4',
        120_000,
      );
      const running = await containerOf('store');
      const log = await logOf('store');
      await operator.stop('SIGKILL');
      const restartedAt = new Date().toISOString();
      operator = await start();
      await eventually(
        'a reconcile of the restarted operator',
        async () => {
          const status = await runBerth(['status', '--format', 'json', ...args.slice(4)]);
          const report = JSON.parse(status.stdout) as { conditionsRecordedAt: string | null };
          return (report.conditionsRecordedAt ?? '') > restartedAt;
        },
        120_000,
      );
      assert.equal((await containerOf('store')).id, running.id, 'the replica was left as it ran');
      assert.deepEqual(await logOf('store'), log, 'nothing started again on the volume');
      assert.deepEqual(log.slice(-2), ['v2', 'v4']);
      assert.ok(!log.includes('conflict'), log.join(','));
    } finally {
      const exit = await operator.stop('SIGTERM');
      assert.equal(exit.code, 0, operator.output());
    }
  });

  test('removing the services from git keeps a retained volume and deletes one marked delete', async () => {
    assert.deepEqual(await volumesOf('scratch'), [`berth.${ns}.scratch.cache.1`]);
    await repo.commit({ 'deploy/all.yaml': manifestFile(namespaceManifest(ns)) }, 'remove both');
    const applied = await apply();
    assert.equal(applied.code, 0, applied.output);
    const left = await testDocker().listContainers({
      all: true,
      filters: { label: [`berth.namespace=${ns}`] },
    });
    assert.deepEqual(left, []);
    assert.deepEqual(await volumesOf('store'), [`berth.${ns}.store.data.1`], 'Retain is the default');
    assert.deepEqual(await volumesOf('scratch'), [], 'volumeReclaim: delete');
  });
});
