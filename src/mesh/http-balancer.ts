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
import { requestFraming, type RequestFraming } from './http-framing.js';
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
 *
 * It is no request-smuggling vector: a request whose end is ambiguous (http-framing.ts), or that
 * Node's parser refuses, is answered 400 and its connection closed, and nothing after it on that
 * connection is forwarded; a replica's answer that Node's parser refuses is a 502 (never retried),
 * and one that breaks off mid-way closes the client connection. Forwarded requests carry framing
 * the mesh writes itself, and forwarding headers the mesh sets itself.
 */

/** The same life cycle as the TCP balancer: the node mesh treats both alike. */
export type HttpBalancer = TcpBalancer;

type ForwardedFraming = Exclude<RequestFraming, { kind: 'ambiguous' }>;

/** How one attempt at a replica ended; only 'failed' (no answer at all) may go to the next one. */
type AttemptOutcome = 'answered' | 'failed' | 'malformed' | 'client-gone';

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

/** Headers only the mesh may set: a client's own would pass as the mesh's word about the client. */
const FORWARDING = new Set(['forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);

/** `X_Forwarded_For` reaches CGI-style applications as the same variable as `X-Forwarded-For`. */
function isForwardingHeader(name: string): boolean {
  return FORWARDING.has(name.toLowerCase().replaceAll('_', '-'));
}

/** What the mesh says about the client: its socket address, plain HTTP, the Host it asked for. */
function forwardingHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {
    'x-forwarded-for': req.socket.remoteAddress ?? '',
    'x-forwarded-proto': 'http',
  };
  if (req.headers.host !== undefined) headers['x-forwarded-host'] = req.headers.host;
  return headers;
}

function connectionListed(headers: IncomingMessage['headers']): string[] {
  return String(headers.connection ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase());
}

/** The request's end-to-end headers, with the framing and the forwarding headers the mesh writes. */
function forwardedHeaders(req: IncomingMessage, framing: ForwardedFraming): OutgoingHttpHeaders {
  // `Connection: host` must not make the replica see another host than the mesh did.
  const dropped = new Set([...HOP_BY_HOP, 'content-length', ...connectionListed(req.headers)]);
  dropped.delete('host');
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers))
    if (value !== undefined && !dropped.has(name) && !isForwardingHeader(name)) headers[name] = value;
  // Always explicit: Node's client sends the body of a GET, HEAD, DELETE or OPTIONS without any
  // framing unless told, and the replica would read that body as the next request.
  if (framing.kind === 'length') headers['content-length'] = String(framing.length);
  if (framing.kind === 'chunked') headers['transfer-encoding'] = 'chunked';
  return { ...headers, ...forwardingHeaders(req) };
}

/**
 * Streams a replica's answer to the client; the backend's request ends with the answer. False,
 * and nothing sent, for an answer the mesh cannot pass on though Node's parser let it through.
 */
function relayAnswer(
  parts: HttpBalancerParts,
  backendId: string,
  answer: IncomingMessage,
  res: ServerResponse,
): boolean {
  const headers: OutgoingHttpHeaders = {};
  const dropped = new Set([...HOP_BY_HOP, ...connectionListed(answer.headers)]);
  for (const [name, value] of Object.entries(answer.headers))
    if (value !== undefined && !dropped.has(name)) headers[name] = value;
  const status = answer.statusCode ?? 0;
  // A final status outside 200-599 (a 101 to a request that asked for no upgrade, a 000) is no
  // answer a client can take: Node's client passes it on as a response.
  if (status < 200 || status > 599) return false;
  try {
    res.writeHead(status, answer.statusMessage, headers);
  } catch (error) {
    parts.log.debug({ backend: backendId, err: error }, 'replica answer cannot be relayed');
    return false;
  }
  answer.pipe(res);
  const done = (): void => parts.inFlight.end(backendId);
  answer.once('end', done);
  answer.once('error', () => res.destroy());
  res.once('close', () => {
    if (!answer.complete) answer.destroy();
  });
  answer.once('close', () => {
    if (!answer.complete) {
      // The replica went away (or broke its framing) in the middle of the answer: the client must
      // see it, and its connection must not carry on from the middle of a message.
      res.destroy();
      done();
    }
  });
  return true;
}

