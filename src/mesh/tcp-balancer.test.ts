import assert from 'node:assert/strict';
import { request, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { after, describe, test } from 'node:test';
import { getBody, startNamedBackend } from '../../test/helpers/loopback-http.js';
import { silentLogger } from '../core/log.js';
import { canReplay, createTcpBalancer, type TcpBalancer } from './tcp-balancer.js';

/** Generous: a loaded CI machine can stall the event loop; this is a bound, not a timing assert. */
const connectTimeoutMs = 10_000;

describe('TCP balancer', () => {
  const servers: Server[] = [];
  const tcpServers: TcpServer[] = [];
  const balancers: TcpBalancer[] = [];
  after(() => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    for (const s of tcpServers) s.close();
    for (const lb of balancers) void lb.close();
  });

  test('spreads connections round-robin over the backends', async () => {
    const a = await startNamedBackend('a');
    const b = await startNamedBackend('b');
    servers.push(a.server, b.server);
    const lb = await createTcpBalancer({ host: '127.0.0.1', port: 0, log: silentLogger(), connectTimeoutMs });
    lb.setBackends([a.backend, b.backend]);
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await getBody(lb.port));
    assert.deepEqual(answers.sort(), ['a', 'a', 'a', 'b', 'b', 'b']);
    await lb.close();
  });

  test('a dead backend is skipped: no request fails', async () => {
    const a = await startNamedBackend('a');
    const dead = await startNamedBackend('dead');
    servers.push(a.server);
    await new Promise<void>((resolve) => dead.server.close(() => resolve()));
    const lb = await createTcpBalancer({ host: '127.0.0.1', port: 0, log: silentLogger(), connectTimeoutMs });
    lb.setBackends([dead.backend, a.backend]);
    const answers = await Promise.all(Array.from({ length: 10 }, () => getBody(lb.port)));
    assert.deepEqual(new Set(answers), new Set(['a']));
    await lb.close();
  });

  test('a removed backend gets no new connections, and its in-flight request finishes (drain)', async () => {
    const slow = await startNamedBackend('slow', 1000);
    const fast = await startNamedBackend('fast');
    servers.push(slow.server, fast.server);
    const lb = await createTcpBalancer({ host: '127.0.0.1', port: 0, log: silentLogger(), connectTimeoutMs });
    lb.setBackends([slow.backend]);
    const inFlight = getBody(lb.port);
    while (lb.activeConnections('slow') === 0) await new Promise((r) => setTimeout(r, 5));
    assert.equal(lb.activeConnections('slow'), 1);
    lb.setBackends([fast.backend]);
    assert.equal(await getBody(lb.port), 'fast');
    assert.equal(await inFlight, 'slow');
    assert.equal(await lb.drained('slow', 5000), true);
    await lb.close();
  });

  test('with no backend a connection is closed, not left hanging', async () => {
    const lb = await createTcpBalancer({ host: '127.0.0.1', port: 0, log: silentLogger(), connectTimeoutMs });
    await assert.rejects(getBody(lb.port));
    await lb.close();
  });

  test('a backend that accepts and closes without answering: GETs go to the next one, a POST is not sent twice', async () => {
    // What Docker's port proxy does in front of a replica that just died.
    let closed = 0;
    const closer: TcpServer = createTcpServer((socket) => {
      closed++;
      socket.destroy();
    });
    tcpServers.push(closer);
    await new Promise<void>((resolve) => closer.listen(0, '127.0.0.1', resolve));
    const closerAddress = closer.address();
    assert.ok(typeof closerAddress === 'object' && closerAddress);
    const seen: string[] = [];
    const good = await startNamedBackend('good');
    good.server.on('request', (req: { method?: string }) => seen.push(req.method ?? ''));
    servers.push(good.server);
    const lb = await createTcpBalancer({ host: '127.0.0.1', port: 0, log: silentLogger(), connectTimeoutMs });
    balancers.push(lb);
    lb.setBackends([{ id: 'closer', host: '127.0.0.1', port: closerAddress.port }, good.backend]);
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await getBody(lb.port));
    assert.deepEqual(new Set(answers), new Set(['good']));
    assert.equal(seen.length, 6);
    assert.equal(closed, 1, 'after failing once, the closer is tried last (passive health) and gets no more');

    // A POST while the closer is the only backend: it is tried (even though it failed lately).
    lb.setBackends([{ id: 'closer', host: '127.0.0.1', port: closerAddress.port }]);
    const post = new Promise<number>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: lb.port, method: 'POST', path: '/', agent: false },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end('pay once');
    });
    await assert.rejects(post, 'the POST fails rather than reaching a second replica');
    assert.equal(seen.filter((m) => m === 'POST').length, 0);
  });

  test('replays only soon after connecting, within the buffer, and nothing or an idempotent HTTP request', () => {
    const head = (text: string) => Buffer.from(text);
    assert.equal(canReplay({ bytes: 0, overflow: false, head: head('') }, 10), true);
    assert.equal(canReplay({ bytes: 40, overflow: false, head: head('GET / HT') }, 10), true);
    assert.equal(canReplay({ bytes: 40, overflow: false, head: head('DELETE /') }, 10), true);
    assert.equal(canReplay({ bytes: 40, overflow: false, head: head('POST / H') }, 10), false);
    assert.equal(canReplay({ bytes: 40, overflow: false, head: head('\x00\x01bin') }, 10), false);
    assert.equal(canReplay({ bytes: 0, overflow: true, head: head('GET / HT') }, 10), false);
    assert.equal(canReplay({ bytes: 40, overflow: false, head: head('GET / HT') }, 5000), false);
  });
});
