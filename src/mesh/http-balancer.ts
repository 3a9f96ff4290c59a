import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { MeshBackend } from '../api/types.js';
import { BackendRotation } from './backend-rotation.js';
import { InFlight, listenOn } from './in-flight.js';
import type { TcpBalancer, TcpBalancerOptions } from './tcp-balancer.js';

/**
 * The HTTP-aware data path of the routing mesh (`appProtocol: http`): clients keep their
 * connections to the mesh, and every request goes round-robin to the next healthy replica over a
 * pool of kept-alive connections to it. So a kept-alive client is balanced per request, and
 * taking a replica out (drain) never touches a client connection: its requests in flight finish,
 * the next ones go elsewhere, and its pooled connections are closed once it has none in flight.
 *
 * A request that a replica refuses, or closes without any answer, is sent to the next replica
 * when that is safe: an idempotent method (RFC 9110) without a body. Anything else gets 502.
 * No replica at all: 503. WebSocket and other upgrades are relayed byte for byte to one replica.
 */

/** The same life cycle as the TCP balancer: the node mesh treats both alike. */
export type HttpBalancer = TcpBalancer;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection, not the message. */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];

export async function createHttpBalancer(options: TcpBalancerOptions): Promise<HttpBalancer> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 1000;
  const rotation = new BackendRotation();
  const pools = new Map<string, { key: string; agent: Agent }>();
  const retire = (id: string): void => {
    pools.get(id)?.agent.destroy();
    pools.delete(id);
  };
  // A backend that left the table: its idle pooled connections go once it is done.
  const inFlight = new InFlight((id) => {
    if (!rotation.has(id)) retire(id);
  });
  const upgraded = new Set<Socket>();

  const poolFor = (backend: MeshBackend): Agent => {
    const key = `${backend.host}:${backend.port}`;
    const pool = pools.get(backend.id);
    if (pool && pool.key === key) return pool.agent;
    pool?.agent.destroy();
    const agent = new Agent({ keepAlive: true, keepAliveMsecs: 1000, maxFreeSockets: 64 });
    pools.set(backend.id, { key, agent });
    return agent;
  };

  const forwardedHeaders = (req: IncomingMessage): OutgoingHttpHeaders => {
    const headers: OutgoingHttpHeaders = { ...req.headers };
    const listed = String(req.headers.connection ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase());
    for (const name of [...HOP_BY_HOP, ...listed]) delete headers[name];
    const client = req.socket.remoteAddress ?? '';
    const prior = req.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = prior ? `${String(prior)}, ${client}` : client;
    headers['x-forwarded-proto'] ??= 'http';
    if (req.headers.host !== undefined) headers['x-forwarded-host'] ??= req.headers.host;
    return headers;
  };

  /** One attempt: 'answered' once the replica's response is on its way to the client. */
  const attempt = (
    backend: MeshBackend,
    req: IncomingMessage,
    res: ServerResponse,
    body: boolean,
  ): Promise<'answered' | 'failed'> =>
    new Promise((resolve) => {
      inFlight.begin(backend.id);
      let settled = false;
      const settle = (outcome: 'answered' | 'failed'): void => {
        if (settled) return;
        settled = true;
        if (outcome === 'failed') inFlight.end(backend.id);
        resolve(outcome);
      };
      const upstream = httpRequest({
        host: backend.host,
        port: backend.port,
        method: req.method,
        path: req.url,
        headers: forwardedHeaders(req),
        agent: poolFor(backend),
        timeout: 0,
      });
      // Bounds the connect only: cleared as soon as the socket is connected (or reused from the pool).
      const timer = setTimeout(() => upstream.destroy(new Error('connect timeout')), connectTimeoutMs);
      upstream.on('socket', (socket: Socket) => {
        if (!socket.connecting) clearTimeout(timer);
        else socket.once('connect', () => clearTimeout(timer));
      });
      upstream.on('response', (answer) => {
        clearTimeout(timer);
        rotation.succeeded(backend.id);
        settle('answered');
        const headers: OutgoingHttpHeaders = { ...answer.headers };
        for (const name of HOP_BY_HOP) delete headers[name];
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, headers);
        answer.pipe(res);
        const done = (): void => inFlight.end(backend.id);
        answer.once('end', done);
        answer.once('error', () => res.destroy());
        res.once('close', () => {
          if (!answer.complete) answer.destroy();
        });
        answer.once('close', () => {
          if (!answer.complete) {
            // The replica went away in the middle of the answer: the client must see it.
            res.destroy();
            done();
          }
        });
      });
      upstream.on('error', (error) => {
        clearTimeout(timer);
        if (!settled) {
          options.log.debug(
            { backend: backend.id, err: error },
            'replica did not answer; trying the next one',
          );
          rotation.failed(backend.id);
        }
        settle('failed');
      });
      if (body) req.pipe(upstream);
      else upstream.end();
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const list = rotation.order();
    if (list.length === 0) {
      res.writeHead(503, { 'content-type': 'text/plain', connection: 'close' });
      res.end('no healthy replica\n');
      return;
    }
    const hasBody =
      req.headers['transfer-encoding'] !== undefined ||
      (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
    // Only what can be sent twice without harm is: an idempotent method without a body.
    const retryable = IDEMPOTENT.has(req.method ?? '') && !hasBody;
    for (const backend of retryable ? list : list.slice(0, 1)) {
      if (res.destroyed) return;
      if ((await attempt(backend, req, res, hasBody)) === 'answered') return;
    }
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('no replica answered\n');
    } else res.destroy();
  };

  const upgrade = (req: IncomingMessage, client: Duplex, head: Buffer): void => {
    const backend = rotation.order()[0];
    if (!backend) {
      client.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    inFlight.begin(backend.id);
    const upstream = connect({ host: backend.host, port: backend.port });
    upgraded.add(upstream);
    upstream.once('close', () => {
      upgraded.delete(upstream);
      inFlight.end(backend.id);
      client.destroy();
    });
    client.on('error', () => upstream.destroy());
    client.once('close', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    upstream.once('connect', () => {
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2)
        lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
  };

  const server: Server = createServer({ keepAlive: true }, (req, res) => {
    void handle(req, res).catch((error: unknown) => {
      options.log.warn({ err: error }, 'mesh request failed');
      res.destroy();
    });
  });
  server.on('upgrade', upgrade);
  server.on('clientError', (_error, socket) => socket.destroy());
  const port = await listenOn(server, options.host, options.port);

  return {
    host: options.host,
    port,
    setBackends(list) {
      rotation.set(list);
      for (const id of [...pools.keys()]) if (!rotation.has(id) && !inFlight.has(id)) retire(id);
    },
    activeConnections: (backendId) => inFlight.count(backendId),
    drained: (backendId, timeoutMs) => inFlight.drained(backendId, timeoutMs),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const socket of upgraded) socket.destroy();
      for (const { agent } of pools.values()) agent.destroy();
      pools.clear();
      await closed;
    },
  };
}