/** A parse error of llhttp: the replica answered, but not in HTTP the mesh can pass on. */
const isMalformedAnswer = (error: Error): boolean =>
  (error as NodeJS.ErrnoException).code?.startsWith('HPE_') ?? false;

/** One attempt: 'answered' once the replica's response is on its way to the client. */
function attemptRequest(
  parts: HttpBalancerParts,
  backend: MeshBackend,
  exchange: { req: IncomingMessage; res: ServerResponse; framing: ForwardedFraming; body: boolean },
): Promise<AttemptOutcome> {
  const { req, res } = exchange;
  return new Promise((resolve) => {
    parts.inFlight.begin(backend.id);
    let settled = false;
    let clientGone = false;
    const settle = (outcome: AttemptOutcome): void => {
      if (settled) return;
      settled = true;
      if (outcome !== 'answered') parts.inFlight.end(backend.id);
      resolve(outcome);
    };
    const upstream = httpRequest({
      host: backend.host,
      port: backend.port,
      method: req.method,
      path: req.url,
      headers: forwardedHeaders(req, exchange.framing),
      agent: parts.pools.for(backend),
      timeout: 0,
      // Explicit, so that NODE_OPTIONS=--insecure-http-parser cannot loosen how answers are read.
      insecureHTTPParser: false,
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
      if (relayAnswer(parts, backend.id, answer, res)) settle('answered');
      else {
        upstream.destroy();
        settle('malformed');
      }
    });
    upstream.on('error', (error) => {
      clearTimeout(timer);
      if (settled) return;
      if (clientGone) return settle('client-gone');
      if (isMalformedAnswer(error)) {
        parts.log.debug({ backend: backend.id, err: error }, 'replica answered malformed HTTP');
        return settle('malformed');
      }
      parts.log.debug({ backend: backend.id, err: error }, 'replica did not answer; trying the next one');
      parts.rotation.failed(backend.id);
      settle('failed');
    });
    // A body the client breaks off (or that Node's parser refuses mid-way) must not reach the
    // replica as a complete request: its connection goes with it, never back to the pool.
    const abandon = (): void => {
      if (req.complete) return;
      clientGone = true;
      upstream.destroy();
    };
    req.once('error', abandon);
    req.once('close', abandon);
    if (exchange.body) req.pipe(upstream);
    else upstream.end();
  });
}

async function handleRequest(
  parts: HttpBalancerParts,
  req: IncomingMessage,
  res: ServerResponse,
  framing: ForwardedFraming,
): Promise<void> {
  const list = parts.rotation.order();
  if (list.length === 0) {
    res.writeHead(503, { 'content-type': 'text/plain', connection: 'close' });
    res.end('no healthy replica\n');
    return;
  }
  const body = framing.kind === 'chunked' || (framing.kind === 'length' && framing.length > 0);
  // Only what can be sent twice without harm is: an idempotent method without a body.
  const retryable = IDEMPOTENT.has(req.method ?? '') && !body;
  for (const backend of retryable ? list : list.slice(0, 1)) {
    if (res.destroyed) return;
    const outcome = await attemptRequest(parts, backend, { req, res, framing, body });
    if (outcome === 'answered') return;
    if (outcome !== 'failed') break;
  }
  if (!res.headersSent && !res.destroyed) {
    // The reason spelled out: a replica's that Node refused may be left on `res`.
    res.writeHead(502, 'Bad Gateway', { 'content-type': 'text/plain', connection: 'close' });
    res.end('no replica answered\n');
  } else res.destroy();
}

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n';

