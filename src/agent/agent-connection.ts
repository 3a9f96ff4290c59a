/**
 * How the operator reaches one agent's API: HTTPS with the agent's certificate pinned by the
 * fingerprint its token carries (no CA, no host name: the agent's certificate is self-signed and
 * the address the operator dials may be any of the node's), or plain HTTP to a loopback address.
 *
 * The pin is checked when a connection is made, before it is handed to the HTTP client: a peer
 * with another certificate never receives a request, so never the token.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { BerthError } from '../core/errors.js';
import { isLoopbackHost } from '../core/listen-address.js';
import { derFingerprint } from '../core/self-signed-certificate.js';
import type { AgentToken } from './agent-token.js';

export interface AgentRequest {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
}

export interface AgentConnection {
  /** The agent's base URL, without a trailing slash. */
  readonly base: string;
  request(path: string, request: AgentRequest): Promise<{ status: number; text: string }>;
  /** The answer's status and body as it arrives (a log stream); `request.signal` ends it. */
  stream(path: string, request: AgentRequest): Promise<{ status: number; body: IncomingMessage }>;
  close(): void;
}

/**
 * The connection to the agent at `url` with `token`: https needs a token with a fingerprint;
 * http is only for loopback, so a token never crosses a network in plain text.
 */
export function openAgentConnection(url: string, token: AgentToken): AgentConnection {
  const base = url.replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(base);
  } catch {
    throw new BerthError('ERR_BAD_REQUEST', `--agent wants an https:// URL, got "${url}"`);
  }
  if (parsed.protocol === 'https:') {
    if (token.fingerprint === null) {
      throw new BerthError(
        'ERR_AGENT_UNAUTHORIZED',
        `the agent at ${base} serves https: its token must be the one \`berth agent\` printed, BERTH-AGENT-1-<certificate fingerprint>-<secret>, so its certificate can be checked`,
      );
    }
    const agent = new PinnedHttpsAgent(base, token.fingerprint);
    return connection(
      base,
      (target, options, answer) => httpsRequest(target, { ...options, agent }, answer),
      () => agent.destroy(),
    );
  }
  if (parsed.protocol === 'http:') {
    if (!isLoopbackHost(parsed.hostname)) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `refusing to send the agent token in plain text to ${base}: agents serve https off loopback (use the https:// URL and the token the agent printed)`,
      );
    }
    const agent = new HttpAgent({ keepAlive: true });
    return connection(
      base,
      (target, options, answer) => httpRequest(target, { ...options, agent }, answer),
      () => agent.destroy(),
    );
  }
  throw new BerthError('ERR_BAD_REQUEST', `--agent wants an https:// URL, got "${url}"`);
}

type Send = (
  target: URL,
  options: RequestOptions,
  answer: (response: IncomingMessage) => void,
) => ReturnType<typeof httpRequest>;

function connection(base: string, send: Send, close: () => void): AgentConnection {
  return {
    base,
    request: (path, request) => requestText(send, new URL(`${base}${path}`), request),
    stream: (path, request) => requestStream(send, new URL(`${base}${path}`), request),
    close,
  };
}

function requestText(
  send: Send,
  target: URL,
  request: AgentRequest,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...request.headers };
    if (request.body !== undefined) headers['content-length'] = Buffer.byteLength(request.body);
    const outgoing = send(target, { method: request.method, headers, signal: request.signal }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.once('error', reject);
      response.once('aborted', () => reject(new Error('the agent closed the connection mid-answer')));
      response.once('end', () =>
        resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    outgoing.once('error', reject);
    outgoing.end(request.body);
  });
}

function requestStream(
  send: Send,
  target: URL,
  request: AgentRequest,
): Promise<{ status: number; body: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...request.headers };
    if (request.body !== undefined) headers['content-length'] = Buffer.byteLength(request.body);
    const outgoing = send(target, { method: request.method, headers, signal: request.signal }, (response) =>
      resolve({ status: response.statusCode ?? 0, body: response }),
    );
    outgoing.once('error', reject);
    outgoing.end(request.body);
  });
}

/** An https.Agent whose connections are handed over only once the peer's certificate is the pinned one. */
class PinnedHttpsAgent extends HttpsAgent {
  constructor(
    private readonly base: string,
    private readonly fingerprint: string,
  ) {
    // No chain, no host name: the pin below is the whole check.
    super({ keepAlive: true, rejectUnauthorized: false });
  }

  override createConnection(
    options: RequestOptions,
    callback?: (error: Error | null, socket: Duplex) => void,
  ): Duplex | null | undefined {
    const socket = tlsConnect({ ...(options as ConnectionOptions), rejectUnauthorized: false });
    const failed = (error: Error): void => callback?.(error, socket);
    socket.once('error', failed);
    socket.once('secureConnect', () => {
      socket.off('error', failed);
      const presented = derFingerprint(socket.getPeerCertificate().raw);
      if (presented === this.fingerprint) {
        callback?.(null, socket);
        return;
      }
      socket.destroy();
      callback?.(
        new BerthError(
          'ERR_AGENT_UNAUTHORIZED',
          `the agent at ${this.base} presents certificate SHA-256 ${presented}, but its token pins ${this.fingerprint}: wrong address, or the agent made a new certificate (it then prints a new token); nothing was sent`,
        ),
        socket,
      );
    });
    // The socket goes to the HTTP client through the callback, once checked.
    return undefined;
  }
}
