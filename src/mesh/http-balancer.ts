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

/** One kept-alive connection pool per backend, replaced when the backend's address changes. */
class BackendPools {
  private readonly pools = new Map<string, { key: string; agent: Agent }>();

  for(backend: MeshBackend): Agent {
    const key = `${backend.host}:${backend.port}`;
    const pool = this.pools.get(backend.id);
    if (pool && pool.key === key) return pool.agent;
    pool?.agent.destroy();
    const agent = new Agent({ keepAlive: true, keepAliveMsecs: 1000, maxFreeSockets: 64 });
    this.pools.set(backend.id, { key, agent });
    return agent;
  }

  retire(id: string): void {
    this.pools.get(id)?.agent.destroy();
    this.pools.delete(id);
  }

  ids(): string[] {
    return [...this.pools.keys()];
  }

  destroyAll(): void {
    for (const { agent } of this.pools.values()) agent.destroy();
    this.pools.clear();
  }
}

/** What the request path, the upgrade path and the balancer's life cycle share. */
interface HttpBalancerParts {
  rotation: BackendRotation;
  inFlight: InFlight;
  pools: BackendPools;
  /** Upgraded (WebSocket) connections to replicas, closed with the balancer. */
  upgraded: Set<Socket>;
  connectTimeoutMs: number;
  log: TcpBalancerOptions['log'];
}

function forwardedHeaders(req: IncomingMessage): OutgoingHttpHeaders {
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
}

/** Streams a replica's answer to the client; the backend's request ends with the answer. */
function relayAnswer(
  parts: HttpBalancerParts,
  backendId: string,
  answer: IncomingMessage,
  res: ServerResponse,
): void {
  const headers: OutgoingHttpHeaders = { ...answer.headers };
  for (const name of HOP_BY_HOP) delete headers[name];
  res.writeHead(answer.statusCode ?? 502, answer.statusMessage, headers);
  answer.pipe(res);
  const done = (): void => parts.inFlight.end(backendId);
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
}

/** One attempt: 'answered' once the replica's response is on its way to the client. */
function attemptRequest(
  parts: HttpBalancerParts,
  backend: MeshBackend,
  exchange: { req: IncomingMessage; res: ServerResponse; body: boolean },
): Promise<'answered' | 'failed'> {
  const { req, res } = exchange;
  return new Promise((resolve) => {
    parts.inFlight.begin(backend.id);
    let settled = false;
    const settle = (outcome: 'answered' | 'failed'): void => {
      if (settled) return;
      settled = true;
      if (outcome === 'failed') parts.inFlight.end(backend.id);
      resolve(outcome);
    };
    const upstream = httpRequest({
      host: backend.host,
      port: backend.port,
      method: req.method,
      path: req.url,
      headers: forwardedHeaders(req),
      agent: parts.pools.for(backend),
      timeout: 0,
    });
    // Bounds the connect only: cleared as soon as the socket is connected (or reused from the pool).
    const timer = setTimeout(() => upstream.destroy(new Error('connect timeout')), parts.connectTimeoutMs);
    upstream.on('socket', (socket: Socket) => {
      if (!socket.connecting) clearTimeout(timer);
      else socket.once('connect', () => clearTimeout(timer));
    });
    upstream.on('response', (answer) => {
      clearTimeout(timer);
      parts.rotation.succeeded(backend.id);
      settle('answered');
      relayAnswer(parts, backend.id, answer, res);
    });
    upstream.on('error', (error) => {
      clearTimeout(timer);
      if (!settled) {
        parts.log.debug({ backend: backend.id, err: error }, 'replica did not answer; trying the next one');
        parts.rotation.failed(backend.id);
      }
      settle('failed');
    });
    if (exchange.body) req.pipe(upstream);
    else upstream.end();
  });
}

async function handleRequest(
  parts: HttpBalancerParts,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const list = parts.rotation.order();
  if (list.length === 0) {
    res.writeHead(503, { 'content-type': 'text/plain', connection: 'close' });
    res.end('no healthy replica\n');
    return;
  }
  const body =
    req.headers['transfer-encoding'] !== undefined ||
    (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
  // Only what can be sent twice without harm is: an idempotent method without a body.
  const retryable = IDEMPOTENT.has(req.method ?? '') && !body;
  for (const backend of retryable ? list : list.slice(0, 1)) {
    if (res.destroyed) return;
    if ((await attemptRequest(parts, backend, { req, res, body })) === 'answered') return;
  }
  if (!res.headersSent) {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end('no replica answered\n');
  } else res.destroy();
}

/** Relays an upgrade (WebSocket) byte for byte to one replica: the request line and headers, then both ways. */
function relayUpgrade(parts: HttpBalancerParts, req: IncomingMessage, client: Duplex, head: Buffer): void {
  const backend = parts.rotation.order()[0];
  if (!backend) {
    client.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  parts.inFlight.begin(backend.id);
  const upstream = connect({ host: backend.host, port: backend.port });
  parts.upgraded.add(upstream);
  upstream.once('close', () => {
    parts.upgraded.delete(upstream);
    parts.inFlight.end(backend.id);
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
}

export async function createHttpBalancer(options: TcpBalancerOptions): Promise<HttpBalancer> {
  const rotation = new BackendRotation();
  const pools = new BackendPools();
  const parts: HttpBalancerParts = {
    rotation,
    pools,
    // A backend that left the table: its idle pooled connections go once it is done.
    inFlight: new InFlight((id) => {
      if (!rotation.has(id)) pools.retire(id);
    }),
    upgraded: new Set<Socket>(),
    connectTimeoutMs: options.connectTimeoutMs ?? 1000,
    log: options.log,
  };
  const server: Server = createServer({ keepAlive: true }, (req, res) => {
    void handleRequest(parts, req, res).catch((error: unknown) => {
      options.log.warn({ err: error }, 'mesh request failed');
      res.destroy();
    });
  });
  server.on('upgrade', (req: IncomingMessage, client: Duplex, head: Buffer) =>
    relayUpgrade(parts, req, client, head),
  );
  server.on('clientError', (_error, socket) => socket.destroy());
  const port = await listenOn(server, options.host, options.port);

  return {
    host: options.host,
    port,
    setBackends(list) {
      rotation.set(list);
      for (const id of pools.ids()) if (!rotation.has(id) && !parts.inFlight.has(id)) pools.retire(id);
    },
    activeConnections: (backendId) => parts.inFlight.count(backendId),
    drained: (backendId, timeoutMs) => parts.inFlight.drained(backendId, timeoutMs),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const socket of parts.upgraded) socket.destroy();
      pools.destroyAll();
      await closed;
    },
  };
}
