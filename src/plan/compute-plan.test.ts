import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NodeSnapshot, ObservedReplica } from '../api/types.js';
import type { DesiredState, ServiceSpec } from '../manifests/types.js';
import { computePlan } from './compute-plan.js';
import { replicaName } from './replica-name.js';
import { specHashOf, summariseService } from './spec-summary.js';
import type { ReplicaStep } from './types.js';

function service(name: string, overrides: Partial<ServiceSpec> = {}): ServiceSpec {
  const policy = {
    parallelism: 1,
    delayMs: 0,
    order: 'start-first' as const,
    monitorMs: 5000,
    failureAction: 'rollback' as const,
    maxFailureRatio: 0,
    progressDeadlineMs: 600_000,
  };
  return {
    kind: 'Service',
    name,
    namespace: 'default',
    labels: {},
    image: 'web:v1',
    command: null,
    args: null,
    env: {},
    envFrom: [],
    mode: 'replicated',
    replicas: 1,
    ports: [],
    configs: [],
    secrets: [],
    healthcheck: null,
    resources: { limits: { nanoCpus: 0, memoryBytes: 0 }, reservations: { nanoCpus: 0, memoryBytes: 0 } },
    placement: { constraints: [], spread: null, maxPerNode: 0 },
    update: policy,
    rollback: { ...policy, failureAction: 'pause' },
    restart: { condition: 'any', maxAttempts: 0 },
    stopGracePeriodMs: 10_000,
    user: null,
    readOnlyRootFilesystem: false,
    capabilities: { drop: [], add: [] },
    workingDir: null,
    init: false,
    volumes: [],
    tmpfs: [],
    volumeReclaim: 'retain',
    ...overrides,
  };
}

function desired(services: ServiceSpec[], extra: Partial<DesiredState> = {}): DesiredState {
  return { revision: 'r2', services, configs: [], secrets: [], namespaces: [], ...extra };
}

function hashOf(spec: ServiceSpec, state: DesiredState = desired([spec])): string {
  return specHashOf(summariseService(spec, state));
}

function replica(spec: ServiceSpec, slot: string, overrides: Partial<ObservedReplica> = {}): ObservedReplica {
  const specHash = overrides.specHash ?? hashOf(spec);
  return {
    name: replicaName(spec.namespace, spec.name, slot, specHash),
    id: `id-${spec.name}-${slot}-${specHash.slice(0, 4)}`,
    node: 'n1',
    namespace: spec.namespace,
    service: spec.name,
    slot,
    specHash,
    revision: 'r1',
    state: 'running',
    health: 'healthy',
    healthDetail: null,
    exitCode: null,
    restartCount: 0,
    createdAt: '2026-01-01T00:00:00Z',
    startedAt: '2026-01-01T00:00:01Z',
    ports: [],
    specSummary: summariseService(spec, desired([spec])) as unknown as Record<string, unknown>,
    ...overrides,
  };
}

function node(
  name: string,
  replicas: ObservedReplica[] = [],
  extra: Partial<NodeSnapshot> = {},
): NodeSnapshot {
  return {
    name,
    address: '127.0.0.1',
    labels: {},
    capacity: { nanoCpus: 2e9, memoryBytes: 4 * 2 ** 30 },
    engineVersion: '20.10',
    status: 'ready',
    images: [],
    replicas,
    ...extra,
  };
}

function actions(batches: ReplicaStep[][]): string[][] {
  return batches.map((b) =>
    b.map((s) =>
      s.action === 'remove' ? `remove ${s.old.slot} (${s.reason})` : `${s.action} ${s.slot}@${s.node}`,
    ),
  );
}

