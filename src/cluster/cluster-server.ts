/**
 * The operator's cluster endpoint (`berth run --cluster-listen HOST:PORT`): HTTPS with the
 * operator's certificate, issued by the cluster CA. Client certificates are requested on every
 * connection and verified against the CA; the routes that act need one:
 *
 *   GET    /v1/ca                 the CA certificate (public; the agent pins its fingerprint)
 *   POST   /v1/join               { secret, node, publicKeyPem } -> { certificatePem, caCertificatePem }
 *   POST   /v1/renew              node certificate + { publicKeyPem } -> its next certificate
 *   GET    /v1/connect            WebSocket upgrade; node certificate: the agent's persistent connection
 *   GET    /v1/nodes              admin certificate: the node list
 *   POST   /v1/nodes/:name/drain | /activate, DELETE /v1/nodes/:name
 *   GET    /v1/observed           admin certificate: every node's snapshot (for `berth status`)
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { BerthError, asBerthError, type WireError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { observeCluster } from '../api/observe-cluster.js';
import { identityOf } from './certificates.js';
import { readJoinSecret, type ClusterIdentity } from './cluster-identity.js';
import { secretMatches } from './join-token.js';
import type { NodeRegistry } from './node-registry.js';
import { CLUSTER_PATHS, HEARTBEAT_INTERVAL_MS, NODE_DOWN_AFTER_MS } from './rpc-protocol.js';

export interface ClusterServer {
  /** Resolves with the address it listens on, e.g. `https://127.0.0.1:7946`. */
  listen(options: { host: string; port: number }): Promise<string>;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024;

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

function sendError(response: ServerResponse, error: BerthError): void {
  send(response, error.httpStatus, error.toWire());
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new BerthError('ERR_BAD_REQUEST', 'request body too large');
    chunks.push(chunk);
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (value !== null && typeof value === 'object') return value as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw new BerthError('ERR_BAD_REQUEST', 'the body must be a JSON object');
}

/**
 * The verified identity of the client certificate, or the reason there is none. Node's TLS layer
 * verified the chain against the CA (and the validity dates) during the handshake.
 */
function peerOf(socket: TLSSocket): { role: string; name: string; serial: string } | { refused: string } {
  const certificate = socket.getPeerCertificate();
  if (!certificate || Object.keys(certificate).length === 0) {
    return {
      refused:
        'no client certificate: this endpoint needs a certificate issued by the cluster (join with a token first)',
    };
  }
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? 'unknown');
    if (reason === 'CERT_HAS_EXPIRED') {
      return { refused: 'client certificate expired: join the node again with a current token' };
    }
    return { refused: `client certificate refused (${reason}): it was not issued by this cluster's CA` };
  }
  return identityOf(certificate);
}

