import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MeshRoutes, NodeAgent, NodeSnapshot } from '../api/types.js';
import { silentLogger } from '../core/log.js';
import { MeshController } from './mesh-controller.js';

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
