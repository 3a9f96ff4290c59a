import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NodeSnapshot, ObservedReplica, ObservedVolume } from '../api/types.js';
import { volumeName } from '../manifests/defaults.js';
import { normaliseService } from '../manifests/normalise.js';
import type { DesiredState, ServiceSpec, WrittenService } from '../manifests/types.js';
import { computePlan } from './compute-plan.js';
import { placeServices } from './placement.js';
import { replicaName } from './replica-name.js';
import { specHashOf, summariseService } from './spec-summary.js';

function stateful(spec: Partial<WrittenService['spec']> = {}): ServiceSpec {
  return normaliseService({
    apiVersion: 'berth/v1',
    kind: 'Service',
    metadata: { name: 'db', namespace: 'shop' },
    spec: { image: 'db:v1', replicas: 2, volumes: [{ name: 'data', target: '/var/lib/data' }], ...spec },
  });
}

function desired(services: ServiceSpec[]): DesiredState {
  return { revision: 'r2', services, configs: [], secrets: [], namespaces: [] };
}

function volume(slot: string, volumeOf = 'data'): ObservedVolume {
  return {
    name: volumeName('shop', 'db', volumeOf, slot),
    namespace: 'shop',
    service: 'db',
    volume: volumeOf,
    slot,
    driver: 'local',
    sizeBytes: null,
  };
}

function replica(spec: ServiceSpec, slot: string, node: string): ObservedReplica {
  const specHash = specHashOf(summariseService(spec, desired([spec])));
  return {
    name: replicaName(spec.namespace, spec.name, slot, specHash),
    id: `id-${slot}`,
    node,
    namespace: spec.namespace,
    service: spec.name,
    slot,
    specHash,
    revision: 'r1',
    state: 'running',
    health: 'none',
    healthDetail: null,
    exitCode: null,
    restartCount: 0,
    createdAt: '2026-01-01T00:00:00Z',
    startedAt: '2026-01-01T00:00:01Z',
    ports: [],
    specSummary: summariseService(spec, desired([spec])) as unknown as Record<string, unknown>,
  };
}

function node(name: string, extra: Partial<NodeSnapshot> = {}): NodeSnapshot {
  return {
    name,
    address: '127.0.0.1',
    labels: {},
    capacity: { nanoCpus: 2e9, memoryBytes: 2 ** 32 },
    engineVersion: '27',
    status: 'ready',
    images: [],
    replicas: [],
    volumes: [],
    ...extra,
  };
}

describe('placement of slots with volumes', () => {
  test('each slot goes to the node that holds its volume, whatever the load', () => {
    const spec = stateful();
    const placed = placeServices(
      [spec],
      [node('a', { volumes: [volume('1'), volume('2')] }), node('b')],
      new Map(),
    ).get('shop/db')!;
    assert.deepEqual(placed.assignments, [
      { slot: '1', node: 'a' },
      { slot: '2', node: 'a' },
    ]);
    assert.deepEqual(placed.pending, []);
  });

  test('a slot whose volume is on a down node waits, pending with the reason, instead of moving', () => {
    const spec = stateful();
    const nodes = [
      node('a', { status: 'down', volumes: [volume('1')] }),
      node('b', { volumes: [volume('2')], replicas: [replica(spec, '2', 'b')] }),
    ];
    const plan = computePlan(desired([spec]), { nodes });
    const db = plan.services.find((s) => s.name === 'db')!;
    assert.deepEqual(db.pending, [
      {
        slot: '1',
        reason:
          'volume berth.shop.db.data.1 is on node a, which is down; the replica waits for it rather than start empty elsewhere',
      },
    ]);
    assert.deepEqual(db.batches, [], 'nothing is started on b for slot 1');
    assert.equal(db.keep.length, 1);
  });

  test('a draining node or one the constraints exclude keeps its slot pending, and its replica', () => {
    const spec = stateful({ replicas: 1 });
    const draining = computePlan(desired([spec]), {
      nodes: [
        node('a', { status: 'drain', volumes: [volume('1')], replicas: [replica(spec, '1', 'a')] }),
        node('b'),
      ],
    }).services[0]!;
    assert.match(draining.pending[0]?.reason ?? '', /on node a, which is draining/);
    assert.deepEqual(draining.batches, [], 'the replica on the draining node is not replaced elsewhere');

    const constrained = stateful({ replicas: 1, placement: { constraints: ['node.name != a'] } });
    const excluded = placeServices(
      [constrained],
      [node('a', { volumes: [volume('1')] }), node('b')],
      new Map(),
    );
    assert.match(
      excluded.get('shop/db')!.pending[0]?.reason ?? '',
      /which the placement constraints exclude/,
    );
  });

  test('slots without a volume yet are placed as usual, and volumes of other services or names pin nothing', () => {
    const spec = stateful({ replicas: 2 });
    const placed = placeServices(
      [spec],
      [node('a', { volumes: [volume('1', 'old')] }), node('b', { volumes: [volume('2')] })],
      new Map(),
    ).get('shop/db')!;
    assert.deepEqual(
      placed.assignments.find((a) => a.slot === '2'),
      { slot: '2', node: 'b' },
    );
    assert.equal(placed.assignments.length, 2);
  });

  test('each planned replica mounts its own slot’s volume, and the update is stop-first', () => {
    const spec = stateful();
    const plan = computePlan(desired([spec]), { nodes: [node('a')] });
    const db = plan.services[0]!;
    assert.equal(db.policy.order, 'stop-first');
    const sources = db.batches.flat().map((step) => (step.action === 'remove' ? null : step.request.volumes));
    assert.deepEqual(
      sources.map((volumes) => volumes?.map((v) => [v.source, v.target])),
      [[['berth.shop.db.data.1', '/var/lib/data']], [['berth.shop.db.data.2', '/var/lib/data']]],
    );
  });

  test('a service removed from git deletes its volumes only when it said volumeReclaim: delete', () => {
    const nodesWith = (spec: ServiceSpec): NodeSnapshot[] => [
      node('a', { volumes: [volume('1')], replicas: [replica(spec, '1', 'a')] }),
      node('b', { volumes: [volume('2')] }),
      node('c', { status: 'down', volumes: [volume('3')] }),
    ];
    const retained = computePlan(desired([]), { nodes: nodesWith(stateful()) }).services[0]!;
    assert.equal(retained.change, 'remove');
    assert.equal(retained.deleteVolumes, undefined);

    const deleting = stateful({ volumeReclaim: 'delete' });
    const removed = computePlan(desired([]), { nodes: nodesWith(deleting) }).services[0]!;
    assert.deepEqual(removed.deleteVolumes, [
      { node: 'a', name: 'berth.shop.db.data.1' },
      { node: 'b', name: 'berth.shop.db.data.2' },
    ]);
  });

  test('volumes and volumeReclaim are part of the spec hash, the driver is not', () => {
    const hash = (spec: ServiceSpec): string => specHashOf(summariseService(spec, desired([spec])));
    const plain = normaliseService({
      apiVersion: 'berth/v1',
      kind: 'Service',
      metadata: { name: 'db', namespace: 'shop' },
      spec: { image: 'db:v1' },
    });
    assert.equal(
      summariseService(plain, desired([plain])).volumes,
      undefined,
      'hashes of services without volumes stay',
    );
    assert.notEqual(hash(stateful()), hash(stateful({ volumeReclaim: 'delete' })));
    assert.equal(
      hash(stateful()),
      hash(
        stateful({
          volumes: [{ name: 'data', target: '/var/lib/data', driver: 'local', driverOptions: { o: 'x' } }],
        }),
      ),
    );
  });
});
