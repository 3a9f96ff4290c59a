/**
 * Container security on a real Docker engine, deployed from git with `berth apply`: what a process
 * inside the container can do is checked from inside it (/proc/self/status, id, touch).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { isTmpfsMountPoint } from '../../src/agent/file-store.js';
import { runBerth } from '../helpers/berth-cli.js';
import { dockerExec, requireTestImages, testDocker } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { configManifest, manifestFile, namespaceManifest, sleeperService } from '../helpers/manifests.js';
import { removeNamespace } from '../operator/cluster-probe.js';

const run = promisify(execFile);
const ns = `sec${Date.now().toString(36)}`;
// A node of its own: the embedded agent sees only this suite's containers.
const node = `test-${ns}`;

/** The capability and privilege lines of /proc/self/status, as the container's own process sees them. */
async function statusOf(container: string): Promise<Record<string, string>> {
  const status = await dockerExec(container, ['cat', '/proc/self/status']);
  assert.equal(status.exitCode, 0, status.output);
  return Object.fromEntries(
    status.output
      .split('\n')
      .map((line) => line.split(':\t'))
      .filter(([key]) => key === 'NoNewPrivs' || key?.startsWith('Cap'))
      .map(([key = '', value = '']): [string, string] => [key, value.trim()]),
  );
}

async function containerOf(service: string): Promise<string> {
  const [container] = await testDocker().listContainers({
    filters: { label: [`berth.namespace=${ns}`, `berth.service=${service}`] },
  });
  assert.ok(container, `no running container of ${service}`);
  return (container.Names[0] ?? '').replace(/^\//, '');
}

describe('container security on a real engine', () => {
  let repo: TestRepo;
  let work: string;

  before(async () => {
    await requireTestImages();
    work = await mkdtemp(join(tmpdir(), 'berth-security-'));
    repo = await createTestRepo({
      'deploy/all.yaml': manifestFile(
        namespaceManifest(ns),
        configManifest({ name: 'app', namespace: ns, data: { greeting: 'hello\n' } }),
        sleeperService({ name: 'plain', namespace: ns }),
        sleeperService({
          name: 'locked',
          namespace: ns,
          user: '1000:1000',
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
          configs: [{ source: 'app', key: 'greeting', target: '/etc/app/greeting' }],
        }),
        sleeperService({
          name: 'binder',
          namespace: ns,
          capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
        }),
      ),
    });
    const args = ['--repo', repo.dir, '--path', 'deploy', '--state-dir', join(work, 'state'), '--node', node];
    const applied = await runBerth(['apply', ...args]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
  });

  after(async () => {
    await removeNamespace(ns);
    const secrets = join(work, 'state', 'agent', 'secrets');
    if (await isTmpfsMountPoint(secrets).catch(() => false)) await run('umount', [secrets]);
    await repo?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  test('every container runs with no-new-privileges and, unless told, Docker’s capabilities', async () => {
    const plain = await containerOf('plain');
    const status = await statusOf(plain);
    assert.equal(status['NoNewPrivs'], '1');
    assert.notEqual(status['CapEff'], '0000000000000000', 'root in a plain container keeps Docker’s set');
    const info = await testDocker().getContainer(plain).inspect();
    assert.deepEqual(info.HostConfig.SecurityOpt, ['no-new-privileges:true']);
    assert.equal(info.HostConfig.ReadonlyRootfs, false);
    assert.equal(info.HostConfig.Privileged, false);
  });

  test('user, a read-only root filesystem and drop: [ALL] hold inside the container', async () => {
    const locked = await containerOf('locked');
    const id = await dockerExec(locked, ['id', '-u']);
    assert.equal(id.output.trim(), '1000');
    assert.equal((await dockerExec(locked, ['id', '-g'])).output.trim(), '1000');

    const status = await statusOf(locked);
    assert.equal(status['NoNewPrivs'], '1');
    assert.equal(status['CapEff'], '0000000000000000');
    assert.equal(status['CapBnd'], '0000000000000000');

    const rootWrite = await dockerExec(locked, ['touch', '/written']);
    assert.notEqual(rootWrite.exitCode, 0);
    assert.match(rootWrite.output, /Read-only file system/);
    assert.equal((await dockerExec(locked, ['touch', '/tmp/written'])).exitCode, 0, 'the /tmp tmpfs');
    const config = await dockerExec(locked, ['cat', '/etc/app/greeting']);
    assert.equal(config.output, 'hello\n', 'config files are still mounted');
  });

  test('drop: [ALL] with add keeps exactly what add names', async () => {
    const status = await statusOf(await containerOf('binder'));
    // CAP_NET_BIND_SERVICE is capability 10.
    assert.equal(status['CapEff'], (1 << 10).toString(16).padStart(16, '0'));
    assert.equal(status['CapBnd'], status['CapEff']);
  });
});
