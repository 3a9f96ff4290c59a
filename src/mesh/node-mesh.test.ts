import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { after, describe, test } from 'node:test';
import type { MeshBackend, MeshRoutes } from '../api/types.js';
import { silentLogger } from '../log.js';
import { createNodeMesh } from './node-mesh.js';

/** A real HTTP backend on loopback answering its own name after `slowMs`. */
async function backend(name: string, slowMs = 0): Promise<{ server: Server; backend: MeshBackend }> {
  const server = createServer((_req, res) => {
    setTimeout(() => res.end(name), slowMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('no address');
  return { server, backend: { id: name, host: '127.0.0.1', port: address.port } };
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || !address) throw new Error('no address');
  return address.port;
}

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

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
    const a = await backend('a');
    const b = await backend('b');
    servers.push(a.server, b.server);
    const port = await freePort();
    const mesh = createNodeMesh({ address: '127.0.0.1', log: silentLogger() });
    try {
      await mesh.apply(table(1, port, [a.backend, b.backend]), { drainTimeoutMs: 0 });
      assert.deepEqual(mesh.ports(), [port]);
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) seen.add(await get(port));
      assert.deepEqual([...seen].sort(), ['a', 'b']);

      await mesh.apply(table(2, port, [b.backend]), { drainTimeoutMs: 0 });
      for (let i = 0; i < 4; i++) assert.equal(await get(port), 'b');

      // An older table arriving late changes nothing.
      await mesh.apply(table(1, port, [a.backend]), { drainTimeoutMs: 0 });
      assert.equal(await get(port), 'b');

      await mesh.apply({ version: 3, routes: [] }, { drainTimeoutMs: 0 });
      assert.deepEqual(mesh.ports(), []);
      await assert.rejects(get(port));
    } finally {
      await mesh.close();
    }
  });

  test('a backend leaving the table finishes its in-flight request before apply resolves', async () => {
    const slow = await backend('slow', 600);
    const other = await backend('other');
    servers.push(slow.server, other.server);
    const port = await freePort();
    const mesh = createNodeMesh({ address: '127.0.0.1', log: silentLogger() });
    try {
      await mesh.apply(table(1, port, [slow.backend]), { drainTimeoutMs: 0 });
      const inFlight = get(port);
      // Let the request reach the slow backend before it leaves.
      await new Promise((r) => setTimeout(r, 200));
      let answered: string | null = null;
      void inFlight.then((body) => (answered = body));
      await mesh.apply(table(2, port, [other.backend]), { drainTimeoutMs: 30_000 });
      // apply waited for the drain: the in-flight answer arrived first, intact.
      await new Promise((r) => setImmediate(r));
      assert.equal(answered, 'slow');
      assert.equal(await get(port), 'other');
    } finally {
      await mesh.close();
    }
  });
});