describe('computePlan', () => {
  const cases: {
    name: string;
    services: ServiceSpec[];
    nodes: () => NodeSnapshot[];
    change: string[];
    batches: string[][][];
  }[] = [
    {
      name: 'a new service is created in batches of the update parallelism',
      services: [service('web', { replicas: 3, update: { ...service('x').update, parallelism: 2 } })],
      nodes: () => [node('n1')],
      change: ['create'],
      batches: [[['create 1@n1', 'create 2@n1'], ['create 3@n1']]],
    },
    {
      name: 'nothing to do when every replica runs the desired hash',
      services: [service('web', { replicas: 2 })],
      nodes: () => [node('n1', [replica(service('web'), '1'), replica(service('web'), '2')])],
      change: ['unchanged'],
      batches: [[]],
    },
    {
      name: 'an image change replaces every replica, one batch per parallelism',
      services: [service('web', { replicas: 2, image: 'web:v2' })],
      nodes: () => [node('n1', [replica(service('web'), '1'), replica(service('web'), '2')])],
      change: ['update'],
      batches: [[['replace 1@n1'], ['replace 2@n1']]],
    },
    {
      name: 'scaling down removes the highest slots only',
      services: [service('web', { replicas: 1 })],
      nodes: () => [
        node('n1', [
          replica(service('web'), '1'),
          replica(service('web'), '2'),
          replica(service('web'), '3'),
        ]),
      ],
      change: ['scale'],
      batches: [[['remove 2 (scaled-down)', 'remove 3 (scaled-down)']]],
    },
    {
      name: 'a service gone from git is pruned',
      services: [],
      nodes: () => [node('n1', [replica(service('old'), '1'), replica(service('old'), '2')])],
      change: ['remove'],
      batches: [[['remove 1 (pruned)', 'remove 2 (pruned)']]],
    },
    {
      name: 'a replica removed by hand is created again (drift)',
      services: [service('web', { replicas: 2 })],
      nodes: () => [node('n1', [replica(service('web'), '1')])],
      change: ['scale'],
      batches: [[['create 2@n1']]],
    },
    {
      name: 'a replica stopped by hand is recreated in place (drift)',
      services: [service('web', { replicas: 2 })],
      nodes: () => [
        node('n1', [
          replica(service('web'), '1'),
          replica(service('web'), '2', { state: 'exited', exitCode: 137 }),
        ]),
      ],
      change: ['repair'],
      batches: [[['replace 2@n1']]],
    },
    {
      name: 'an interrupted start-first rollout finishes: the new replica is kept, the old one goes',
      services: [service('web', { replicas: 1, image: 'web:v2' })],
      nodes: () => [
        node('n1', [
          replica(service('web'), '1'),
          replica(service('web', { image: 'web:v2' }), '1', { createdAt: '2026-01-01T00:01:00Z' }),
        ]),
      ],
      change: ['update'],
      batches: [[['replace 1@n1']]],
    },
    {
      name: 'a node that is down: its replicas are placed again on the nodes that are up',
      services: [service('web', { replicas: 4 })],
      nodes: () => [
        node('n1', [replica(service('web'), '1'), replica(service('web'), '3')]),
        node(
          'n2',
          [replica(service('web'), '2', { node: 'n2' }), replica(service('web'), '4', { node: 'n2' })],
          {
            status: 'down',
          },
        ),
        node('n3'),
      ],
      change: ['scale'],
      batches: [[['create 2@n3'], ['create 4@n3']]],
    },
    {
      name: 'a node that comes back after its replicas moved: its stale copies are removed, the moved ones kept',
      services: [service('web', { replicas: 2 })],
      nodes: () => [
        node('n1', [
          replica(service('web'), '1'),
          replica(service('web'), '2', { createdAt: '2026-01-01T00:05:00Z' }),
        ]),
        node('n2', [replica(service('web'), '2', { node: 'n2' })]),
      ],
      change: ['repair'],
      batches: [[['remove 2 (duplicate)']]],
    },
    {
      name: 'a drained node: its replicas are replaced elsewhere, start-first, before they stop',
      services: [service('web', { replicas: 2 })],
      nodes: () => [
        node('n1', [replica(service('web'), '1')]),
        node('n2', [replica(service('web'), '2', { node: 'n2' })], { status: 'drain' }),
      ],
      change: ['repair'],
      batches: [[['replace 2@n1']]],
    },
    {
      name: 'a drained node takes no new replicas, and a global service leaves it',
      services: [
        service('web', { replicas: 2 }),
        service('agent', { mode: 'global', replicas: 0, update: { ...service('x').update, parallelism: 0 } }),
      ],
      nodes: () => [
        node('n1'),
        node('n2', [replica(service('agent'), 'n2', { node: 'n2' })], { status: 'drain' }),
      ],
      change: ['scale', 'create'],
      batches: [
        [['remove n2 (misplaced)'], ['create n1@n1']],
        [['create 1@n1'], ['create 2@n1']],
      ],
    },
    {
      name: 'replicas spread over nodes and keep their node on the next plan',
      services: [service('web', { replicas: 4 })],
      nodes: () => [node('n1'), node('n2')],
      change: ['create'],
      batches: [[['create 1@n1'], ['create 2@n2'], ['create 3@n1'], ['create 4@n2']]],
    },
    {
      name: 'global mode runs one replica on every eligible node',
      services: [
        service('agent', {
          mode: 'global',
          replicas: 0,
          update: { ...service('x').update, parallelism: 0 },
          placement: {
            constraints: [{ field: 'node.labels.zone', op: '==', value: 'a' }],
            spread: null,
            maxPerNode: 0,
          },
        }),
      ],
      nodes: () => [
        node('n1', [], { labels: { zone: 'a' } }),
        node('n2', [], { labels: { zone: 'b' } }),
        node('n3', [], { labels: { zone: 'a' } }),
      ],
      change: ['create'],
      batches: [[['create n1@n1', 'create n3@n3']]],
    },
  ];

  for (const c of cases) {
    test(c.name, () => {
      const plan = computePlan(desired(c.services), { nodes: c.nodes() });
      assert.deepEqual(
        plan.services.map((s) => s.change),
        c.change,
      );
      assert.deepEqual(
        plan.services.map((s) => actions(s.batches)),
        c.batches,
      );
      assert.equal(
        plan.hasChanges,
        c.change.some((x) => x !== 'unchanged'),
      );
    });
  }

  test('is idempotent: planning the state a plan produces yields no changes', () => {
    const spec = service('web', { replicas: 3 });
    const first = computePlan(desired([spec]), { nodes: [node('n1'), node('n2')] });
    const placed = first.services[0]!.batches.flat().map((s) => {
      assert.equal(s.action, 'create');
      return s.action === 'create' ? replica(spec, s.slot, { node: s.node }) : undefined!;
    });
    const second = computePlan(desired([spec]), {
      nodes: [
        node(
          'n1',
          placed.filter((r) => r.node === 'n1'),
        ),
        node(
          'n2',
          placed.filter((r) => r.node === 'n2'),
        ),
      ],
    });
    assert.equal(second.hasChanges, false);
    assert.equal(second.services[0]!.keep.length, 3);
  });

  test('field changes name what changed between the running and the desired spec', () => {
    const before = service('web', { env: { GREETING: 'hello' } });
    const after = service('web', { env: { GREETING: 'hi' }, image: 'web:v2' });
    const plan = computePlan(desired([after]), { nodes: [node('n1', [replica(before, '1')])] });
    assert.deepEqual(plan.services[0]!.fieldChanges, [
      { path: 'env.GREETING', from: 'hello', to: 'hi' },
      { path: 'image', from: 'web:v1', to: 'web:v2' },
    ]);
  });

  test('a config change changes the hash of the services that mount it, and only those', () => {
    const mounts = service('web', {
      configs: [{ source: 'site', key: 'index.html', target: '/www/index.html', mode: 0o444 }],
    });
    const other = service('api');
    const v1 = desired([mounts, other], {
      configs: [{ kind: 'Config', name: 'site', namespace: 'default', data: { 'index.html': 'v1' } }],
    });
    const v2 = desired([mounts, other], {
      configs: [{ kind: 'Config', name: 'site', namespace: 'default', data: { 'index.html': 'v2' } }],
    });
    assert.notEqual(hashOf(mounts, v1), hashOf(mounts, v2));
    assert.equal(hashOf(other, v1), hashOf(other, v2));
  });

  test('container security settings replace replicas and travel in the request; unset, they leave hashes as they were', () => {
    const plain = service('web');
    assert.deepEqual(
      Object.keys(summariseService(plain, desired([plain]))).filter((key) =>
        ['readOnlyRootFilesystem', 'capabilities'].includes(key),
      ),
      [],
      'a service using neither keeps the spec hash it had before these fields existed',
    );
    const hardened = [
      service('web', { readOnlyRootFilesystem: true }),
      service('web', { capabilities: { drop: ['ALL'], add: [] } }),
      service('web', { capabilities: { drop: [], add: ['NET_BIND_SERVICE'] } }),
      service('web', { user: '1000:1000' }),
    ];
    for (const spec of hardened) {
      const plan = computePlan(desired([spec]), { nodes: [node('n1', [replica(plain, '1')])] });
      const [step] = plan.services[0]!.batches.flat();
      assert.equal(step?.action, 'replace', JSON.stringify(spec));
      assert.ok(step?.action === 'replace');
      assert.equal(step.request.readOnlyRootFilesystem, spec.readOnlyRootFilesystem);
      assert.deepEqual(step.request.capabilities, spec.capabilities);
      assert.equal(step.request.user, spec.user);
    }
    const fields = computePlan(desired([hardened[0]!]), { nodes: [node('n1', [replica(plain, '1')])] });
    assert.deepEqual(fields.services[0]!.fieldChanges, [
      { path: 'readOnlyRootFilesystem', from: null, to: true },
    ]);
  });

  test('replicas that fit nowhere are pending with a reason, and running ones are kept', () => {
    const spec = service('big', {
      replicas: 2,
      resources: {
        limits: { nanoCpus: 0, memoryBytes: 0 },
        reservations: { nanoCpus: 1.5e9, memoryBytes: 0 },
      },
    });
    const plan = computePlan(desired([spec]), { nodes: [node('n1')] });
    const s = plan.services[0]!;
    assert.deepEqual(actions(s.batches), [['create 1@n1']]);
    assert.equal(s.pending.length, 1);
    assert.match(s.pending[0]!.reason, /no eligible node has free resources/);
  });

  test('maxPerNode and constraints that match no node leave slots pending', () => {
    const spec = service('web', {
      replicas: 3,
      placement: {
        constraints: [{ field: 'node.name', op: '!=', value: 'n2' }],
        spread: null,
        maxPerNode: 1,
      },
    });
    const plan = computePlan(desired([spec]), { nodes: [node('n1'), node('n2')] });
    const s = plan.services[0]!;
    assert.deepEqual(actions(s.batches), [['create 1@n1']]);
    assert.deepEqual(
      s.pending.map((p) => p.reason),
      [
        'every eligible node already runs maxPerNode=1 replicas',
        'every eligible node already runs maxPerNode=1 replicas',
      ],
    );
  });

  test('spread over a label balances zones before nodes', () => {
    const spec = service('web', {
      replicas: 4,
      placement: { constraints: [], spread: 'node.labels.zone', maxPerNode: 0 },
    });
    const nodes = [
      node('a1', [], { labels: { zone: 'a' } }),
      node('a2', [], { labels: { zone: 'a' } }),
      node('b1', [], { labels: { zone: 'b' } }),
    ];
    const plan = computePlan(desired([spec]), { nodes });
    const placed = plan.services[0]!.batches.flat().map((s) => (s.action === 'create' ? s.node : ''));
    const zoneA = placed.filter((n) => n.startsWith('a')).length;
    assert.equal(zoneA, 2);
    assert.equal(placed.filter((n) => n === 'b1').length, 2);
  });
});

