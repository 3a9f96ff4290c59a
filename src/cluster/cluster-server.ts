/**
 * The operator's cluster endpoint (`berth run --cluster-listen HOST:PORT`): HTTPS with the
 * operator's certificate, issued by the cluster CA. Client certificates are requested on every
 * connection and verified against the CA; the routes that act need one:
 *
 *   GET    /v1/ca                 the CA certificate (public; the agent pins its fingerprint)
 *   POST   /v1/join               { secret, node, publicKeyPem, labels?, address? }
 *                                 -> { certificatePem, caCertificatePem }; refused for a name
 *                                 that is already a member (until `berth node rm`)
 *   POST   /v1/renew              node certificate + { publicKeyPem } -> its next certificate (the
 *                                 presented one stays valid until the node connects with the next)
 *   GET    /v1/connect            WebSocket upgrade; node certificate: the agent's persistent connection
 *   GET    /v1/nodes              admin certificate: the node list
 *   POST   /v1/nodes/:name/drain | /activate, DELETE /v1/nodes/:name
 *   POST   /v1/nodes/:name/labels { set?: {k: v}, remove?: [k] } -> { node, labels }
 *   GET    /v1/observed           admin certificate: every node's snapshot (for `berth status`)
 *   POST   /v1/logs               admin certificate: { node, name, options } -> the replica's log
 *                                 stream as NDJSON (`berth logs`), relayed from the node
 *   POST   /v1/jobs/run           admin certificate: { namespace, name } -> the run started
 *                                 (`berth job run`: a CronJob now, a Job again)
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { capConnections } from '../core/connection-cap.js';
import { BerthError, asBerthError, type WireError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { observeCluster } from '../api/observe-cluster.js';
import { parseAgentCall } from '../api/agent-calls.js';
import { NDJSON_CONTENT_TYPE, writeLogStream } from '../api/log-stream.js';
import { identityOf } from './certificates.js';
import { readJoinSecret, type ClusterIdentity } from './cluster-identity.js';
import { secretMatches } from './join-token.js';
import { parseAdvertiseAddress, parseLabels } from './node-placement.js';
import type { NodeRegistry } from './node-registry.js';
import {
  CLUSTER_PATHS,
  HEARTBEAT_INTERVAL_MS,
  NODE_DOWN_AFTER_MS,
  PLACEMENT_HEADER,
  encodePlacementHeader,
} from './rpc-protocol.js';

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

interface ClusterServerArgs {
  identity: ClusterIdentity;
  stateDir: string;
  registry: NodeRegistry;
  log: Logger;
  /** The operator's Jobs, for `berth job run`; absent: the route answers 404. */
  jobs?: AdminJobControl;
}

/** What `berth job run` asks of the operator (its CronJob scheduler) through the admin API. */
export interface AdminJobControl {
  /** Resolves with what was started, for the CLI to print (JSON). */
  runNow(namespace: string, name: string): Promise<unknown>;
}

type Peer = ReturnType<typeof peerOf>;

type NodePeer = { role: string; name: string; serial: string };

/**
 * The node a peer may act as (renew, connect) and whether it presents its renewed certificate,
 * or the reason it may not.
 */
function nodePeer(
  peer: Peer,
  registry: NodeRegistry,
  wrongRole: (role: string) => string,
): { node: NodePeer; renewed: boolean } | { refused: string } {
  if ('refused' in peer) return peer;
  if (peer.role !== 'node') return { refused: wrongRole(peer.role) };
  const standing = registry.standing(peer.name, peer.serial);
  if (standing.kind === 'refused') return { refused: standing.reason };
  return { node: peer, renewed: standing.kind === 'renewed' };
}

function requireAdmin(request: IncomingMessage): void {
  const peer = peerOf(request.socket as TLSSocket);
  if ('refused' in peer) throw new BerthError('ERR_AGENT_UNAUTHORIZED', peer.refused);
  if (peer.role !== 'admin') {
    throw new BerthError(
      'ERR_AGENT_UNAUTHORIZED',
      `a ${peer.role || 'non-admin'} certificate may not use the admin API`,
    );
  }
}

async function handleJoin(
  args: ClusterServerArgs,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const { secret, node, publicKeyPem, labels, address } = await readJson(request);
  if (typeof secret !== 'string' || typeof node !== 'string' || typeof publicKeyPem !== 'string') {
    throw new BerthError('ERR_BAD_REQUEST', 'join needs { secret, node, publicKeyPem }');
  }
  const placement = { labels: parseLabels(labels, 'labels'), address: parseAdvertiseAddress(address) };
  if (!secretMatches(await readJoinSecret(args.stateDir), secret)) {
    args.log.warn({ node, remote: request.socket.remoteAddress }, 'join refused: wrong or rotated token');
    throw new BerthError(
      'ERR_AGENT_UNAUTHORIZED',
      'join refused: the token is wrong or was rotated (print the current one with `berth token` on the operator)',
    );
  }
  let issued: { certificatePem: string };
  try {
    issued = await args.registry.join({
      ca: args.identity.ca,
      name: node,
      publicKeyPem,
      ...(placement.labels === undefined ? {} : { labels: placement.labels }),
      ...(placement.address === undefined ? {} : { address: placement.address }),
    });
  } catch (error) {
    args.log.warn(
      { node, remote: request.socket.remoteAddress, reason: asBerthError(error).message },
      'join refused',
    );
    throw error;
  }
  send(response, 200, {
    certificatePem: issued.certificatePem,
    caCertificatePem: args.identity.ca.certificatePem,
  });
}

