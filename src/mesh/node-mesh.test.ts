import assert from 'node:assert/strict';
import { Agent, type Server } from 'node:http';
import { after, describe, test } from 'node:test';
import type { MeshBackend, MeshRoutes } from '../api/types.js';
import { getBody, startNamedBackend } from '../../test/helpers/loopback-http.js';
import { freePort, getOnce } from '../../test/helpers/load-loop.js';
import { silentLogger } from '../core/log.js';
import { createNodeMesh } from './node-mesh.js';

const table = (version: number, published: number, backends: MeshBackend[]): MeshRoutes => ({
  version,
  routes: [{ service: 'ns/web', published, protocol: 'tcp', backends }],
});

describe('node mesh', () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
  });

  test('serves a published port over the listed backends and follows new tables', async () => {
    const a = await startNamedBackend('a');
    const b = await startNamedBackend('b');
    servers.push(a.server, b.server);
    const port = await freePort();
    const mesh = createNodeMesh({ address: '127.0.0.1', log: silentLogger() });
    try {
      await mesh.apply(table(1, port, [a.backend, b.backend]), { drainTimeoutMs: 0 });
      assert.deepEqual(mesh.ports(), [port]);
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) seen.add(await getBody(port));
      assert.deepEqual([...seen].sort(), ['a', 'b']);

      await mesh.apply(table(2, port, [b.backend]), { drainTimeoutMs: 0 });
      for (let i = 0; i < 4; i++) assert.equal(await getBody(port), 'b');

      // An older table arriving late changes nothing.
      await mesh.apply(table(1, port, [a.backend]), { drainTimeoutMs: 0 });
      assert.equal(await getBody(port), 'b');

      await mesh.apply({ version: 3, routes: [] }, { drainTimeoutMs: 0 });
      assert.deepEqual(mesh.ports(), []);
      await assert.rejects(getBody(port));
    } finally {
      await mesh.close();
    }
  });

  test('a backend leaving the table finishes its in-flight request before apply resolves', async () => {
    const slow = await startNamedBackend('slow', 600);
    const other = await startNamedBackend('other');
    servers.push(slow.server, other.server);
    const port = await freePort();
    const mesh = createNodeMesh({ address: '127.0.0.1', log: silentLogger() });
    try {
      await mesh.apply(table(1, port, [slow.backend]), { drainTimeoutMs: 0 });
      const inFlight = getBody(port);
      // Let the request reach the slow backend before it leaves.
      await new Promise((r) => setTimeout(r, 200));
      let answered: string | null = null;
      void inFlight.then((body) => (answered = body));
      await mesh.apply(table(2, port, [other.backend]), { drainTimeoutMs: 30_000 });
      // apply waited for the drain: the in-flight answer arrived first, intact.
      await new Promise((r) => setImmediate(r));
      assert.equal(answered, 'slow');
      assert.equal(await getBody(port), 'other');
    } finally {
      await mesh.close();
    }
  });

  test('appProtocol http: the port balances each request of a kept-alive client; tcp again pins it', async () => {
    const a = await startNamedBackend('a');
    const b = await startNamedBackend('b');
    servers.push(a.server, b.server);
    const port = await freePort();
    const mesh = createNodeMesh({ address: '127.0.0.1', log: silentLogger() });
    const kept = async (): Promise<string[]> => {
      // Six requests over one kept-alive connection.
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const bodies: string[] = [];
      try {
        for (let i = 0; i < 6; i++) bodies.push((await getOnce('127.0.0.1', port, 5000, '/', agent)).body);
      } finally {
        agent.destroy();
      }
      return bodies;
    };
    try {
      const routes = (version: number, appProtocol: 'tcp' | 'http'): MeshRoutes => ({
        version,
        routes: [
          {
            service: 'ns/web',
            published: port,
            protocol: 'tcp',
            appProtocol,
            backends: [a.backend, b.backend],
          },
        ],
      });
      await mesh.apply(routes(1, 'http'), { drainTimeoutMs: 0 });
      assert.deepEqual(new Set(await kept()), new Set(['a', 'b']));
      // Balanced per connection, a kept-alive client stays with one replica.
      await mesh.apply(routes(2, 'tcp'), { drainTimeoutMs: 0 });
      assert.equal(new Set(await kept()).size, 1);
    } finally {
      await mesh.close();
    }
  });
});
