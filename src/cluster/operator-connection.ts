/**
 * The agent's side of joining: fetch the CA and check it against the token's fingerprint, send
 * the join secret and a public key, keep the certificate the operator issues, then keep one
 * WebSocket open to the operator over mutual TLS and answer its NodeAgent calls on it.
 *
 * The agent dials the operator (never the other way round), so a node behind NAT or a firewall
 * that allows outgoing connections only can join; the operator needs one reachable port.
 */
import type { IncomingMessage } from 'node:http';
import { X509Certificate } from 'node:crypto';
import WebSocket, { type ClientOptions } from 'ws';
import type { NodeAgent } from '../api/types.js';
import { BerthError, errorFromWire } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { certificateFingerprint, generateKeyPair } from './certificates.js';
import { parseJoinToken } from './join-token.js';
import { placementDrift, type RecordedPlacement } from './node-placement.js';
import { startRenewal } from './node-certificate-renewal.js';
import {
  readStoredIdentities,
  saveCredentials,
  serialOf,
  startupIdentity,
  type NodeCredentials,
} from './node-credentials.js';
import { checkOperatorIdentity, requestJson } from './operator-request.js';
import { AGENT_SILENCE_MS, CLUSTER_PATHS, PLACEMENT_HEADER, decodePlacementHeader } from './rpc-protocol.js';
import { serveNodeAgent } from './serve-node-agent.js';

/**
 * The stored identity the agent starts with (see startupIdentity), or why there is none (empty
 * when the state dir holds no certificate at all).
 */
async function storedIdentity(
  args: { node: string; stateDir: string; log: Logger },
  caFingerprint: string,
): Promise<NodeCredentials | { unusable: string[] }> {
  const stored = await readStoredIdentities(args.stateDir);
  const choice = startupIdentity(
    stored.map((s) => s.facts),
    { caFingerprint, node: args.node, nowMs: Date.now() },
  );
  if ('join' in choice) {
    if (choice.reasons.length > 0) {
      args.log.warn({ reasons: choice.reasons }, 'no usable node certificate in the state dir: joining');
    }
    return { unusable: choice.reasons };
  }
  const credentials = stored.find((s) => s.facts.source === choice.use)!.credentials;
  args.log.info(
    {
      source: choice.use,
      serial: serialOf(credentials.certificatePem),
      validTo: new X509Certificate(credentials.certificatePem).validTo,
    },
    'using the node certificate from the state dir',
  );
  return credentials;
}

interface JoinArgs {
  url: string;
  token: string;
  node: string;
  stateDir: string;
  /** Recorded by the operator at join; later runs cannot change them (node-placement.ts). */
  placement: RecordedPlacement;
  log: Logger;
}

/**
 * The node's credentials for the cluster the token names: the ones in the state dir when they
 * were issued by that cluster's CA and still valid (an agent restart), else a fresh join. A
 * refused join says why the stored certificate could not be used, if there was one.
 */
export async function joinCluster(args: JoinArgs): Promise<NodeCredentials> {
  const token = parseJoinToken(args.token);
  const stored = await storedIdentity(args, token.caFingerprint);
  if (!('unusable' in stored)) return stored;
  try {
    return await joinWithToken(args, token);
  } catch (error) {
    if (stored.unusable.length === 0 || !(error instanceof BerthError)) throw error;
    throw new BerthError(
      error.code,
      `${error.message} (the node certificate in ${args.stateDir}/cluster cannot be used: ${stored.unusable.join('; ')})`,
      { cause: error },
    );
  }
}