async function handleRenew(
  args: ClusterServerArgs,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const peer = nodePeer(
    peerOf(request.socket as TLSSocket),
    args.registry,
    () => 'only a node certificate can be renewed',
  );
  if ('refused' in peer) throw new BerthError('ERR_AGENT_UNAUTHORIZED', peer.refused);
  const { publicKeyPem } = await readJson(request);
  if (typeof publicKeyPem !== 'string')
    throw new BerthError('ERR_BAD_REQUEST', 'renew needs { publicKeyPem }');
  const issued = await args.registry.renew({
    ca: args.identity.ca,
    name: peer.node.name,
    presentedSerial: peer.node.serial,
    publicKeyPem,
  });
  send(response, 200, {
    certificatePem: issued.certificatePem,
    caCertificatePem: args.identity.ca.certificatePem,
  });
}

/** POST /v1/nodes/:name/labels `{ set?, remove? }`: the node's labels after the change. */
async function handleLabels(
  registry: NodeRegistry,
  name: string,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const { set, remove } = await readJson(request);
  const removeKeys: unknown = remove ?? [];
  if (!Array.isArray(removeKeys) || !removeKeys.every((key) => typeof key === 'string')) {
    throw new BerthError('ERR_BAD_REQUEST', 'remove must be a list of label keys');
  }
  const labels = await registry.setLabels(name, {
    set: parseLabels(set, 'set') ?? {},
    remove: removeKeys,
  });
  send(response, 200, { node: name, labels });
}

/**
 * POST /v1/nodes/:name/drain | /activate | /labels, DELETE /v1/nodes/:name; false when the
 * request is none of them.
 */
async function handleNodeAction(
  registry: NodeRegistry,
  request: IncomingMessage,
  response: ServerResponse,
  pathname: string,
): Promise<boolean> {
  const nodeAction = /^\/v1\/nodes\/([^/]+)(?:\/(drain|activate|labels))?$/.exec(pathname);
  if (!nodeAction) return false;
  requireAdmin(request);
  const name = decodeURIComponent(nodeAction[1]!);
  if (request.method === 'POST' && nodeAction[2] === 'labels') {
    await handleLabels(registry, name, request, response);
    return true;
  }
  if (request.method === 'POST' && nodeAction[2]) {
    const availability = nodeAction[2] === 'drain' ? 'drain' : 'active';
    await registry.setAvailability(name, availability);
    send(response, 200, { node: name, availability });
    return true;
  }
  if (request.method === 'DELETE' && !nodeAction[2]) {
    await registry.remove(name);
    send(response, 200, { node: name, removed: true });
    return true;
  }
  return false;
}

/** POST /v1/logs: a replica's log stream from whichever node holds it, written as it comes. */
async function handleLogs(
  registry: NodeRegistry,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  requireAdmin(request);
  const { node, name, options } = await readJson(request);
  const call = parseAgentCall('logs', [name, options ?? {}]);
  if (call.method !== 'logs') return;
  const agent = typeof node === 'string' ? registry.agents().get(node) : undefined;
  if (!agent) throw new BerthError('ERR_BAD_REQUEST', `no node ${JSON.stringify(node)} in this cluster`);
  const gone = new AbortController();
  response.once('close', () => gone.abort());
  response.writeHead(200, { 'content-type': NDJSON_CONTENT_TYPE, 'cache-control': 'no-store' });
  await writeLogStream(response, agent.logs(...call.params), gone.signal);
}

async function handleJobRun(
  jobs: AdminJobControl,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  requireAdmin(request);
  const { namespace, name } = await readJson(request);
  if (typeof namespace !== 'string' || typeof name !== 'string') {
    throw new BerthError('ERR_BAD_REQUEST', 'the body must be { "namespace": string, "name": string }');
  }
  send(response, 200, await jobs.runNow(namespace, name));
}

async function routeClusterRequest(
  args: ClusterServerArgs,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const { identity, registry, log } = args;
  const url = new URL(request.url ?? '/', 'https://operator');
  const route = `${request.method ?? 'GET'} ${url.pathname}`;
  switch (route) {
    case `GET ${CLUSTER_PATHS.ca}`:
      send(response, 200, { caCertificatePem: identity.ca.certificatePem });
      return;
    case `POST ${CLUSTER_PATHS.join}`:
      return handleJoin(args, request, response);
    case `POST ${CLUSTER_PATHS.renew}`:
      return handleRenew(args, request, response);
    case `GET ${CLUSTER_PATHS.nodes}`:
      requireAdmin(request);
      send(response, 200, { nodes: registry.list() });
      return;
    case `GET ${CLUSTER_PATHS.observed}`:
      requireAdmin(request);
      send(response, 200, await observeCluster(registry.agents(), log));
      return;
    case `POST ${CLUSTER_PATHS.logs}`:
      return handleLogs(registry, request, response);
    case `POST ${CLUSTER_PATHS.jobRun}`:
      if (args.jobs === undefined) break;
      return handleJobRun(args.jobs, request, response);
  }
  if (await handleNodeAction(registry, request, response, url.pathname)) return;
  send(response, 404, { code: 'ERR_NOT_SUPPORTED', message: `no route ${route}` } satisfies WireError);
}

