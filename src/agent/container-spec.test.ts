import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LABELS, type ReplicaRequest } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import type { CapabilitiesSpec } from '../manifests/types.js';
import { buildContainerSpec } from './container-spec.js';

const request: ReplicaRequest = {
  name: 'berth.default.web.1.abcdef012345',
  namespace: 'default',
  service: 'web',
  slot: '1',
  specHash: 'abcdef0123456789',
  revision: '0123456789abcdef0123456789abcdef01234567',
  image: 'busybox:1.36',
  command: ['httpd'],
  args: ['-f', '-p', '8080'],
  env: { GREETING: 'hello' },
  ports: [
    { target: 8080, protocol: 'tcp' },
    { target: 5353, protocol: 'udp' },
  ],
  files: [],
  healthcheck: {
    probe: { type: 'http', port: 9090, path: '/health', expectStatus: [] },
    intervalMs: 1000,
    timeoutMs: 1000,
    retries: 3,
    startPeriodMs: 0,
  },
  limits: { nanoCpus: 500_000_000, memoryBytes: 64 * 1024 * 1024 },
  restart: { condition: 'any', maxAttempts: 0 },
  stopGracePeriodMs: 1500,
  user: null,
  readOnlyRootFilesystem: false,
  capabilities: { drop: [], add: [] },
  workingDir: null,
  init: true,
  specSummary: { image: 'busybox:1.36' },
};
const placement = { nodeName: 'node-a', address: '127.0.1.1', mounts: [], dns: null };