/** The head of a request the mesh refuses, on a connection it closes: nothing after it is read. */
function badRequest(reason: string): string {
  const body = `bad request: ${reason}\n`;
  return `${BAD_REQUEST}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** Relays an upgrade (WebSocket) byte for byte to one replica: the request line and headers, then both ways. */
function relayUpgrade(parts: HttpBalancerParts, req: IncomingMessage, client: Duplex, head: Buffer): void {
  const framing = requestFraming(req.httpVersion, req.rawHeaders);
  if (framing.kind === 'ambiguous') {
    client.end(badRequest(framing.reason));
    return;
  }
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
  const forwarding = forwardingHeaders(req);
  upstream.once('connect', () => {
    const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i] ?? '';
      if (!isForwardingHeader(name)) lines.push(`${name}: ${req.rawHeaders[i + 1]}`);
    }
    for (const [name, value] of Object.entries(forwarding)) lines.push(`${name}: ${value}`);
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
}

/**
 * The client connections' side of refusing: which connection had a request refused (nothing after
 * it is forwarded), and whether a 400 can still be written without cutting into another answer.
 */
class ClientConnections {
  private readonly open = new WeakMap<Duplex, Set<ServerResponse>>();
  private readonly refused = new WeakSet<Duplex>();

  track(socket: Duplex, res: ServerResponse): void {
    const responses = this.open.get(socket) ?? new Set<ServerResponse>();
    this.open.set(socket, responses);
    responses.add(res);
    res.once('close', () => responses.delete(res));
  }

  refuse(socket: Duplex): void {
    this.refused.add(socket);
  }

  isRefused(socket: Duplex): boolean {
    return this.refused.has(socket);
  }

  /** An answer is partly written: any other bytes now would land inside it. */
  midAnswer(socket: Duplex): boolean {
    for (const res of this.open.get(socket) ?? []) if (res.headersSent && !res.writableFinished) return true;
    return false;
  }
}

/** Node's parser refused the request (or what follows it): 400 when that fits in the stream, and close. */
function refuseUnparsable(connections: ClientConnections, error: Error, socket: Duplex): void {
  if (connections.isRefused(socket)) {
    // A 400 is already on its way: let it out, then close.
    socket.end();
    return;
  }
  connections.refuse(socket);
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (!socket.writable || code === 'ECONNRESET' || connections.midAnswer(socket)) {
    socket.destroy();
    return;
  }
  socket.end(badRequest(code === 'HPE_HEADER_OVERFLOW' ? 'request head too large' : 'malformed request'));
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
  const connections = new ClientConnections();
  // A strict parser whatever NODE_OPTIONS say. Host is checked by requestFraming: Node's own
  // check answers 400 but then forwards what the client pipelined after it.
  const strict = {
    keepAlive: true,
    insecureHTTPParser: false,
    requireHostHeader: false,
    joinDuplicateHeaders: false,
  };
  const server: Server = createServer(strict, (req, res) => {
    // Pipelined after a refused request: never forwarded; the connection closes after the 400.
    if (connections.isRefused(req.socket)) return;
    connections.track(req.socket, res);
    const framing = requestFraming(req.httpVersion, req.rawHeaders);
    if (framing.kind === 'ambiguous') {
      connections.refuse(req.socket);
      options.log.debug({ reason: framing.reason }, 'ambiguous request refused');
      res.writeHead(400, { 'content-type': 'text/plain', connection: 'close' });
      res.end(`bad request: ${framing.reason}\n`);
      return;
    }
    void handleRequest(parts, req, res, framing).catch((error: unknown) => {
      options.log.warn({ err: error }, 'mesh request failed');
      res.destroy();
    });
  });
  server.on('upgrade', (req: IncomingMessage, client: Duplex, head: Buffer) =>
    relayUpgrade(parts, req, client, head),
  );
  server.on('clientError', (error: Error, socket: Duplex) => refuseUnparsable(connections, error, socket));
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
