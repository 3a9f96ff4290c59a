import assert from 'node:assert/strict';
import { Agent, request, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { after, describe, test } from 'node:test';
import { startNamedBackend } from '../../test/helpers/loopback-http.js';
import { silentLogger } from '../core/log.js';
import { createHttpBalancer, type HttpBalancer } from './http-balancer.js';

const connectTimeoutMs = 10_000;

/** One request through `agent` (kept alive when the agent says so): status, body, socket used. */
function send(
  port: number,
  options: { agent?: Agent; method?: string; body?: string; path?: string } = {},
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: options.path ?? '/',
        method: options.method ?? 'GET',
        agent: options.agent ?? false,
      },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('HTTP balancer', () => {
  const servers: (Server | TcpServer)[] = [];
  const balancers: HttpBalancer[] = [];
  after(async () => {
    for (const lb of balancers) await lb.close();
    for (const s of servers) {
      if ('closeAllConnections' in s) s.closeAllConnections();
      s.close();
    }
  });

  const balancer = async (): Promise<HttpBalancer> => {
    const lb = await createHttpBalancer({
      host: '127.0.0.1',
      port: 0,
      log: silentLogger(),
      connectTimeoutMs,
    });
    balancers.push(lb);
    return lb;
  };

  test('balances the requests of one kept-alive client connection over the replicas', async () => {
    const a = await startNamedBackend('a');
    const b = await startNamedBackend('b');
    servers.push(a.server, b.server);
    const lb = await balancer();
    lb.setBackends([a.backend, b.backend]);
    const client = new Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    client.on('free', (socket) => sockets.add(socket));
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) answers.push((await send(lb.port, { agent: client })).body);
    client.destroy();
    assert.equal(sockets.size, 1, 'one client connection throughout');
    assert.deepEqual(answers.sort(), ['a', 'a', 'a', 'b', 'b', 'b']);
  });

  test('a replica taken out finishes its request in flight; a kept-alive client never sees an error', async () => {
    const slow = await startNamedBackend('slow', 800);
    const fast = await startNamedBackend('fast');
    servers.push(slow.server, fast.server);
    const lb = await balancer();
    lb.setBackends([slow.backend]);
    const client = new Agent({ keepAlive: true, maxSockets: 1 });
    const other = new Agent({ keepAlive: true, maxSockets: 1 });
    const inFlight = send(lb.port, { agent: client });
    while (lb.activeConnections('slow') === 0) await new Promise((r) => setTimeout(r, 5));
    lb.setBackends([fast.backend]);
    assert.equal((await send(lb.port, { agent: other })).body, 'fast');
    assert.equal((await inFlight).body, 'slow');
    assert.equal(await lb.drained('slow', 5000), true);
    // The same kept-alive client connection carries on, now served by the other replica.
    for (let i = 0; i < 3; i++) assert.equal((await send(lb.port, { agent: client })).body, 'fast');
    client.destroy();
    other.destroy();
  });

  test('a replica that fails a GET: the next one answers; a POST is answered 502, never sent twice', async () => {
    let closed = 0;
    const closer = createTcpServer((socket) => {
      closed++;
      socket.destroy();
    });
    servers.push(closer);
    await new Promise<void>((resolve) => closer.listen(0, '127.0.0.1', resolve));
    const address = closer.address();
    assert.ok(typeof address === 'object' && address);
    const good = await startNamedBackend('good');
    servers.push(good.server);
    const posts: string[] = [];
    good.server.on('request', (req: { method?: string }) => {
      if (req.method === 'POST') posts.push('POST');
    });
    const lb = await balancer();
    const broken = { id: 'closer', host: '127.0.0.1', port: address.port };
    lb.setBackends([broken, good.backend]);
    for (let i = 0; i < 4; i++) assert.equal((await send(lb.port)).body, 'good');
    assert.equal(closed, 1, 'after failing once, the broken replica is tried last and gets no more');

    lb.setBackends([broken]);
    const post = await send(lb.port, { method: 'POST', body: 'pay once' });
    assert.equal(post.status, 502);
    assert.deepEqual(posts, []);
  });

  test('no replica: 503; the client address is passed on in X-Forwarded-For', async () => {
    const lb = await balancer();
    const none = await send(lb.port);
    assert.equal(none.status, 503);
    assert.match(none.body, /no healthy replica/);

    const echo = await startNamedBackend('echo');
    servers.push(echo.server);
    let forwarded: unknown = null;
    echo.server.prependListener('request', (req: { headers: Record<string, unknown> }) => {
      forwarded = req.headers['x-forwarded-for'];
    });
    lb.setBackends([echo.backend]);
    assert.equal((await send(lb.port)).body, 'echo');
    assert.equal(forwarded, '127.0.0.1');
  });

  test('an upgrade (WebSocket and the like) is relayed byte for byte to one replica', async () => {
    const backend = await startNamedBackend('ws');
    servers.push(backend.server);
    backend.server.on('upgrade', (_req, socket: import('node:net').Socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      socket.pipe(socket);
    });
    const lb = await balancer();
    lb.setBackends([backend.backend]);
    const echoed = await new Promise<string>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port: lb.port,
        headers: { connection: 'Upgrade', upgrade: 'echo' },
        agent: false,
      });
      req.on('upgrade', (res, socket) => {
        assert.equal(res.statusCode, 101);
        socket.once('data', (chunk: Buffer) => {
          resolve(chunk.toString());
          socket.destroy();
        });
        socket.write('ping');
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(echoed, 'ping');
    assert.equal(await lb.drained('ws', 5000), true, 'the upgraded connection is over once closed');
  });
});