function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ code: 'ERR_AGENT_UNAUTHORIZED', message } satisfies WireError);
  socket.end(
    `HTTP/1.1 ${status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * The agent's persistent connection: pinged every heartbeat interval; a node that answers no
 * ping for NODE_DOWN_AFTER_MS is detached (and so counts as unreachable).
 */
function superviseNodeSocket(
  ws: WebSocket,
  agent: ReturnType<NodeRegistry['attach']>,
  node: string,
  heartbeats: Set<NodeJS.Timeout>,
  log: Logger,
): void {
  let lastPong = Date.now();
  ws.on('pong', () => {
    lastPong = Date.now();
    agent.heard();
  });
  const timer = setInterval(() => {
    if (Date.now() - lastPong > NODE_DOWN_AFTER_MS) {
      log.warn({ node, silentMs: Date.now() - lastPong }, 'node missed its heartbeats: marking it down');
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
}

/**
 * Upgrades an agent's connection. The first connection with a renewed certificate makes it the
 * node's current one (revoking the old) before the upgrade: a registry that cannot record that
 * answers 503, which the agent retries (it still holds both certificates).
 */
async function acceptNodeConnection(
  args: ClusterServerArgs,
  sockets: WebSocketServer,
  heartbeats: Set<NodeJS.Timeout>,
  upgrade: { request: IncomingMessage; socket: Duplex; head: Buffer },
): Promise<void> {
  const { request, socket, head } = upgrade;
  const url = new URL(request.url ?? '/', 'https://operator');
  if (url.pathname !== CLUSTER_PATHS.connect) {
    refuseUpgrade(socket, 404, `no WebSocket at ${url.pathname}`);
    return;
  }
  const peer = nodePeer(
    peerOf(request.socket as TLSSocket),
    args.registry,
    (role) => `a ${role || 'role-less'} certificate cannot connect as a node`,
  );
  if ('refused' in peer) {
    args.log.warn({ remote: request.socket.remoteAddress, reason: peer.refused }, 'agent connection refused');
    refuseUpgrade(socket, 401, peer.refused);
    return;
  }
  const { name, serial } = peer.node;
  if (peer.renewed) {
    try {
      await args.registry.useRenewed(name, serial);
    } catch (error) {
      args.log.error({ node: name, err: error }, 'cannot record the renewed certificate; the agent retries');
      refuseUpgrade(socket, 503, 'the operator cannot record the renewed certificate yet; retry');
      return;
    }
  }
  if (socket.destroyed) return;
  upgradingNodes.set(request, name);
  sockets.handleUpgrade(request, socket, head, (ws: WebSocket) => {
    superviseNodeSocket(ws, args.registry.attach(name, ws), name, heartbeats, args.log);
  });
}

/** The node name of each upgrade in progress, for the placement header of its answer. */
const upgradingNodes = new WeakMap<IncomingMessage, string>();

/**
 * The upgrade's answer tells the agent the labels and address the operator holds for it, so an
 * agent started with other ones can say so where its operator reads its log.
 */
function addPlacementHeader(registry: NodeRegistry, headers: string[], request: IncomingMessage): void {
  const name = upgradingNodes.get(request);
  const node = name === undefined ? undefined : registry.node(name);
  if (!node) return;
  headers.push(
    `${PLACEMENT_HEADER}: ${encodePlacementHeader({
      ...(node.labels === undefined ? {} : { labels: node.labels }),
      ...(node.address === undefined ? {} : { address: node.address }),
    })}`,
  );
}

function listenOn(server: Server, options: { host: string; port: number }): Promise<string> {
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
}

export function createClusterServer(args: ClusterServerArgs): ClusterServer {
  const { identity, log } = args;
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
  // Every joined node holds one connection; a machine may run many agents (tests, simulations)
  // behind one address, so the per-address cap is high and the total is what bounds descriptors.
  capConnections(server, { maxConnections: 4096, maxConnectionsPerClient: 512 });
  const sockets = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  const heartbeats = new Set<NodeJS.Timeout>();
  sockets.on('headers', (headers: string[], request: IncomingMessage) =>
    addPlacementHeader(args.registry, headers, request),
  );

  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    routeClusterRequest(args, request, response).catch((error: unknown) => {
      const berthError = asBerthError(error);
      if (berthError.httpStatus >= 500) log.error({ err: error, url: request.url }, 'cluster request failed');
      sendError(response, berthError);
    });
  });
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    acceptNodeConnection(args, sockets, heartbeats, { request, socket, head }).catch((error: unknown) => {
      log.error({ err: error }, 'agent connection failed');
      socket.destroy();
    });
  });

  return {
    listen: (options) => listenOn(server, options),
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
