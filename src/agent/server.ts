/**
 * The agent's HTTP API: a NodeAgent served to the operator. Every route but /healthz needs the
 * agent token (`Authorization: Bearer <token>`); errors travel as `{ code, message, data }` with
 * the error's HTTP status, and client.ts rebuilds them on the other side. Each route is one agent
 * call (agent-routes.ts), checked against the call's schema in src/api/agent-calls.ts like every
 * other transport's calls.
 *
 * Served by node:http (node:https with `tls`) and a router of its own rather than a framework:
 * an idle agent keeps every module it loaded in its memory, and eleven routes need none.
 *
 * With `tls` it serves HTTPS with the agent's self-signed certificate, whose fingerprint the
 * operator pins (agent-token.ts); `berth agent` serves plain HTTP on loopback addresses only.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { capConnections } from '../core/connection-cap.js';
import { BerthError, type WireError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { invokeAgentCall, isLogStream, parseAgentCall } from '../api/agent-calls.js';
import { NDJSON_CONTENT_TYPE, writeLogStream } from '../api/log-stream.js';
import type { NodeAgent } from '../api/types.js';
import { createAgentRouter, type AgentRouter, type RouteMatch } from './agent-router.js';
import { AGENT_ROUTES } from './agent-routes.js';
import { HttpRefusal } from './http-refusal.js';
import { AGENT_BODY_LIMIT_BYTES } from './protocol.js';
import { readRequestBody } from './request-body.js';

export interface AgentServerOptions {
  agent: NodeAgent;
  /** The agent's own secret: what the operator must send as `Bearer`. */
  token: string;
  log: Logger;
  /** Serve HTTPS with this key and certificate; plain HTTP without. */
  tls?: { privateKeyPem: string; certificatePem: string };
}

export interface AgentServer {
  /** Starts serving; resolves with the URL it serves on (`http://127.0.0.1:PORT`). */
  listen(address: { host: string; port: number }): Promise<string>;
  /** Stops accepting, closes idle connections, and resolves once the calls in flight answered. */
  close(): Promise<void>;
}

/** Constant-time token check: both sides are hashed first so their lengths always match. */
export function tokenMatches(expected: string, authorization: string | undefined): boolean {
  const presented = authorization?.startsWith('Bearer ') ? authorization.slice('Bearer '.length) : '';
  const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();
  return timingSafeEqual(digest(expected), digest(presented));
}

export function createAgentServer(options: AgentServerOptions): AgentServer {
  const { token, tls } = options;
  if (token.length === 0) throw new BerthError('ERR_AGENT_UNAUTHORIZED', 'the agent needs a non-empty token');
  const router = createAgentRouter(AGENT_ROUTES);
  const timeouts = {
    // Slow clients are cut off: headers within 10 s, the whole request (body too) within 60 s.
    // Neither counts the time the agent takes to answer, so long polls are unaffected.
    headersTimeout: 10_000,
    requestTimeout: 60_000,
    connectionsCheckingInterval: 1_000,
  };
  let closing = false;
  const onRequest = (request: IncomingMessage, response: ServerResponse) => {
    if (closing) {
      // A kept-alive connection asking again while the agent shuts down: told so, and closed.
      const body: WireError = { code: 'ERR_AGENT_UNREACHABLE', message: 'the agent is shutting down' };
      sendJson(response, 503, body, { connection: 'close' });
      return;
    }
    void serveRequest(options, router, request, response);
  };
  const server: Server =
    tls === undefined
      ? createHttpServer(timeouts, onRequest)
      : createHttpsServer({ key: tls.privateKeyPem, cert: tls.certificatePem, ...timeouts }, onRequest);
  // Long polls answer after up to MAX_CALL_WAIT_MS; keep idle connections for reuse a while.
  server.keepAliveTimeout = 75_000;
  // Only the operator calls an agent, with one connection per call in flight (a rollout of many
  // replicas long-polls many at once): a generous total cap, the same per client address.
  capConnections(server, { maxConnections: 1024, maxConnectionsPerClient: 1024 });
  return {
    listen: (address) => listenOn(server, address, tls !== undefined),
    close: () => {
      closing = true;
      return closeServer(server);
    },
  };
}