describe('canonicalJson', () => {
  test('sorts keys at every level and matches JSON.stringify otherwise', async () => {
    const { canonicalJson } = await import('./spec-summary.js');
    assert.equal(
      canonicalJson({ b: 1, a: { d: [1, 'x', null], c: true }, u: undefined }),
      '{"a":{"c":true,"d":[1,"x",null]},"b":1}',
    );
    assert.equal(canonicalJson('a"b'), JSON.stringify('a"b'));
  });
});

describe('containers created ahead and never started', () => {
  test('are removed, and their slot is planned as if they were not there', () => {
    const v1 = service('web', { replicas: 2 });
    const v2 = service('web', { replicas: 2, image: 'web:2' });
    const ahead = replica(v2, '2', { specHash: hashOf(v2), state: 'created', health: 'starting' });
    const plan = computePlan(desired([v2]), {
      nodes: [node('n1', [replica(v1, '1'), replica(v1, '2'), ahead])],
    });
    const steps = plan.services[0]!.batches.flat();
    assert.deepEqual(
      steps.filter((s) => s.action === 'remove').map((s) => [s.old.name, s.reason]),
      [[ahead.name, 'never-started']],
    );
    assert.deepEqual(
      steps.filter((s) => s.action === 'replace').map((s) => [s.slot, s.old.specHash]),
      [
        ['1', hashOf(v1)],
        ['2', hashOf(v1)],
      ],
    );
  });

  test('of a service at its desired revision: only they go', () => {
    const v1 = service('web', { replicas: 1 });
    const stale = service('web', { replicas: 1, image: 'web:2' });
    const ahead = replica(stale, '1', { specHash: hashOf(stale), state: 'created', health: 'starting' });
    const plan = computePlan(desired([v1]), { nodes: [node('n1', [replica(v1, '1'), ahead])] });
    assert.equal(plan.services[0]!.change, 'repair');
    assert.deepEqual(plan.services[0]!.batches, [
      [
        {
          action: 'remove',
          old: { name: ahead.name, node: 'n1', slot: '1', specHash: hashOf(stale), revision: 'r1' },
          reason: 'never-started',
        },
      ],
    ]);
  });
});
