import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MeshRoutes, NodeAgent, NodeSnapshot, ObservedReplica, ObservedState } from '../api/types.js';
import { silentLogger } from '../core/log.js';
import { lostReplicas, MeshController } from './mesh-controller.js';

/** A node that answers snapshots and records every table pushed to it. */
function recordingNode(name: string): { agent: NodeAgent; pushed: MeshRoutes[] } {
  const pushed: MeshRoutes[] = [];
  const snapshot: NodeSnapshot = {
    name,
    address: '127.0.0.1',
    labels: {},
    capacity: { nanoCpus: 1e9, memoryBytes: 1 << 30 },
    engineVersion: 'test',
    status: 'ready',
    images: [],
    replicas: [],
  };
  const agent = {
    name,
    snapshot: async () => snapshot,
    setMeshRoutes: async (table: MeshRoutes) => {
      pushed.push(table);
    },
  } as unknown as NodeAgent;
  return { agent, pushed };
}

test('a restarted operator pushes no routing table before a reconcile has loaded what git wants', async () => {
  const node = recordingNode('n1');
  const mesh = new MeshController({ agents: () => new Map([['n1', node.agent]]), log: silentLogger() });
  // Before: nodes keep the table of the operator that ran before (an empty one would close every
  // published port while the replicas behind them still run).
  await mesh.refresh();
  assert.equal(node.pushed.length, 0);
  mesh.setDesired({ services: [] });
  await mesh.refresh();
  assert.equal(node.pushed.length, 1);
});

test('a replica is lost when it stops running or goes without a rollout withdrawing it', () => {
  const replica = (name: string, state: 'running' | 'exited') => ({ name, state }) as ObservedReplica;
  const state = (...replicas: ObservedReplica[]): ObservedState => ({
    nodes: [{ name: 'n1', replicas } as NodeSnapshot],
  });
  const before = state(replica('a', 'running'), replica('b', 'running'), replica('c', 'running'));
  const cases: [string, ObservedState, string[], string[]][] = [
    ['nothing changed', before, [], []],
    ['a new replica is no loss', state(...before.nodes[0]!.replicas, replica('d', 'running')), [], []],
    ['removed by hand', state(replica('a', 'running'), replica('c', 'running')), [], ['n1/b']],
    [
      'stopped',
      state(replica('a', 'running'), replica('b', 'exited'), replica('c', 'running')),
      [],
      ['n1/b'],
    ],
    ['removed by a rollout', state(replica('a', 'running'), replica('c', 'running')), ['n1/b'], []],
  ];
  for (const [what, after, withdrawn, lost] of cases) {
    assert.deepEqual(lostReplicas(before, after, new Set(withdrawn)), lost, what);
  }
});
