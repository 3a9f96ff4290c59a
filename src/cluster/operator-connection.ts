/**
 * The agent's side of joining: fetch the CA and check it against the token's fingerprint, send
 * the join secret and a public key, keep the certificate the operator issues, then keep one
 * WebSocket open to the operator over mutual TLS and answer its NodeAgent calls on it.
 *
 * The agent dials the operator (never the other way round), so a node behind NAT or a firewall
 * that allows outgoing connections only can join; the operator needs one reachable port.
 */
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import WebSocket, { type ClientOptions } from 'ws';
import type { NodeAgent } from '../api/types.js';
import { BerthError, errorFromWire } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { readFileIfExists, writeFileAtomic } from '../core/atomic-file.js';
import {
  CLOCK_SKEW_MS,
  certificateFingerprint,
  generateKeyPair,
  identityOf,
  renewalDueAt,
} from './certificates.js';
import { parseJoinToken } from './join-token.js';
import { AGENT_SILENCE_MS, CLUSTER_PATHS } from './rpc-protocol.js';
import { serveNodeAgent } from './serve-node-agent.js';

export interface NodeCredentials {
  caCertificatePem: string;
  certificatePem: string;
  privateKeyPem: string;
}

export interface TlsClientOptions {
  ca?: string;
  cert?: string;
  key?: string;
}

/** The peer must hold the operator's certificate from the cluster CA; its host name does not matter (NAT). */
function checkOperatorIdentity(_host: string, certificate: PeerCertificate): Error | undefined {
  const { role } = identityOf(certificate);
  return role === 'operator'
    ? undefined
    : new Error(`the peer's certificate is not the operator's (role "${role}")`);
}

/** One JSON request over HTTPS. With `ca`, the operator's certificate must chain to it. */
export function requestJson(
  url: string,
  tls: TlsClientOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const target = new URL(path, url);
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      target,
      {
        method,
        timeout: 30_000,
        headers: {
          accept: 'application/json',
          ...(text === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }),
        },
        ...(tls.ca === undefined
          ? { rejectUnauthorized: false }
          : { ca: tls.ca, rejectUnauthorized: true, checkServerIdentity: checkOperatorIdentity }),
        ...(tls.cert === undefined ? {} : { cert: tls.cert }),
        ...(tls.key === undefined ? {} : { key: tls.key }),
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          let parsed: unknown = undefined;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            parsed = undefined;
          }
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(parsed);
          else reject(errorFromWire(parsed, `the operator answered ${method} ${path} with HTTP ${status}`));
        });
      },
    );
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', (error) => {
      reject(
        new BerthError('ERR_AGENT_UNREACHABLE', `cannot reach the operator at ${url}: ${error.message}`, {
          cause: error,
        }),
      );
    });
    request.end(text);
  });
}

function credentialPaths(stateDir: string): { ca: string; cert: string; key: string } {
  const dir = join(stateDir, 'cluster');
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'node.crt'), key: join(dir, 'node.key') };
}

/**
 * The node's credentials for the cluster the token names: the ones in the state dir when they
 * were issued by that cluster's CA and still valid (an agent restart), else a fresh join.
 */