export function createClusterServer(args: {
  identity: ClusterIdentity;
  stateDir: string;
  registry: NodeRegistry;
  log: Logger;
}): ClusterServer {
  const { identity, registry, log } = args;
  const server: Server = createServer({
    key: identity.operator.privateKeyPem,
    // The chain: the operator's certificate, then the CA (so a joining agent can pin it).
    cert: identity.operator.certificatePem + identity.ca.certificatePem,
    ca: identity.ca.certificatePem,
    requestCert: true,
    // Joining and fetching the CA need no client certificate; every other route checks it.
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
    // Slow clients are cut off: headers within 10 s, the whole request within 60 s (a node's
    // websocket, once upgraded, is no longer a request and is kept by its own heartbeats), an
    // idle kept-alive connection after 5 s.
    headersTimeout: 10_000,
    requestTimeout: 60_000,
    keepAliveTimeout: 5_000,
    connectionsCheckingInterval: 1_000,
    handshakeTimeout: 10_000,
  });
  const sockets = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  const heartbeats = new Set<NodeJS.Timeout>();

  const admin = (request: IncomingMessage): void => {
    const peer = peerOf(request.socket as TLSSocket);
    if ('refused' in peer) throw new BerthError('ERR_AGENT_UNAUTHORIZED', peer.refused);
    if (peer.role !== 'admin') {
      throw new BerthError(
        'ERR_AGENT_UNAUTHORIZED',
        `a ${peer.role || 'non-admin'} certificate may not use the admin API`,
      );
    }
  };

  async function route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'https://operator');
    const method = request.method ?? 'GET';
    if (method === 'GET' && url.pathname === CLUSTER_PATHS.ca) {
      send(response, 200, { caCertificatePem: identity.ca.certificatePem });
      return;
    }
    if (method === 'POST' && url.pathname === CLUSTER_PATHS.join) {
      const body = await readJson(request);
      const { secret, node, publicKeyPem } = body;
      if (typeof secret !== 'string' || typeof node !== 'string' || typeof publicKeyPem !== 'string') {
        throw new BerthError('ERR_BAD_REQUEST', 'join needs { secret, node, publicKeyPem }');
      }
      if (!secretMatches(await readJoinSecret(args.stateDir), secret)) {
        log.warn({ node, remote: request.socket.remoteAddress }, 'join refused: wrong or rotated token');
        throw new BerthError(
          'ERR_AGENT_UNAUTHORIZED',
          'join refused: the token is wrong or was rotated (print the current one with `berth token` on the operator)',
        );
      }
      const issued = await registry.join({ ca: identity.ca, name: node, publicKeyPem });
      send(response, 200, {
        certificatePem: issued.certificatePem,
        caCertificatePem: identity.ca.certificatePem,
      });
      return;
    }
    if (method === 'POST' && url.pathname === CLUSTER_PATHS.renew) {
      const peer = peerOf(request.socket as TLSSocket);
      const refusal =
        'refused' in peer
          ? peer.refused
          : peer.role !== 'node'
            ? 'only a node certificate can be renewed'
            : registry.refusal(peer.name, peer.serial);
      if (refusal !== null || 'refused' in peer)
        throw new BerthError('ERR_AGENT_UNAUTHORIZED', refusal ?? 'refused');
      const { publicKeyPem } = await readJson(request);
      if (typeof publicKeyPem !== 'string')
        throw new BerthError('ERR_BAD_REQUEST', 'renew needs { publicKeyPem }');
      const issued = await registry.renew({ ca: identity.ca, name: peer.name, publicKeyPem });
      send(response, 200, {
        certificatePem: issued.certificatePem,
        caCertificatePem: identity.ca.certificatePem,
      });
      return;
    }
    if (method === 'GET' && url.pathname === CLUSTER_PATHS.nodes) {
      admin(request);
      send(response, 200, { nodes: registry.list() });
      return;
    }
    if (method === 'GET' && url.pathname === CLUSTER_PATHS.observed) {
      admin(request);
      send(response, 200, await observeCluster(registry.agents(), log));
      return;
    }
    const nodeAction = /^\/v1\/nodes\/([^/]+)(?:\/(drain|activate))?$/.exec(url.pathname);
    if (nodeAction) {
      admin(request);
      const name = decodeURIComponent(nodeAction[1]!);
      if (method === 'POST' && nodeAction[2]) {
        await registry.setAvailability(name, nodeAction[2] === 'drain' ? 'drain' : 'active');
        send(response, 200, { node: name, availability: nodeAction[2] === 'drain' ? 'drain' : 'active' });
        return;
      }
      if (method === 'DELETE' && !nodeAction[2]) {
        await registry.remove(name);
        send(response, 200, { node: name, removed: true });
        return;
      }
    }
    send(response, 404, {
      code: 'ERR_NOT_SUPPORTED',
      message: `no route ${method} ${url.pathname}`,
    } satisfies WireError);
  }

  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    route(request, response).catch((error: unknown) => {
      const berthError = asBerthError(error);
      if (berthError.httpStatus >= 500) log.error({ err: error, url: request.url }, 'cluster request failed');
      sendError(response, berthError);
    });
  });

  function refuseUpgrade(socket: Duplex, status: number, message: string): void {
    const body = JSON.stringify({ code: 'ERR_AGENT_UNAUTHORIZED', message } satisfies WireError);
    socket.end(
      `HTTP/1.1 ${status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }

  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(request.url ?? '/', 'https://operator');
    if (url.pathname !== CLUSTER_PATHS.connect) {
      refuseUpgrade(socket, 404, `no WebSocket at ${url.pathname}`);
      return;
    }
    const peer = peerOf(request.socket as TLSSocket);
    const refusal =
      'refused' in peer
        ? peer.refused
        : peer.role !== 'node'
          ? `a ${peer.role || 'role-less'} certificate cannot connect as a node`
          : registry.refusal(peer.name, peer.serial);
    if (refusal !== null || 'refused' in peer) {
      log.warn({ remote: request.socket.remoteAddress, reason: refusal }, 'agent connection refused');
      refuseUpgrade(socket, 401, refusal ?? 'refused');
      return;
    }
    sockets.handleUpgrade(request, socket, head, (ws: WebSocket) => {
      const agent = registry.attach(peer.name, ws);
      let lastPong = Date.now();
      ws.on('pong', () => {
        lastPong = Date.now();
        agent.heard();
      });
      const timer = setInterval(() => {
        if (Date.now() - lastPong > NODE_DOWN_AFTER_MS) {
          log.warn(
            { node: peer.name, silentMs: Date.now() - lastPong },
            'node missed its heartbeats: marking it down',
          );
          agent.detach(ws, `no heartbeat for ${NODE_DOWN_AFTER_MS} ms`);
          ws.terminate();
          return;
        }
        ws.ping();
      }, HEARTBEAT_INTERVAL_MS);
      heartbeats.add(timer);
      ws.on('close', () => {
        clearInterval(timer);
        heartbeats.delete(timer);
      });
    });
  });

  return {
    listen(options) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          server.off('error', reject);
          const address = server.address();
          const port = typeof address === 'object' && address !== null ? address.port : options.port;
          const host = options.host.includes(':') ? `[${options.host}]` : options.host;
          resolve(`https://${host}:${port}`);
        });
      });
    },
    async close() {
      for (const timer of heartbeats) clearInterval(timer);
      for (const client of sockets.clients) client.terminate();
      sockets.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
