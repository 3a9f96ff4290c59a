import assert from 'node:assert/strict';
import { Agent, request, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { after, describe, test } from 'node:test';
import { startNamedBackend } from '../../test/helpers/loopback-http.js';
import {
  headerOf,
  rawExchange,
  readMessages,
  startCountingBackend,
  type RawMessage,
} from '../../test/helpers/raw-http.js';
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

/** A request the backend must never see: hidden in the body of another one by ambiguous framing. */
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n';
const chunk = (data: string): string => `${Buffer.byteLength(data).toString(16)}\r\n${data}\r\n`;
const post = (head: string, body: string): string => `POST /first HTTP/1.1\r\nhost: x\r\n${head}\r\n${body}`;

/** The known request-smuggling forms, each with a smuggled request behind or inside it. */
const AMBIGUOUS: Record<string, string> = {
  'CL.TE': post('content-length: 42\r\ntransfer-encoding: chunked\r\n', `0\r\n\r\n${SMUGGLED}`),
  'TE.CL': post('transfer-encoding: chunked\r\ncontent-length: 4\r\n', `${chunk(SMUGGLED)}0\r\n\r\n`),
  'TE.TE xchunked': post('transfer-encoding: xchunked\r\n', `${chunk(SMUGGLED)}0\r\n\r\n`),
  'TE.TE chunked, identity': post('transfer-encoding: chunked, identity\r\n', `0\r\n\r\n${SMUGGLED}`),
  'TE.TE identity, chunked': post('transfer-encoding: identity, chunked\r\n', `0\r\n\r\n${SMUGGLED}`),
  'TE.TE Chunked': post('transfer-encoding: Chunked\r\n', `0\r\n\r\n${SMUGGLED}`),
  'TE.TE chunked then x': post(
    'transfer-encoding: chunked\r\nTransfer-encoding: x\r\n',
    `0\r\n\r\n${SMUGGLED}`,
  ),
  'TE.TE x then chunked': post(
    'transfer-encoding: x\r\nTransfer-encoding: chunked\r\n',
    `0\r\n\r\n${SMUGGLED}`,
  ),
  'TE.TE chunked twice': post(
    'transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n',
    `0\r\n\r\n${SMUGGLED}`,
  ),
  'TE.TE space before colon': post('transfer-encoding : chunked\r\n', `0\r\n\r\n${SMUGGLED}`),
  'TE.TE vertical tab': post('transfer-encoding:\x0bchunked\r\n', `0\r\n\r\n${SMUGGLED}`),
  'TE.TE bare LF before': post('x: y\ntransfer-encoding: chunked\r\n', `0\r\n\r\n${SMUGGLED}`),
  'TE in HTTP/1.0': `POST /first HTTP/1.0\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
  'CL.CL differing': post('content-length: 0\r\ncontent-length: 42\r\n', SMUGGLED),
  'CL.CL equal': post('content-length: 42\r\ncontent-length: 42\r\n', SMUGGLED),
  'CL list': post('content-length: 42, 0\r\n', SMUGGLED),
  'CL negative': post('content-length: -1\r\n', SMUGGLED),
  'CL signed': post('content-length: +42\r\n', SMUGGLED),
  'CL hexadecimal': post('content-length: 0x2a\r\n', SMUGGLED),
  'CL empty': post('content-length: \r\n', SMUGGLED),
  'obs-fold of Transfer-Encoding': post('transfer-encoding: x\r\n chunked\r\n', `0\r\n\r\n${SMUGGLED}`),
  'obs-fold of Content-Length': post('content-length: 0\r\n\t42\r\n', SMUGGLED),
  'obs-fold of another header': `GET /first HTTP/1.1\r\nhost: x\r\nx-a: a\r\n b\r\n\r\n${SMUGGLED}`,
  'a header line starting with a space': post(' transfer-encoding: chunked\r\n', `0\r\n\r\n${SMUGGLED}`),
  'two Host headers': `GET /first HTTP/1.1\r\nhost: x\r\nhost: y\r\n\r\n${SMUGGLED}`,
  'no Host header': `GET /first HTTP/1.1\r\n\r\n${SMUGGLED}`,
};

const statusOf = (response: RawMessage): number => Number(response.line.split(' ')[1]);

describe('HTTP balancer: no request smuggling', () => {
  const closers: (() => void)[] = [];
  const balancers: HttpBalancer[] = [];
  after(async () => {
    for (const lb of balancers) await lb.close();
    for (const close of closers) close();
  });

  /** A balancer in front of one counting backend that answers with `answer` (default: echo). */
  const meshOverCountingBackend = async (
    answer?: (request: RawMessage) => string,
  ): Promise<{ lb: HttpBalancer; requests: RawMessage[] }> => {
    const backend = await startCountingBackend('counting', answer);
    closers.push(backend.close);
    const lb = await createHttpBalancer({
      host: '127.0.0.1',
      port: 0,
      log: silentLogger(),
      connectTimeoutMs,
    });
    balancers.push(lb);
    lb.setBackends([backend.backend]);
    return { lb, requests: backend.requests };
  };

  /** The responses on one raw connection that the mesh must close; asserts all bytes are whole responses. */
  const exchange = async (port: number, bytes: string): Promise<RawMessage[]> => {
    const { messages, rest } = readMessages(await rawExchange(port, bytes), true);
    assert.equal(rest, '', 'nothing but whole responses on the connection');
    return messages;
  };

  for (const [form, bytes] of Object.entries(AMBIGUOUS)) {
    test(`${form}: 400, connection closed, nothing forwarded`, async () => {
      const { lb, requests } = await meshOverCountingBackend();
      const responses = await exchange(lb.port, bytes);
      assert.deepEqual(responses.map(statusOf), [400]);
      // Had anything of it been forwarded, it would be logged before this request's answer came back.
      const after = await exchange(lb.port, 'GET /after HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
      assert.deepEqual(after.map(statusOf), [200]);
      assert.deepEqual(
        requests.map((r) => r.line),
        ['GET /after HTTP/1.1'],
      );
    });
  }

  test('chunked and Content-Length bodies go through whole, each as one request, framed by the mesh', async () => {
    const { lb, requests } = await meshOverCountingBackend();
    const body = `a body that looks like a request: ${SMUGGLED}`;
    const chunked = await exchange(
      lb.port,
      `POST /chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n${chunk(body.slice(0, 10))}${chunk(body.slice(10))}0\r\n\r\n`,
    );
    const sized = await exchange(
      lb.port,
      `POST /sized HTTP/1.1\r\nhost: x\r\ncontent-length: 0${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    // Node's client sends a GET's body unframed unless told: the replica would read it as a request.
    const getWithBody = await exchange(
      lb.port,
      `GET /get HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n${chunk(SMUGGLED)}0\r\n\r\n`,
    );
    assert.deepEqual(
      [...chunked, ...sized, ...getWithBody].map((r) => [statusOf(r), r.body]),
      [
        [200, body],
        [200, body],
        [200, SMUGGLED],
      ],
    );
    assert.deepEqual(
      requests.map((r) => [r.line, r.body, headerOf(r, 'content-length'), headerOf(r, 'transfer-encoding')]),
      [
        ['POST /chunked HTTP/1.1', body, [], ['chunked']],
        ['POST /sized HTTP/1.1', body, [String(Buffer.byteLength(body))], []],
        ['GET /get HTTP/1.1', SMUGGLED, [], ['chunked']],
      ],
    );
  });

  test('pipelined requests each get their own answer, in order', async () => {
    const { lb, requests } = await meshOverCountingBackend();
    const responses = await exchange(
      lb.port,
      'GET /1 HTTP/1.1\r\nhost: x\r\n\r\n' +
        'POST /2 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\ntwo' +
        `POST /3 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n${chunk('three')}0\r\n\r\n` +
        'POST /4 HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nconnection: close\r\n\r\nfour',
    );
    assert.deepEqual(
      responses.map((r) => [statusOf(r), r.body]),
      [
        [200, ''],
        [200, 'two'],
        [200, 'three'],
        [200, 'four'],
      ],
    );
    assert.deepEqual(requests.map((r) => r.line).sort(), [
      'GET /1 HTTP/1.1',
      'POST /2 HTTP/1.1',
      'POST /3 HTTP/1.1',
      'POST /4 HTTP/1.1',
    ]);
  });

  test('a refused request after a good one on the same connection: the good one answered, the rest never forwarded', async () => {
    const { lb, requests } = await meshOverCountingBackend();
    const responses = await exchange(
      lb.port,
      'GET /good HTTP/1.1\r\nhost: x\r\n\r\n' +
        post('transfer-encoding: x\r\nTransfer-encoding: chunked\r\n', `0\r\n\r\n${SMUGGLED}`) +
        'GET /after HTTP/1.1\r\nhost: x\r\n\r\n',
    );
    assert.equal(responses.at(-1) && statusOf(responses.at(-1) as RawMessage), 400);
    await exchange(lb.port, 'GET /probe HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    assert.deepEqual(
      requests.map((r) => r.line).filter((l) => l !== 'GET /good HTTP/1.1'),
      ['GET /probe HTTP/1.1'],
    );
  });

  test('a chunked body that turns malformed mid-way: 400, closed, the replica never gets a whole request', async () => {
    const { lb, requests } = await meshOverCountingBackend();
    const responses = await exchange(
      lb.port,
      `POST /first HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n${chunk('abc')}zz\r\n${SMUGGLED}\r\n0\r\n\r\n`,
    );
    assert.deepEqual(responses.map(statusOf), [400]);
    await exchange(lb.port, 'GET /after HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    assert.deepEqual(
      requests.map((r) => r.line),
      ['GET /after HTTP/1.1'],
    );
  });

  test("the forwarding headers are the mesh's own: whatever the client sent is replaced", async () => {
    const { lb, requests } = await meshOverCountingBackend();
    const spoofed =
      'x-forwarded-for: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\nx_forwarded_for: 8.8.8.8\r\n' +
      'x-forwarded-proto: https\r\nx-forwarded-host: evil.example\r\nforwarded: for=6.6.6.6;proto=https\r\n';
    await exchange(
      lb.port,
      `GET /plain HTTP/1.1\r\nhost: shop.example\r\n${spoofed}connection: close\r\n\r\n`,
    );
    // An upgrade is relayed byte for byte, except for these.
    await rawExchange(
      lb.port,
      `GET /ws HTTP/1.1\r\nhost: shop.example\r\nconnection: upgrade\r\nupgrade: echo\r\n${spoofed}\r\n`,
    ).catch(() => 'the counting backend keeps the upgraded connection open');
    const forwarding = (r: RawMessage): unknown[] =>
      ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x_forwarded_for'].map((n) =>
        headerOf(r, n),
      );
    const expected = [['127.0.0.1'], ['http'], ['shop.example'], [], []];
    assert.deepEqual(
      requests.map((r) => [r.line, ...forwarding(r)]),
      [
        ['GET /plain HTTP/1.1', ...expected],
        ['GET /ws HTTP/1.1', ...expected],
      ],
    );
  });

  test('an answer with both Transfer-Encoding and Content-Length: 502 and closed, the pooled connection dropped', async () => {
    let answered = 0;
    const { lb } = await meshOverCountingBackend((request) =>
      answered++ === 0
        ? `HTTP/1.1 200 OK\r\ncontent-length: 50\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled`
        : `HTTP/1.1 200 OK\r\ncontent-length: ${request.line.length}\r\n\r\n${request.line}`,
    );
    const responses = await exchange(lb.port, 'GET /first HTTP/1.1\r\nhost: x\r\n\r\n');
    assert.deepEqual(responses.map(statusOf), [502]);
    const next = await exchange(lb.port, 'GET /next HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    assert.deepEqual(
      next.map((r) => [statusOf(r), r.body]),
      [[200, 'GET /next HTTP/1.1']],
    );
  });

  test('bytes after an answer never become the answer to the next request', async () => {
    const { lb } = await meshOverCountingBackend(
      (request) =>
        `HTTP/1.1 200 OK\r\ncontent-length: ${request.line.length}\r\n\r\n${request.line}` +
        'HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled',
    );
    const responses = await exchange(
      lb.port,
      'GET /1 HTTP/1.1\r\nhost: x\r\n\r\nGET /2 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n',
    );
    const again = await exchange(lb.port, 'GET /3 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    assert.deepEqual(
      [...responses, ...again].map((r) => r.body),
      ['GET /1 HTTP/1.1', 'GET /2 HTTP/1.1', 'GET /3 HTTP/1.1'],
    );
  });

  for (const [what, answer] of Object.entries({
    'a status line that is not HTTP': 'HTTPX 200\r\n\r\n',
    'a status of 000': 'HTTP/1.1 000 OK\r\ncontent-length: 0\r\n\r\n',
    'a 101 to a request that asked for no upgrade': 'HTTP/1.1 101 Switching Protocols\r\n\r\n',
    'a control character in the reason phrase': 'HTTP/1.1 200 O\x01K\r\ncontent-length: 0\r\n\r\n',
    'two Content-Length headers': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 8\r\n\r\nsmuggled',
    'obs-fold': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: a\r\n b\r\n\r\nok',
  })) {
    test(`an answer with ${what}: 502, never retried, connection closed`, async () => {
      const { lb, requests } = await meshOverCountingBackend(() => answer);
      const responses = await exchange(lb.port, 'GET /1 HTTP/1.1\r\nhost: x\r\n\r\n');
      assert.deepEqual(responses.map(statusOf), [502]);
      assert.equal(requests.length, 1);
    });
  }

  test('an answer that breaks its chunked framing mid-way: the client connection is closed mid-answer', async () => {
    const { lb } = await meshOverCountingBackend(
      () => 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nHTTP/1.1 200 OK\r\n\r\n',
    );
    const { messages, rest } = readMessages(await rawExchange(lb.port, 'GET /1 HTTP/1.1\r\nhost: x\r\n\r\n'));
    assert.deepEqual(messages, [], 'no complete answer');
    assert.match(rest, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\n3\r\nabc\r\n$/);
  });
});