async function joinWithToken(
  args: JoinArgs,
  token: ReturnType<typeof parseJoinToken>,
): Promise<NodeCredentials> {
  const fetched = (await requestJson(args.url, {}, 'GET', CLUSTER_PATHS.ca)) as {
    caCertificatePem?: unknown;
  };
  if (typeof fetched.caCertificatePem !== 'string') {
    throw new BerthError(
      'ERR_AGENT_UNAUTHORIZED',
      `${args.url} did not send a CA certificate: is it a berth operator?`,
    );
  }
  const fingerprint = certificateFingerprint(fetched.caCertificatePem);
  if (fingerprint !== token.caFingerprint) {
    throw new BerthError(
      'ERR_AGENT_UNAUTHORIZED',
      `the operator at ${args.url} presents CA ${fingerprint.slice(0, 16)}…, but the token pins ${token.caFingerprint.slice(0, 16)}…: wrong address, or a token of another cluster; refusing to join`,
    );
  }
  const keys = generateKeyPair();
  const answer = (await requestJson(args.url, { ca: fetched.caCertificatePem }, 'POST', CLUSTER_PATHS.join, {
    secret: token.secret,
    node: args.node,
    publicKeyPem: keys.publicKeyPem,
    labels: args.placement.labels,
    address: args.placement.address,
  })) as { certificatePem?: unknown };
  if (typeof answer.certificatePem !== 'string') {
    throw new BerthError('ERR_AGENT_UNAUTHORIZED', 'the operator did not issue a certificate');
  }
  const credentials: NodeCredentials = {
    caCertificatePem: fetched.caCertificatePem,
    certificatePem: answer.certificatePem,
    privateKeyPem: keys.privateKeyPem,
  };
  await saveCredentials(args.stateDir, credentials);
  args.log.info({ operator: args.url }, 'joined the cluster');
  return credentials;
}

export interface OperatorConnection {
  /** Resolves once the first connection is up; rejects when the operator refuses this node. */
  readonly ready: Promise<void>;
  /** Rejects when the operator refuses this node for good (revoked, expired, unknown). */
  readonly refused: Promise<never>;
  close(): Promise<void>;
}

interface ConnectArgs {
  url: string;
  credentials: NodeCredentials;
  /** Where renewed credentials are kept (node-credentials.ts). */
  stateDir: string;
  agent: NodeAgent;
  /** What this agent was started with, to compare with what the operator holds. */
  placement: RecordedPlacement;
  log: Logger;
}

/** What the dialler, the refusal reader and the renewal share about one agent's connection. */
interface Link {
  readonly args: ConnectArgs;
  readonly wsUrl: URL;
  credentials: NodeCredentials;
  closed: boolean;
  socket: WebSocket | null;
  retryMs: number;
  retryTimer: NodeJS.Timeout | null;
  connected(): void;
  refuse(error: BerthError): void;
}

/** Reads the body of a refused upgrade; a 401 or 403 ends the link for good. */
function readRefusal(link: Link, ws: WebSocket, response: IncomingMessage): void {
  const chunks: Buffer[] = [];
  response.on('data', (chunk: Buffer) => chunks.push(chunk));
  response.on('end', () => {
    let body: unknown = undefined;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      body = undefined;
    }
    const error = errorFromWire(body, `the operator refused the connection with HTTP ${response.statusCode}`);
    if (response.statusCode === 401 || response.statusCode === 403) {
      link.closed = true;
      link.args.log.error({ reason: error.message }, 'the operator refused this node');
      link.refuse(error);
    }
    ws.terminate();
  });
}

/**
 * The operator holds the node's labels and address from its join on: an agent started with other
 * ones says so (they take no effect), on every connection, where its operator reads its log.
 */
function warnOfPlacementDrift(args: ConnectArgs, response: IncomingMessage): void {
  const held = decodePlacementHeader(response.headers[PLACEMENT_HEADER]);
  if (held === null) return;
  for (const drift of placementDrift(held, args.placement)) {
    args.log.warn(
      { held: held[drift.field], started: args.placement[drift.field], detail: drift.detail },
      drift.field === 'labels'
        ? 'labels are held by the operator; change them with berth node label (the --label values of this agent take no effect)'
        : 'the advertise address is held by the operator since this node joined: replicas published on another address are not routed to',
    );
  }
}

