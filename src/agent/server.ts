/**
 * The agent's HTTP API: a NodeAgent served to the operator. Every route but /healthz needs the
 * agent token (`Authorization: Bearer <token>`); errors travel as `{ code, message, data }` with
 * the error's HTTP status, and client.ts rebuilds them on the other side. Each route is one agent
 * call (agent-routes.ts), checked against the call's schema in src/api/agent-calls.ts like every
 * other transport's calls.
 *
 * With `tls` it serves HTTPS with the agent's self-signed certificate, whose fingerprint the
 * operator pins (agent-token.ts); `berth agent` serves plain HTTP on loopback addresses only.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { capConnections } from '../core/connection-cap.js';
import { BerthError, type WireError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { invokeAgentCall, isLogStream, parseAgentCall } from '../api/agent-calls.js';
import { NDJSON_CONTENT_TYPE, writeLogStream } from '../api/log-stream.js';
import type { NodeAgent } from '../api/types.js';
import { AGENT_ROUTES, type AgentRoute } from './agent-routes.js';
import { AGENT_BODY_LIMIT_BYTES } from './protocol.js';

export interface AgentServerOptions {
  agent: NodeAgent;
  /** The agent's own secret: what the operator must send as `Bearer`. */
  token: string;
  log: Logger;
  /** Serve HTTPS with this key and certificate; plain HTTP without. */
  tls?: { privateKeyPem: string; certificatePem: string };
}

/** Constant-time token check: both sides are hashed first so their lengths always match. */
export function tokenMatches(expected: string, authorization: string | undefined): boolean {
  const presented = authorization?.startsWith('Bearer ') ? authorization.slice('Bearer '.length) : '';
  const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();
  return timingSafeEqual(digest(expected), digest(presented));
}

export function createAgentServer(options: AgentServerOptions): FastifyInstance {
  const { agent, token, log, tls } = options;
  if (token.length === 0) throw new BerthError('ERR_AGENT_UNAUTHORIZED', 'the agent needs a non-empty token');
  const serverTimeouts = { headersTimeout: 10_000, connectionsCheckingInterval: 1_000 };

  const app = Fastify({
    // berth's own logger writes the lines that matter (refused tokens, failures), with context.
    logger: false,
    bodyLimit: AGENT_BODY_LIMIT_BYTES,
    // Long polls answer after up to MAX_CALL_WAIT_MS; keep idle connections for reuse a while.
    keepAliveTimeout: 75_000,
    // Slow clients are cut off: headers within 10 s, the whole request (body too) within 60 s.
    // Neither counts the time the agent takes to answer, so long polls are unaffected.
    requestTimeout: 60_000,
    // Fastify hands `https` alone to https.createServer, so the timeouts go in there too.
    ...(tls === undefined
      ? { http: serverTimeouts }
      : { https: { key: tls.privateKeyPem, cert: tls.certificatePem, ...serverTimeouts } }),
  }) as unknown as FastifyInstance;
  // Only the operator calls an agent, with one connection per call in flight (a rollout of many
  // replicas long-polls many at once): a generous total cap, the same per client address.
  capConnections(app.server, { maxConnections: 1024, maxConnectionsPerClient: 1024 });
  app.addHook('onRequest', (request, reply) => refuseWithoutToken(token, log, request, reply));
  app.setErrorHandler((error: FastifyError | BerthError | Error, request, reply) =>
    sendError(log, error, request, reply),
  );
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      code: 'ERR_BAD_REQUEST',
      message: `bad request: no agent call at ${request.method} ${request.url}`,
    } satisfies WireError),
  );
  app.get('/healthz', async () => ({ ok: true }));
  for (const route of AGENT_ROUTES) {
    app.route({
      method: route.method,
      url: route.url,
      handler: async (request, reply) => answerRoute(agent, route, request, reply),
    });
  }
  return app;
}

async function answerRoute(
  agent: NodeAgent,
  route: AgentRoute,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<unknown> {
  const input = { params: request.params as Record<string, string>, body: request.body };
  const call = parseAgentCall(route.call, route.callParams(input));
  route.check?.(call, input);
  const result = await invokeAgentCall(agent, call);
  if (isLogStream(call, result)) {
    // Streamed past fastify: written with backpressure, ended when the operator hangs up.
    reply.hijack();
    const gone = new AbortController();
    reply.raw.once('close', () => gone.abort());
    reply.raw.writeHead(200, { 'content-type': NDJSON_CONTENT_TYPE, 'cache-control': 'no-store' });
    await writeLogStream(reply.raw, result, gone.signal);
    return reply;
  }
  if (result === undefined) return reply.code(204).send();
  return result;
}

async function refuseWithoutToken(
  token: string,
  log: Logger,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  if (request.url === '/healthz') return;
  if (tokenMatches(token, request.headers.authorization)) return;
  log.warn(
    { method: request.method, url: request.url, remote: request.ip },
    'agent request without a valid token',
  );
  const body: WireError = {
    code: 'ERR_AGENT_UNAUTHORIZED',
    message: 'missing or wrong agent token (send Authorization: Bearer <token>)',
  };
  await reply.code(401).send(body);
}

function sendError(
  log: Logger,
  error: FastifyError | BerthError | Error,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  if (error instanceof BerthError) {
    if (error.httpStatus >= 500) log.error({ err: error, url: request.url }, 'agent request failed');
    return reply.code(error.httpStatus).send(error.toWire());
  }
  const fastifyError = error as FastifyError;
  if (fastifyError.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
    return reply
      .code(400)
      .send({ code: 'ERR_BAD_REQUEST', message: `bad request: ${error.message}` } satisfies WireError);
  }
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return reply.code(413).send({
      code: 'ERR_BAD_REQUEST',
      message: `request body larger than ${AGENT_BODY_LIMIT_BYTES} bytes`,
    } satisfies WireError);
  }
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return reply.code(status).send({ code: 'ERR_BAD_REQUEST', message: error.message } satisfies WireError);
  }
  log.error({ err: error, url: request.url }, 'agent request failed');
  return reply
    .code(500)
    .send({ code: 'ERR_INTERNAL', message: `agent error: ${error.message}` } satisfies WireError);
}
