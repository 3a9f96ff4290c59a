import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MeshRoutes } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import type { NodeMesh } from '../mesh/node-mesh.js';
import { createMeshMembership } from './mesh-membership.js';

/** A node mesh that records the tables it is given, instead of opening balancers. */
function recordingMesh(): NodeMesh & { applied: string[][] } {
  const applied: string[][] = [];
  return {
    applied,
    apply: async (table) => {
      applied.push(table.routes.flatMap((route) => route.backends.map((backend) => backend.id)));
    },
    ports: () => [],
    dataPlane: () => null,
    close: async () => undefined,
  };
}

const table: MeshRoutes = {
  version: 1,
  routes: [
    {
      service: 'default/web',
      published: 8080,
      protocol: 'tcp',
      backends: [
        { id: 'node-1/web.1', host: '127.0.0.1', port: 30001 },
        { id: 'node-1/web.2', host: '127.0.0.1', port: 30002 },
        { id: 'node-2/web.1', host: '127.0.0.2', port: 30001 },
      ],
    },
  ],
};

describe('mesh membership of a node', () => {
  test("a vetoed replica of this node leaves this node's mesh at once, and comes back when lifted", async () => {
    const mesh = recordingMesh();
    const membership = createMeshMembership({
      nodeName: 'node-1',
      address: '127.0.0.1',
      log: silentLogger(),
      mesh,
    });
    // Before any table there is nothing to re-apply.
    membership.veto('web.2', true);
    assert.deepEqual(mesh.applied, []);
    await membership.setRoutes(table, { drainTimeoutMs: 0 });
    membership.veto('web.1', true);
    // A veto already in place changes nothing.
    membership.veto('web.1', true);
    membership.veto('web.2', false);
    await new Promise((resolve) => setImmediate(resolve));
    // node-2's web.1 is not this node's replica: vetoing node-1's web.1 leaves it in.
    assert.deepEqual(mesh.applied, [
      ['node-1/web.1', 'node-2/web.1'],
      ['node-2/web.1'],
      ['node-1/web.2', 'node-2/web.1'],
    ]);
  });

  test('without service addresses containers keep the default resolvers; a closed mesh takes no table', async () => {
    const mesh = recordingMesh();
    const membership = createMeshMembership({
      nodeName: 'node-1',
      address: '127.0.0.1',
      log: silentLogger(),
      mesh,
    });
    assert.equal(await membership.containerDns('default'), null);
    await membership.close();
    membership.veto('web.1', true);
    await assert.rejects(
      membership.setRoutes(table, { drainTimeoutMs: 0 }),
      (error: unknown) => error instanceof BerthError && error.code === 'ERR_STATE',
    );
    assert.deepEqual(mesh.applied, []);
  });
});
