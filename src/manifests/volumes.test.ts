import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadManifests } from './load.js';
import type { LoadResult, ManifestProblem, ServiceSpec } from './types.js';

/** One Service whose spec is `image` plus the given YAML lines (indented under spec). */
function load(...specLines: string[]): LoadResult {
  const yaml = [
    'apiVersion: berth/v1',
    'kind: Service',
    'metadata: { name: db }',
    'spec:',
    '  image: busybox:1.36',
    ...specLines.map((line) => `  ${line}`),
    '',
  ].join('\n');
  return loadManifests([{ path: 'db.yaml', content: new TextEncoder().encode(yaml) }], { revision: 'r' });
}

function problemsOf(result: LoadResult): string[] {
  assert.equal(result.ok, false, 'expected problems');
  return (result as { problems: ManifestProblem[] }).problems.map(
    (p) => `${p.file}:${p.line}:${p.col}: ${p.message}`,
  );
}

function serviceOf(result: LoadResult): ServiceSpec {
  assert.ok(result.ok, JSON.stringify(result));
  const [service] = result.desired.services;
  assert.ok(service);
  return service;
}

void describe('volumes and tmpfs in manifests', () => {
  void test('volumes, tmpfs and volumeReclaim are read with their defaults, and order becomes stop-first', () => {
    const service = serviceOf(
      load(
        'volumes:',
        '  - { name: data, target: /var/lib/data }',
        '  - name: share',
        '    target: /srv/share',
        '    readOnly: true',
        '    driver: local',
        '    driverOptions: { type: nfs, o: "addr=10.0.0.1,ro", device: ":/export" }',
        'tmpfs: [{ target: /tmp, size: 64Mi }, { target: /run/cache }]',
      ),
    );
    assert.deepEqual(service.volumes, [
      { name: 'data', target: '/var/lib/data', readOnly: false, driver: 'local', driverOptions: {} },
      {
        name: 'share',
        target: '/srv/share',
        readOnly: true,
        driver: 'local',
        driverOptions: { type: 'nfs', o: 'addr=10.0.0.1,ro', device: ':/export' },
      },
    ]);
    assert.deepEqual(service.tmpfs, [
      { target: '/tmp', sizeBytes: 64 * 2 ** 20 },
      { target: '/run/cache', sizeBytes: 0 },
    ]);
    assert.equal(service.volumeReclaim, 'retain');
    assert.equal(service.update.order, 'stop-first');
    assert.equal(service.rollback.order, 'stop-first');
  });

  void test('an order written out wins, and a service without volumes stays start-first', () => {
    const written = serviceOf(
      load(
        'volumes: [{ name: data, target: /data }]',
        'update: { order: start-first }',
        'volumeReclaim: delete',
      ),
    );
    assert.equal(written.update.order, 'start-first');
    assert.equal(written.rollback.order, 'stop-first');
    assert.equal(written.volumeReclaim, 'delete');
    const plain = serviceOf(load());
    assert.equal(plain.update.order, 'start-first');
    assert.deepEqual([plain.volumes, plain.tmpfs], [[], []]);
  });

  void test('relative, climbing and root-escaping targets, host paths and bad names are refused at file:line', () => {
    const cases = [
      [
        'volumes: [{ name: data, target: var/lib }]',
        /^db\.yaml:6:\d+: spec\.volumes\[0\]\.target: must be an absolute path/,
      ],
      [
        'volumes: [{ name: data, target: /data/../etc }]',
        /^db\.yaml:6:\d+: spec\.volumes\[0\]\.target: must not contain "\.\." segments/,
      ],
      ['tmpfs: [{ target: ../tmp }]', /^db\.yaml:6:\d+: spec\.tmpfs\[0\]\.target: must be an absolute path/],
      [
        'volumes: [{ name: data, target: /data, source: /srv }]',
        /^db\.yaml:6:\d+: spec\.volumes\[0\]: unknown field "source"/,
      ],
      ['volumes: ["/:/host"]', /^db\.yaml:6:\d+: spec\.volumes\[0\]: must be object/],
      [
        'volumes: [{ name: Data_1, target: /data }]',
        /^db\.yaml:6:\d+: spec\.volumes\[0\]\.name: must be a DNS label/,
      ],
      [
        'tmpfs: [{ target: /t, size: lots }]',
        /^db\.yaml:6:\d+: spec\.tmpfs\[0\]\.size: must be a memory size/,
      ],
      ['volumeReclaim: recycle', /^db\.yaml:6:\d+: spec\.volumeReclaim: must be one of/],
    ] as const;
    for (const [line, expected] of cases) {
      const [problem] = problemsOf(load(line));
      assert.match(problem ?? '', expected, line);
    }
  });

  void test('a target mounted twice and a volume listed twice are refused', () => {
    const problems = problemsOf(
      load(
        'volumes: [{ name: data, target: /data }, { name: data, target: /other }]',
        'tmpfs: [{ target: /data }]',
      ),
    );
    assert.deepEqual(
      problems.map((p) => p.replace(/^db\.yaml:\d+:\d+: /, '')).sort(),
      [
        'spec.volumes[1].name: volume "data" is already listed at spec.volumes[0]; mount it once',
        'spec.tmpfs[0].target: target "/data" is already mounted by spec.volumes[0]',
      ].sort(),
    );
  });
});
