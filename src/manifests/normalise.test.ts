import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parsePlacementConstraint } from './constraints.js';
import { isHealthyHttpStatus } from './health-status.js';
import { loadManifests } from './load.js';
import { normaliseHealthcheck, normaliseService } from './normalise.js';
import type { ServiceSpec, WrittenService } from './types.js';

const service = (
  spec: Partial<WrittenService['spec']>,
  metadata: Partial<WrittenService['metadata']> = {},
): WrittenService => ({
  apiVersion: 'berth/v1',
  kind: 'Service',
  metadata: { name: 'web', ...metadata },
  spec: { image: 'busybox:1.36', ...spec },
});

void describe('normaliseService', () => {
  void test('converts units: durations to ms, memory to bytes, CPUs to nano-CPUs', () => {
    const spec = normaliseService(
      service({
        resources: { limits: { cpus: 1.5, memory: '1Gi' }, reservations: { cpus: 0.25, memory: 16_777_216 } },
        stopGracePeriod: '1m30s',
        update: {
          delay: '500ms',
          monitor: '2s',
          progressDeadline: '1h',
          parallelism: 0,
          order: 'stop-first',
        },
        rollback: { failureAction: 'continue' },
      }),
    );
    assert.deepEqual(spec.resources, {
      limits: { nanoCpus: 1_500_000_000, memoryBytes: 1024 ** 3 },
      reservations: { nanoCpus: 250_000_000, memoryBytes: 16_777_216 },
    });
    assert.equal(spec.stopGracePeriodMs, 90_000);
    assert.deepEqual(spec.update, {
      parallelism: 0,
      delayMs: 500,
      order: 'stop-first',
      monitorMs: 2000,
      failureAction: 'rollback',
      maxFailureRatio: 0,
      progressDeadlineMs: 3_600_000,
    });
    assert.equal(spec.rollback.failureAction, 'continue');
    assert.equal(spec.rollback.parallelism, 1, 'rollback does not inherit the update policy (as in Swarm)');
  });

  void test('mode global carries replicas 0', () => {
    const spec = normaliseService(service({ mode: 'global' }));
    assert.equal(spec.mode, 'global');
    assert.equal(spec.replicas, 0);
  });

  void test('env values become strings; command and args are kept, metadata applied', () => {
    const spec: ServiceSpec = normaliseService(
      service(
        {
          env: { PORT: 8080, DEBUG: false, NAME: 'x' },
          command: ['httpd'],
          args: ['-f'],
          user: '1000:1000',
          workingDir: '/srv',
          init: true,
        },
        { namespace: 'shop', labels: { team: 'shop' } },
      ),
    );
    assert.deepEqual(spec.env, { PORT: '8080', DEBUG: 'false', NAME: 'x' });
    assert.deepEqual(
      [spec.command, spec.args, spec.user, spec.workingDir, spec.init],
      [['httpd'], ['-f'], '1000:1000', '/srv', true],
    );
    assert.deepEqual([spec.namespace, spec.labels], ['shop', { team: 'shop' }]);
  });

  void test('mounts: explicit modes, owners and targets are kept', () => {
    const spec = normaliseService(
      service({
        configs: [{ source: 'site', key: 'a', target: '/a', mode: '0440' }],
        secrets: [
          { source: 'db', key: 'password', target: '/etc/db/password', mode: 0o440, uid: 1000, gid: 1001 },
        ],
      }),
    );
    assert.deepEqual(spec.configs, [{ source: 'site', key: 'a', target: '/a', mode: 0o440 }]);
    assert.deepEqual(spec.secrets, [
      { source: 'db', key: 'password', target: '/etc/db/password', mode: 0o440, uid: 1000, gid: 1001 },
    ]);
  });

  void test('placement constraints are parsed', () => {
    const spec = normaliseService(
      service({
        placement: {
          constraints: ['node.labels.zone == a', ' node.name!=node-2 '],
          spread: 'node.labels.zone',
          maxPerNode: 2,
        },
      }),
    );
    assert.deepEqual(spec.placement, {
      constraints: [
        { field: 'node.labels.zone', op: '==', value: 'a' },
        { field: 'node.name', op: '!=', value: 'node-2' },
      ],
      spread: 'node.labels.zone',
      maxPerNode: 2,
    });
  });
});

void describe('normaliseHealthcheck', () => {
  void test('http with host and statuses, tcp, exec', () => {
    assert.deepEqual(
      normaliseHealthcheck({
        http: { port: 80, path: '/healthz', host: 'example.test', expectStatus: [204] },
        retries: 5,
      }),
      {
        probe: { type: 'http', port: 80, path: '/healthz', expectStatus: [204], host: 'example.test' },
        intervalMs: 10_000,
        timeoutMs: 1_000,
        retries: 5,
        startPeriodMs: 0,
      },
    );
    assert.deepEqual(
      normaliseHealthcheck({ tcp: { port: 5432 }, interval: '1s', timeout: '250ms', startPeriod: '30s' }),
      {
        probe: { type: 'tcp', port: 5432 },
        intervalMs: 1000,
        timeoutMs: 250,
        retries: 3,
        startPeriodMs: 30_000,
      },
    );
    assert.deepEqual(normaliseHealthcheck({ exec: ['pg_isready'] }).probe, {
      type: 'exec',
      command: ['pg_isready'],
    });
  });

  void test('an empty expectStatus means 200-399, as in Kubernetes', () => {
    assert.deepEqual(
      [199, 200, 302, 399, 400, 500].map((status) => isHealthyHttpStatus([], status)),
      [false, true, true, true, false, false],
    );
    assert.deepEqual(
      [200, 204, 418].map((status) => isHealthyHttpStatus([204, 418], status)),
      [false, true, true],
    );
  });
});

void test('parsePlacementConstraint accepts labels, name and hostname with == and != only', () => {
  assert.deepEqual(parsePlacementConstraint('node.hostname == host-1'), {
    field: 'node.hostname',
    op: '==',
    value: 'host-1',
  });
  assert.deepEqual(parsePlacementConstraint('node.labels.topology.kubernetes.io/zone!=b'), {
    field: 'node.labels.topology.kubernetes.io/zone',
    op: '!=',
    value: 'b',
  });
  for (const text of [
    'node.labels.zone = a',
    'node.labels.zone ~= a',
    'node.role == manager',
    'node.name ==',
    'zone == a',
  ]) {
    assert.equal(parsePlacementConstraint(text), null, text);
  }
});

void test('file modes written as YAML 0444 are octal, as chmod reads them', () => {
  const yaml = `apiVersion: berth/v1
kind: Service
metadata: { name: web }
spec:
  image: busybox:1.36
  configs:
    - { source: site, key: a, target: /a, mode: 0440 }
    - { source: site, key: a, target: /b, mode: "0600" }
    - { source: site, key: a, target: /c, mode: 0o640 }
    - { source: site, key: a, target: /d }
---
apiVersion: berth/v1
kind: Config
metadata: { name: site }
data: { a: "1" }
`;
  const result = loadManifests([{ path: 'web.yaml', content: new TextEncoder().encode(yaml) }], {
    revision: 'r1',
  });
  assert.ok(result.ok, JSON.stringify(result));
  assert.deepEqual(
    result.desired.services[0]!.configs.map((mount) => mount.mode),
    [0o440, 0o600, 0o640, 0o444],
  );
});