/** Terminates a socket that hears no ping from the operator for AGENT_SILENCE_MS; returns the reset. */
function silenceWatchdog(ws: WebSocket, log: Logger): { heard: () => void; stop: () => void } {
  let silence: NodeJS.Timeout | null = null;
  const stop = (): void => {
    if (silence) clearTimeout(silence);
  };
  const heard = (): void => {
    stop();
    silence = setTimeout(() => {
      log.warn({ silentMs: AGENT_SILENCE_MS }, 'no heartbeat from the operator: reconnecting');
      ws.terminate();
    }, AGENT_SILENCE_MS);
  };
  return { heard, stop };
}

/** Opens one WebSocket to the operator; after a drop, dials again with back-off (0.5 s doubling to 5 s). */
function dial(link: Link): void {
  if (link.closed) return;
  const { log } = link.args;
  const ws = new WebSocket(link.wsUrl, {
    ca: link.credentials.caCertificatePem,
    cert: link.credentials.certificatePem,
    key: link.credentials.privateKeyPem,
    rejectUnauthorized: true,
    // ws hands TLS options to tls.connect as they are; its typings describe another signature.
    checkServerIdentity: checkOperatorIdentity as unknown as NonNullable<
      ClientOptions['checkServerIdentity']
    >,
    handshakeTimeout: 10_000,
    maxPayload: 64 * 1024 * 1024,
  });
  link.socket = ws;
  const watchdog = silenceWatchdog(ws, log);
  ws.on('unexpected-response', (_request, response) => readRefusal(link, ws, response));
  ws.on('upgrade', (response) => warnOfPlacementDrift(link.args, response));
  ws.on('open', () => {
    link.retryMs = 500;
    log.info({ operator: link.args.url }, 'connected to the operator');
    watchdog.heard();
    link.connected();
  });
  ws.on('ping', watchdog.heard);
  serveNodeAgent(ws, link.args.agent, log);
  ws.on('error', (error) => log.warn({ err: error.message }, 'operator connection error'));
  ws.on('close', () => {
    watchdog.stop();
    if (link.socket === ws) link.socket = null;
    if (link.closed) return;
    log.warn({ retryMs: link.retryMs }, 'operator connection lost: reconnecting');
    link.retryTimer = setTimeout(() => dial(link), link.retryMs);
    link.retryMs = Math.min(5000, link.retryMs * 2);
  });
}

/**
 * Keeps a WebSocket to the operator open, reconnecting with back-off after a drop, and answers
 * the NodeAgent calls that arrive on it. A refusal (HTTP 401 on the upgrade: revoked, expired,
 * not joined) is final: `refused` rejects with the operator's reason.
 */
export function connectToOperator(args: ConnectArgs): OperatorConnection {
  let readyResolve: () => void = () => undefined;
  let refusedReject: (error: BerthError) => void = () => undefined;
  const ready = new Promise<void>((resolve) => (readyResolve = resolve));
  const refused = new Promise<never>((_resolve, reject) => (refusedReject = reject));
  refused.catch(() => undefined);
  const link: Link = {
    args,
    wsUrl: new URL(CLUSTER_PATHS.connect, args.url.replace(/^http/, 'ws')),
    credentials: args.credentials,
    closed: false,
    socket: null,
    retryMs: 500,
    retryTimer: null,
    connected: () => readyResolve(),
    refuse: (error) => refusedReject(error),
  };
  dial(link);
  const renewTimer = startRenewal({
    url: args.url,
    stateDir: args.stateDir,
    log: args.log,
    current: () => link.credentials,
    closed: () => link.closed,
    adopt: (credentials) => {
      link.credentials = credentials;
      link.socket?.close(1000, 'reconnecting with a renewed certificate');
    },
  });
  return {
    ready,
    refused,
    async close() {
      link.closed = true;
      clearInterval(renewTimer);
      if (link.retryTimer) clearTimeout(link.retryTimer);
      link.socket?.close(1001, 'agent stopping');
    },
  };
}