export async function joinCluster(args: {
  url: string;
  token: string;
  node: string;
  stateDir: string;
  log: Logger;
}): Promise<NodeCredentials> {
  const token = parseJoinToken(args.token);
  const paths = credentialPaths(args.stateDir);
  const stored = {
    caCertificatePem: await readFileIfExists(paths.ca),
    certificatePem: await readFileIfExists(paths.cert),
    privateKeyPem: await readFileIfExists(paths.key),
  };
  if (stored.caCertificatePem && stored.certificatePem && stored.privateKeyPem) {
    const sameCluster = certificateFingerprint(stored.caCertificatePem) === token.caFingerprint;
    const cert = new X509Certificate(stored.certificatePem);
    const named = /^CN=(.*)$/m.exec(cert.subject)?.[1];
    const current = sameCluster && named === args.node && new Date(cert.validTo).getTime() > Date.now();
    if (current && keyMatches(cert, stored.privateKeyPem)) {
      args.log.info({ validTo: cert.validTo }, 'using the node certificate from the state dir');
      return stored as NodeCredentials;
    }
  }

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

/**
 * Whether the stored key belongs to the stored certificate: the three files are written one by
 * one, so a failed save (a full disk) can leave a new key beside an old certificate; such a pair
 * is not used and the node joins again with its token.
 */
function keyMatches(certificate: X509Certificate, privateKeyPem: string): boolean {
  try {
    return certificate.checkPrivateKey(createPrivateKey(privateKeyPem));
  } catch {
    return false;
  }
}

async function saveCredentials(stateDir: string, credentials: NodeCredentials): Promise<void> {
  const paths = credentialPaths(stateDir);
  await writeFileAtomic(paths.key, credentials.privateKeyPem, 0o600);
  await writeFileAtomic(paths.cert, credentials.certificatePem, 0o644);
  await writeFileAtomic(paths.ca, credentials.caCertificatePem, 0o644);
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
  /** Where renewed credentials are kept. */
  stateDir: string;
  agent: NodeAgent;
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
 * Renewal: once a third of the certificate's lifetime is left, ask for the next one with the
 * current one, keep it, and reconnect with it. Checked ten times per lifetime (at most hourly).
 * The operator revokes the old certificate as it issues the new one, so the new one is used even
 * when saving it fails; the save is then tried again at every check until it lands.
 */
function startRenewal(link: Link): NodeJS.Timeout {
  const { log } = link.args;
  let renewing = false;
  let unsaved = false;
  const save = async (): Promise<void> => {
    try {
      await saveCredentials(link.args.stateDir, link.credentials);
      unsaved = false;
    } catch (error) {
      unsaved = true;
      log.error(
        { err: error instanceof Error ? error.message : String(error) },
        'cannot save the renewed node certificate; will retry (a restart before then joins again with the token)',
      );
    }
  };
  const renewIfDue = async (): Promise<void> => {
    if (renewing || link.closed) return;
    if (unsaved) await save();
    if (Date.now() < renewalDueAt(new X509Certificate(link.credentials.certificatePem))) return;
    renewing = true;
    try {
      link.credentials = await requestRenewal(link.args.url, link.credentials);
      await save();
      log.info(
        { validTo: new X509Certificate(link.credentials.certificatePem).validTo },
        'node certificate renewed',
      );
      link.socket?.close(1000, 'reconnecting with a renewed certificate');
    } catch (error) {
      log.warn(
        { err: error instanceof Error ? error.message : String(error) },
        'certificate renewal failed; will retry',
      );
    } finally {
      renewing = false;
    }
  };
  const first = new X509Certificate(link.credentials.certificatePem);
  const lifetimeMs = new Date(first.validTo).getTime() - new Date(first.validFrom).getTime() - CLOCK_SKEW_MS;
  const timer = setInterval(() => void renewIfDue(), Math.min(3_600_000, Math.max(1000, lifetimeMs / 10)));
  timer.unref();
  return timer;
}

/** Asks the operator for the next certificate (for a fresh key), authenticated with the current one. */
async function requestRenewal(url: string, credentials: NodeCredentials): Promise<NodeCredentials> {
  const keys = generateKeyPair();
  const answer = (await requestJson(
    url,
    { ca: credentials.caCertificatePem, cert: credentials.certificatePem, key: credentials.privateKeyPem },
    'POST',
    CLUSTER_PATHS.renew,
    { publicKeyPem: keys.publicKeyPem },
  )) as { certificatePem?: unknown };
  if (typeof answer.certificatePem !== 'string') throw new Error('the operator sent no certificate');
  return { ...credentials, certificatePem: answer.certificatePem, privateKeyPem: keys.privateKeyPem };
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
  const renewTimer = startRenewal(link);
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
