import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MeshRoutes } from '../api/types.js';
import type { RuntimeContainer } from './runtime.js';
import { withLocalTargets } from './mesh-local-backends.js';

function container(name: string, address: string | null, hostPort: number): RuntimeContainer {
  return {
    id: `id-${name}`,
    name,
    image: 'web',
    labels: {},
    state: 'running',
    exitCode: null,
    oomKilled: false,
    error: null,
    restartCount: 0,
    createdAt: '2026-01-01T00:00:00Z',
    startedAt: '2026-01-01T00:00:01Z',
    finishedAt: null,
    ports: [{ target: 8080, protocol: 'tcp', hostIp: '127.0.0.1', hostPort }],
    ...(address === null ? {} : { address }),
  };
}

test("this node's replicas get their container's bridge address; others keep the published port", async () => {
  const table: MeshRoutes = {
    version: 3,
    routes: [
      {
        service: 'ns/web',
        published: 8000,
        protocol: 'tcp',
        backends: [
          { id: 'a/web.1', host: '127.0.0.1', port: 32001 },
          { id: 'a/web.2', host: '127.0.0.1', port: 32002 },
          { id: 'a/web.3', host: '127.0.0.1', port: 32003 },
          { id: 'b/web.4', host: '127.0.0.2', port: 32004 },
        ],
      },
    ],
  };
  const asked: string[] = [];
  const containers: Record<string, RuntimeContainer> = {
    'web.1': container('web.1', '172.17.0.5', 32001),
    // No bridge address (another network mode), or a host port that is not the table's (recreated).
    'web.2': container('web.2', null, 32002),
    'web.3': container('web.3', '172.17.0.7', 40000),
  };
  const located = await withLocalTargets(table, 'a', async (name) => {
    asked.push(name);
    return containers[name] ?? null;
  });
  assert.deepEqual(asked.sort(), ['web.1', 'web.2', 'web.3']);
  assert.equal(located.version, 3);
  assert.deepEqual(located.routes[0]?.backends, [
    { id: 'a/web.1', host: '127.0.0.1', port: 32001, local: { host: '172.17.0.5', port: 8080 } },
    { id: 'a/web.2', host: '127.0.0.1', port: 32002 },
    { id: 'a/web.3', host: '127.0.0.1', port: 32003 },
    { id: 'b/web.4', host: '127.0.0.2', port: 32004 },
  ]);
});