function listenOn(server: Server, address: { host: string; port: number }, secure: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen({ host: address.host, port: address.port }, () => {
      server.off('error', onError);
      const bound = server.address() as AddressInfo;
      // As the operator would dial it: a wildcard address through loopback.
      const host =
        bound.address === '0.0.0.0'
          ? '127.0.0.1'
          : bound.family === 'IPv6'
            ? `[${bound.address}]`
            : bound.address;
      resolve(`${secure ? 'https' : 'http'}://${host}:${bound.port}`);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeIdleConnections();
  });
}

async function serveRequest(
  options: AgentServerOptions,
  router: AgentRouter,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const url = request.url ?? '/';
  try {
    if (!authorized(options, request, response, url)) return;
    const path = url.split('?', 1)[0] ?? url;
    if ((request.method === 'GET' || request.method === 'HEAD') && path === '/healthz') {
      sendJson(response, 200, { ok: true });
      return;
    }
    const match = router.match(request.method ?? '', path);
    if (match === undefined) {
      sendJson(response, 404, {
        code: 'ERR_BAD_REQUEST',
        message: `bad request: no agent call at ${request.method} ${url}`,
      } satisfies WireError);
      return;
    }
    await answerRoute(options, match, request, response);
  } catch (error) {
    sendError(options.log, error, url, response);
  }
}

/** Whether the request carries the token; answers 401 (and says so in the log) when not. */
function authorized(
  options: AgentServerOptions,
  request: IncomingMessage,
  response: ServerResponse,
  url: string,
): boolean {
  if (url === '/healthz') return true;
  if (tokenMatches(options.token, request.headers.authorization)) return true;
  options.log.warn(
    { method: request.method, url, remote: request.socket.remoteAddress },
    'agent request without a valid token',
  );
  sendJson(response, 401, {
    code: 'ERR_AGENT_UNAUTHORIZED',
    message: 'missing or wrong agent token (send Authorization: Bearer <token>)',
  } satisfies WireError);
  return false;
}

async function answerRoute(
  options: AgentServerOptions,
  { route, params }: RouteMatch,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const input = { params, body: await readRequestBody(request, AGENT_BODY_LIMIT_BYTES) };
  const call = parseAgentCall(route.call, route.callParams(input));
  route.check?.(call, input);
  const result = await invokeAgentCall(options.agent, call);
  if (isLogStream(call, result)) {
    // Written with backpressure, ended when the operator hangs up.
    const gone = new AbortController();
    response.once('close', () => gone.abort());
    response.writeHead(200, { 'content-type': NDJSON_CONTENT_TYPE, 'cache-control': 'no-store' });
    await writeLogStream(response, result, gone.signal);
    return;
  }
  if (result === undefined) {
    response.writeHead(204).end();
    return;
  }
  sendJson(response, 200, result);
}

function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const payload = JSON.stringify(body);
  response.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
  });
  response.end(payload);
}

function sendError(log: Logger, error: unknown, url: string, response: ServerResponse): void {
  if (response.headersSent) {
    // A stream already under way has no status left to change: cut it, so the client sees it end early.
    log.error({ err: error, url }, 'agent request failed');
    response.destroy();
    return;
  }
  if (error instanceof HttpRefusal) {
    // The body was not read to its end: the connection cannot carry another request.
    sendJson(response, error.status, error.wire, { connection: 'close' });
    return;
  }
  if (error instanceof BerthError) {
    if (error.httpStatus >= 500) log.error({ err: error, url }, 'agent request failed');
    sendJson(response, error.httpStatus, error.toWire());
    return;
  }
  const message = error instanceof Error ? error.message : String(error);
  log.error({ err: error, url }, 'agent request failed');
  sendJson(response, 500, { code: 'ERR_INTERNAL', message: `agent error: ${message}` } satisfies WireError);
}
