import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { after, describe, test } from 'node:test';
import { silentLogger } from '../log.js';
import { createTcpBalancer, type Backend } from './tcp-balancer.js';

/** A real HTTP backend on loopback answering its own name; `slowMs` delays every answer. */
async function backend(name: string, slowMs = 0): Promise<{ server: Server; backend: Backend }> {
  const server = createServer((_req, res) => {
    setTimeout(() => res.end(name), slowMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('no address');
  return { server, backend: { id: name, host: '127.0.0.1', port: address.port } };
}

/** One request on a fresh connection (no keep-alive pool), so every request is balanced anew. */
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

/** Generous: a loaded CI machine can stall the event loop; this is a bound, not a timing assert. */
const connectTimeoutMs = 10_000;

describe('TCP balancer', () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
  });

  test('spreads connections round-robin over the backends', async () => {
    const a = await backend('a');
    const b = await backend('b');
    servers.push(a.server, b.server);
    const lb = await createTcpBalancer({ host: '127.0.0.1', port: 0, log: silentLogger(), connectTimeoutMs });
    lb.setBackends([a.backend, b.backend]);
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await get(lb.port));
    assert.deepEqual(answers.sort(), ['a', 'a', 'a', 'b', 'b', 'b']);
    await lb.close();
  });

  test('a dead backend is skipped: no request fails', async () => {
    const a = await backend('a');
    const dead = await backend('dead');
    servers.push(a.server);
    await new Promise<void>((resolve) => dead.server.close(() => resolve()));
    const lb = await createTcpBalancer({ host: '127.0.0.1', port: 0, log: silentLogger(), connectTimeoutMs });
    lb.setBackends([dead.backend, a.backend]);
    const answers = await Promise.all(Array.from({ length: 10 }, () => get(lb.port)));
    assert.deepEqual(new Set(answers), new Set(['a']));
    await lb.close();
  });

  test('a removed backend gets no new connections, and its in-flight request finishes (drain)', async () => {
    const slow = await backend('slow', 1000);
    const fast = await backend('fast');
    servers.push(slow.server, fast.server);
    const lb = await createTcpBalancer({ host: '127.0.0.1', port: 0, log: silentLogger(), connectTimeoutMs });
    lb.setBackends([slow.backend]);
    const inFlight = get(lb.port);
    while (lb.activeConnections('slow') === 0) await new Promise((r) => setTimeout(r, 5));
    assert.equal(lb.activeConnections('slow'), 1);
    lb.setBackends([fast.backend]);
    assert.equal(await get(lb.port), 'fast');
    assert.equal(await inFlight, 'slow');
    assert.equal(await lb.drained('slow', 5000), true);
    await lb.close();
  });

  test('with no backend a connection is closed, not left hanging', async () => {
    const lb = await createTcpBalancer({ host: '127.0.0.1', port: 0, log: silentLogger(), connectTimeoutMs });
    await assert.rejects(get(lb.port));
    await lb.close();
  });
});