void describe('buildContainerSpec', () => {
  void test('command and args map to entrypoint and cmd; nulls keep the image defaults', () => {
    const spec = buildContainerSpec(request, placement);
    assert.deepEqual(spec.entrypoint, ['httpd']);
    assert.deepEqual(spec.cmd, ['-f', '-p', '8080']);
    const plain = buildContainerSpec({ ...request, command: null, args: null }, placement);
    assert.equal(plain.entrypoint, null);
    assert.equal(plain.cmd, null);
  });

  void test('every berth label is set', () => {
    const { labels } = buildContainerSpec(request, placement);
    assert.deepEqual(labels, {
      [LABELS.managed]: 'true',
      [LABELS.service]: 'web',
      [LABELS.namespace]: 'default',
      [LABELS.revision]: request.revision,
      [LABELS.specHash]: request.specHash,
      [LABELS.slot]: '1',
      [LABELS.node]: 'node-a',
      [LABELS.healthcheck]: JSON.stringify(request.healthcheck),
      [LABELS.specSummary]: JSON.stringify(request.specSummary),
      [LABELS.stopGraceMs]: '1500',
    });
    const unchecked = buildContainerSpec({ ...request, healthcheck: null }, placement);
    assert.equal(unchecked.labels[LABELS.healthcheck], 'null');
  });

  void test('ports are published on the node address, plus the health check port', () => {
    const spec = buildContainerSpec(request, placement);
    assert.deepEqual(spec.ports, [
      { port: 8080, protocol: 'tcp', hostIp: '127.0.1.1' },
      { port: 5353, protocol: 'udp', hostIp: '127.0.1.1' },
      { port: 9090, protocol: 'tcp', hostIp: '127.0.1.1' },
    ]);
    const sharedPort = buildContainerSpec(
      { ...request, healthcheck: { ...request.healthcheck!, probe: { type: 'tcp', port: 8080 } } },
      placement,
    );
    assert.equal(sharedPort.ports.length, 2);
    const exec = buildContainerSpec(
      { ...request, healthcheck: { ...request.healthcheck!, probe: { type: 'exec', command: ['true'] } } },
      placement,
    );
    assert.equal(exec.ports.length, 2);
  });

  void test('restart conditions map to Docker restart policies', () => {
    const policy = (restart: ReplicaRequest['restart']) =>
      buildContainerSpec({ ...request, restart }, placement).restart;
    assert.deepEqual(policy({ condition: 'any', maxAttempts: 5 }), {
      policy: 'unless-stopped',
      maxRetries: 0,
    });
    assert.deepEqual(policy({ condition: 'on-failure', maxAttempts: 5 }), {
      policy: 'on-failure',
      maxRetries: 5,
    });
    assert.deepEqual(policy({ condition: 'none', maxAttempts: 5 }), { policy: 'no', maxRetries: 0 });
  });

  void test('the stop grace period rounds up to whole seconds', () => {
    assert.equal(buildContainerSpec(request, placement).stopTimeoutSeconds, 2);
    assert.equal(buildContainerSpec({ ...request, stopGracePeriodMs: 0 }, placement).stopTimeoutSeconds, 0);
    assert.equal(
      buildContainerSpec({ ...request, stopGracePeriodMs: 10_000 }, placement).stopTimeoutSeconds,
      10,
    );
  });

  void test('every container runs with no-new-privileges; Docker defaults otherwise', () => {
    const spec = buildContainerSpec(request, placement);
    assert.deepEqual(spec.security, {
      noNewPrivileges: true,
      readOnlyRootFilesystem: false,
      capDrop: [],
      capAdd: [],
    });
    assert.deepEqual(spec.tmpfs, []);
    // A request of an older operator, or from an older saved plan, has neither field.
    const older: ReplicaRequest = { ...request };
    delete older.readOnlyRootFilesystem;
    delete older.capabilities;
    assert.deepEqual(buildContainerSpec(older, placement).security, spec.security);
  });

  void test('a read-only root filesystem gets a small /tmp; capabilities pass through', () => {
    const spec = buildContainerSpec(
      {
        ...request,
        user: '1000:1000',
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
      },
      placement,
    );
    assert.equal(spec.user, '1000:1000');
    assert.deepEqual(spec.security, {
      noNewPrivileges: true,
      readOnlyRootFilesystem: true,
      capDrop: ['ALL'],
      capAdd: ['NET_BIND_SERVICE'],
    });
    assert.deepEqual(spec.tmpfs, [{ target: '/tmp', options: 'rw,noexec,nosuid,nodev,mode=1777,size=64m' }]);
  });

  void test('capabilities outside the allowlist are refused even if a request carries them', () => {
    const capabilities = { drop: [], add: ['SYS_ADMIN'] } as unknown as CapabilitiesSpec;
    assert.throws(
      () => buildContainerSpec({ ...request, capabilities }, placement),
      (error: unknown) =>
        error instanceof BerthError && error.code === 'ERR_BAD_REQUEST' && /SYS_ADMIN/.test(error.message),
    );
  });

  void test('names that are not valid container names are refused', () => {
    for (const name of ['', '../etc', 'a/b', '.hidden', 'x'.repeat(300)]) {
      assert.throws(
        () => buildContainerSpec({ ...request, name }, placement),
        (error: unknown) => error instanceof BerthError && error.code === 'ERR_BAD_REQUEST',
        name,
      );
    }
  });

  void test('volumes mount their slot’s named volume, labelled for the snapshot; tmpfs keeps its size', () => {
    const spec = buildContainerSpec(
      {
        ...request,
        volumes: [
          {
            source: 'berth.default.web.data.1',
            volume: 'data',
            target: '/data',
            readOnly: false,
            driver: 'local',
            driverOptions: { type: 'nfs' },
          },
        ],
        tmpfs: [{ target: '/cache', sizeBytes: 1024 }],
      },
      placement,
    );
    assert.deepEqual(spec.volumes, [
      {
        source: 'berth.default.web.data.1',
        target: '/data',
        readOnly: false,
        driver: 'local',
        driverOptions: { type: 'nfs' },
        labels: {
          [LABELS.managed]: 'true',
          [LABELS.namespace]: 'default',
          [LABELS.service]: 'web',
          [LABELS.volume]: 'data',
          [LABELS.slot]: '1',
        },
      },
    ]);
    assert.deepEqual(spec.tmpfs, [{ target: '/cache', options: 'rw,nosuid,nodev,mode=1777,size=1024' }]);
  });

  void test('a tmpfs or a volume of the service at /tmp replaces the read-only root’s /tmp', () => {
    const readOnly = { ...request, readOnlyRootFilesystem: true };
    const own = buildContainerSpec({ ...readOnly, tmpfs: [{ target: '/tmp', sizeBytes: 0 }] }, placement);
    assert.deepEqual(own.tmpfs, [{ target: '/tmp', options: 'rw,nosuid,nodev,mode=1777' }]);
    const volume = buildContainerSpec(
      {
        ...readOnly,
        volumes: [
          {
            source: 'berth.default.web.t.1',
            volume: 't',
            target: '/tmp',
            readOnly: false,
            driver: 'local',
            driverOptions: {},
          },
        ],
      },
      placement,
    );
    assert.deepEqual(volume.tmpfs, []);
    const other = buildContainerSpec(
      { ...readOnly, tmpfs: [{ target: '/scratch', sizeBytes: 0 }] },
      placement,
    );
    assert.deepEqual(
      other.tmpfs.map((t) => t.target),
      ['/scratch', '/tmp'],
    );
  });
});
