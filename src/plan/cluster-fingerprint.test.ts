import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NodeSnapshot, ObservedReplica } from '../api/types.js';
import { clusterChanges, fingerprintCluster } from './cluster-fingerprint.js';

function replica(name: string, overrides: Partial<ObservedReplica> = {}): ObservedReplica {
  return {
    name,
    id: `id-${name}`,
    node: 'n1',
    namespace: 'default',
    service: 'web',
    slot: '1',
    specHash: 'aaaaaaaaaaaaaaaa',
    revision: '1111111111111111111111111111111111111111',
    state: 'running',
    health: 'healthy',
    healthDetail: null,
    exitCode: null,
    restartCount: 0,
    createdAt: '2026-01-01T00:00:00Z',
    startedAt: '2026-01-01T00:00:01Z',
    ports: [],
    specSummary: null,
    ...overrides,
  };
}

function node(name: string, replicas: ObservedReplica[], extra: Partial<NodeSnapshot> = {}): NodeSnapshot {
  return {
    name,
    address: '127.0.0.1',
    labels: { zone: 'a' },
    capacity: { nanoCpus: 2e9, memoryBytes: 4 * 2 ** 30 },
    engineVersion: '27',
    status: 'ready',
    images: [],
    replicas,
    ...extra,
  };
}

const web1 = replica('web-1');
const web2 = replica('web-2', { slot: '2' });
const planned = (): NodeSnapshot[] => [node('n1', [web1, web2]), node('n2', [])];

describe('clusterChanges', () => {
  const cases: { name: string; now: () => NodeSnapshot[]; changes: RegExp[] }[] = [
    { name: 'the same cluster', now: planned, changes: [] },
    {
      name: 'the same cluster observed in another order, with other addresses, images and container ids',
      now: () => [
        node('n2', [], { address: '10.0.0.2', images: ['x:1'] }),
        node('n1', [replica('web-2', { slot: '2', id: 'other' }), web1]),
      ],
      changes: [],
    },
    {
      name: 'a replica that finished starting (the planner sees it alive either way)',
      now: () => [node('n1', [replica('web-1', { health: 'starting' }), web2]), node('n2', [])],
      changes: [],
    },
    {
      name: 'a new node',
      now: () => [...planned(), node('n3', [])],
      changes: [/^node n3 is new \(ready\)$/],
    },
    { name: 'a node gone', now: () => [node('n1', [web1, web2])], changes: [/^node n2 is gone$/] },
    {
      name: 'a node down',
      now: () => [node('n1', [web1, web2]), node('n2', [], { status: 'down' })],
      changes: [/^node n2 was ready, now down$/],
    },
    {
      name: 'node labels changed',
      now: () => [node('n1', [web1, web2]), node('n2', [], { labels: { zone: 'b' } })],
      changes: [/^node n2: labels were zone=a, now zone=b$/],
    },
    {
      name: 'node capacity changed',
      now: () => [node('n1', [web1, web2]), node('n2', [], { capacity: { nanoCpus: 1e9, memoryBytes: 1 } })],
      changes: [/^node n2: capacity was 2 cpus\/\d+ bytes, now 1 cpus\/1 bytes$/],
    },
    {
      name: 'a replica removed',
      now: () => [node('n1', [web1]), node('n2', [])],
      changes: [/^node n1: replica web-2 \(1111111\/aaaaaaaaaaaa running, healthy\) is gone$/],
    },
    {
      name: 'a replica added',
      now: () => [node('n1', [web1, web2]), node('n2', [replica('web-3', { slot: '3', node: 'n2' })])],
      changes: [/^node n2: replica web-3 \(1111111\/aaaaaaaaaaaa running, healthy\) appeared$/],
    },
    {
      name: 'a replica with another spec hash',
      now: () => [
        node('n1', [web1, replica('web-2', { slot: '2', specHash: 'bbbbbbbbbbbbbbbb' })]),
        node('n2', []),
      ],
      changes: [
        /^node n1: replica web-2 was 1111111\/aaaaaaaaaaaa running, healthy, now 1111111\/bbbbbbbbbbbb/,
      ],
    },
    {
      name: 'a replica of another revision',
      now: () => [node('n1', [web1, replica('web-2', { slot: '2', revision: '2222222' })]), node('n2', [])],
      changes: [
        /^node n1: replica web-2 was 1111111\/\w+ running, healthy, now 2222222\/\w+ running, healthy$/,
      ],
    },
    {
      name: 'a replica turned unhealthy',
      now: () => [node('n1', [web1, replica('web-2', { slot: '2', health: 'unhealthy' })]), node('n2', [])],
      changes: [/^node n1: replica web-2 was .* running, healthy, now .* running, unhealthy$/],
    },
    {
      name: 'a replica that exited',
      now: () => [node('n1', [replica('web-1', { state: 'exited', health: 'none' }), web2]), node('n2', [])],
      changes: [/^node n1: replica web-1 was .* running, healthy, now .* exited$/],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const changes = clusterChanges(
        fingerprintCluster({ nodes: planned() }),
        fingerprintCluster({ nodes: c.now() }),
      );
      assert.equal(changes.length, c.changes.length, changes.join('\n'));
      c.changes.forEach((pattern, i) => assert.match(changes[i]!, pattern));
    });
  }

  test('a fingerprint survives JSON (it is saved in plan files)', () => {
    const fingerprint = fingerprintCluster({ nodes: planned() });
    const saved = JSON.parse(JSON.stringify(fingerprint)) as typeof fingerprint;
    assert.deepEqual(clusterChanges(saved, fingerprintCluster({ nodes: planned() })), []);
  });
});
