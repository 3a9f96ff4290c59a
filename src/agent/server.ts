/**
 * The agent's HTTP API: a NodeAgent served to the operator. Every route but /healthz needs the
 * agent token (`Authorization: Bearer <token>`); errors travel as `{ code, message, data }` with
 * the error's HTTP status, and client.ts rebuilds them on the other side.
 *
 *   GET    /healthz                       liveness, unauthenticated
 *   GET    /v1/node                       NodeSnapshot
 *   PUT    /v1/replicas/:name             ReplicaRequest -> ObservedReplica (idempotent)
 *   POST   /v1/replicas/:name/await       { timeoutMs }  -> ReplicaWaitResult (long poll)
 *   POST   /v1/replicas/:name/watch       { durationMs } -> ReplicaWaitResult (long poll)
 *   DELETE /v1/replicas/:name             204
 *   PUT    /v1/mesh                       { table, drainTimeoutMs } -> 204 once drained
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { BerthError, type WireError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { MeshRoutes, NodeAgent, ReplicaRequest } from '../api/types.js';
import { AGENT_BODY_LIMIT_BYTES, MAX_LONG_POLL_MS } from './protocol.js';

export interface AgentServerOptions {
  agent: NodeAgent;
  token: string;
  log: Logger;
}

const nameParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$' } },
} as const;

// Type lists, not anyOf: Fastify's validator coerces types, and inside anyOf it would turn a
// null command into [""] while trying the array branch first.
const stringArrayOrNull = { type: ['array', 'null'], items: { type: 'string' } } as const;
const stringOrNull = { type: ['string', 'null'] } as const;

/**
 * The shape of a ReplicaRequest, checked at the door. Fastify's validator drops properties a
 * schema does not list (removeAdditional), so a newer operator's extra fields do not break an
 * older agent.
 */
const replicaRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'name',
    'namespace',
    'service',
    'slot',
    'specHash',
    'revision',
    'image',
    'command',
    'args',
    'env',
    'ports',
    'files',
    'healthcheck',
    'limits',
    'restart',
    'stopGracePeriodMs',
    'user',
    'workingDir',
    'init',
    'specSummary',
  ],
  properties: {
    name: { type: 'string', minLength: 1 },
    namespace: { type: 'string', minLength: 1 },
    service: { type: 'string', minLength: 1 },
    slot: { type: 'string', minLength: 1 },
    specHash: { type: 'string', minLength: 1 },
    revision: { type: 'string' },
    image: { type: 'string', minLength: 1 },
    command: stringArrayOrNull,
    args: stringArrayOrNull,
    env: { type: 'object', additionalProperties: { type: 'string' } },
    ports: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['target', 'protocol'],
        properties: {
          target: { type: 'integer', minimum: 1, maximum: 65535 },
          protocol: { enum: ['tcp', 'udp'] },
        },
      },
    },
    files: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['target', 'mode', 'uid', 'gid', 'contentBase64', 'secret'],
        properties: {
          target: { type: 'string', minLength: 2 },
          mode: { type: 'integer', minimum: 0, maximum: 0o7777 },
          uid: { type: 'integer', minimum: 0 },
          gid: { type: 'integer', minimum: 0 },
          contentBase64: { type: 'string' },
          secret: { type: 'boolean' },
        },
      },
    },
    healthcheck: {
      type: ['object', 'null'],
      required: ['probe', 'intervalMs', 'timeoutMs', 'retries', 'startPeriodMs'],
      properties: {
        probe: {
          type: 'object',
          required: ['type'],
          properties: {
            type: { enum: ['http', 'tcp', 'exec'] },
            port: { type: 'integer', minimum: 1, maximum: 65535 },
            path: { type: 'string' },
            expectStatus: { type: 'array', items: { type: 'integer' } },
            command: { type: 'array', items: { type: 'string' } },
          },
        },
        intervalMs: { type: 'integer', minimum: 1 },
        timeoutMs: { type: 'integer', minimum: 1 },
        retries: { type: 'integer', minimum: 0 },
        startPeriodMs: { type: 'integer', minimum: 0 },
      },
    },
    limits: {
      type: 'object',
      required: ['nanoCpus', 'memoryBytes'],
      properties: { nanoCpus: { type: 'integer', minimum: 0 }, memoryBytes: { type: 'integer', minimum: 0 } },
    },
    restart: {
      type: 'object',
      required: ['condition', 'maxAttempts'],
      properties: {
        condition: { enum: ['any', 'on-failure', 'none'] },
        maxAttempts: { type: 'integer', minimum: 0 },
      },
    },
    stopGracePeriodMs: { type: 'integer', minimum: 0 },
    user: stringOrNull,
    workingDir: stringOrNull,
    init: { type: 'boolean' },
    specSummary: { type: 'object' },
  },
} as const;

const durationBody = (field: 'timeoutMs' | 'durationMs') =>
  ({
    type: 'object',
    additionalProperties: false,
    required: [field],
    properties: { [field]: { type: 'integer', minimum: 1, maximum: MAX_LONG_POLL_MS } },
  }) as const;

/** Constant-time token check: both sides are hashed first so their lengths always match. */
export function tokenMatches(expected: string, authorization: string | undefined): boolean {
  const presented = authorization?.startsWith('Bearer ') ? authorization.slice('Bearer '.length) : '';
  const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();
  return timingSafeEqual(digest(expected), digest(presented));
}

export function createAgentServer(options: AgentServerOptions): FastifyInstance {
  const { agent, token, log } = options;
  if (token.length === 0) throw new BerthError('ERR_AGENT_UNAUTHORIZED', 'the agent needs a non-empty token');

  const app = Fastify({
    // berth's own logger writes the lines that matter (refused tokens, failures), with context.
    logger: false,
    bodyLimit: AGENT_BODY_LIMIT_BYTES,
    // Long polls answer after up to MAX_LONG_POLL_MS; keep idle connections for reuse a while.
    keepAliveTimeout: 75_000,
    // Slow clients are cut off: headers within 10 s, the whole request (body too) within 60 s.
    // Neither counts the time the agent takes to answer, so long polls are unaffected.
    requestTimeout: 60_000,
    http: { headersTimeout: 10_000, connectionsCheckingInterval: 1_000 },
  });

  app.addHook('onRequest', async (request, reply) => {
    if (request.url === '/healthz') return;
    if (!tokenMatches(token, request.headers.authorization)) {
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
  });

  app.setErrorHandler((error: FastifyError | BerthError | Error, request, reply) => {
    if (error instanceof BerthError) {
      if (error.httpStatus >= 500) log.error({ err: error, url: request.url }, 'agent request failed');
      return reply.code(error.httpStatus).send(error.toWire());
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.validation !== undefined || fastifyError.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
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
    if (
      typeof fastifyError.statusCode === 'number' &&
      fastifyError.statusCode >= 400 &&
      fastifyError.statusCode < 500
    ) {
      return reply
        .code(fastifyError.statusCode)
        .send({ code: 'ERR_BAD_REQUEST', message: error.message } satisfies WireError);
    }
    log.error({ err: error, url: request.url }, 'agent request failed');
    return reply
      .code(500)
      .send({ code: 'ERR_INTERNAL', message: `agent error: ${error.message}` } satisfies WireError);
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      code: 'ERR_NOT_SUPPORTED',
      message: `no route ${request.method} ${request.url}`,
    } satisfies WireError),
  );

  app.get('/healthz', async () => ({ ok: true }));

  app.get('/v1/node', async () => agent.snapshot());

  app.put<{ Params: { name: string }; Body: ReplicaRequest }>(
    '/v1/replicas/:name',
    { schema: { params: nameParams, body: replicaRequestSchema } },
    async (request) => {
      if (request.body.name !== request.params.name) {
        throw new BerthError(
          'ERR_BAD_REQUEST',
          `replica name in the body (${request.body.name}) differs from the URL (${request.params.name})`,
        );
      }
      return agent.ensureReplica(request.body);
    },
  );

  app.post<{ Params: { name: string }; Body: { timeoutMs: number } }>(
    '/v1/replicas/:name/await',
    { schema: { params: nameParams, body: durationBody('timeoutMs') } },
    async (request) => agent.awaitReplica(request.params.name, { timeoutMs: request.body.timeoutMs }),
  );

  app.post<{ Params: { name: string }; Body: { durationMs: number } }>(
    '/v1/replicas/:name/watch',
    { schema: { params: nameParams, body: durationBody('durationMs') } },
    async (request) => agent.watchReplica(request.params.name, { durationMs: request.body.durationMs }),
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/replicas/:name',
    { schema: { params: nameParams } },
    async (request, reply) => {
      await agent.removeReplica(request.params.name);
      return reply.code(204).send();
    },
  );

  app.put<{ Body: { table: MeshRoutes; drainTimeoutMs: number } }>(
    '/v1/mesh',
    { schema: { body: meshBodySchema } },
    async (request, reply) => {
      await agent.setMeshRoutes(request.body.table, { drainTimeoutMs: request.body.drainTimeoutMs });
      return reply.code(204).send();
    },
  );

  return app;
}

/** Service and namespace names end up in DNS answers: labels only. */
const DNS_LABEL = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';

const backendsSchema = {
  type: 'array',
  items: {
    type: 'object',
    required: ['id', 'host', 'port'],
    properties: {
      id: { type: 'string', minLength: 1 },
      host: { type: 'string', minLength: 1 },
      port: { type: 'integer', minimum: 1, maximum: 65535 },
    },
  },
} as const;

const meshBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['table', 'drainTimeoutMs'],
  properties: {
    drainTimeoutMs: { type: 'integer', minimum: 0, maximum: MAX_LONG_POLL_MS },
    table: {
      type: 'object',
      required: ['version', 'routes'],
      properties: {
        version: { type: 'number' },
        routes: {
          type: 'array',
          items: {
            type: 'object',
            required: ['service', 'published', 'protocol', 'backends'],
            properties: {
              service: { type: 'string' },
              published: { type: 'integer', minimum: 1, maximum: 65535 },
              protocol: { enum: ['tcp'] },
              appProtocol: { enum: ['tcp', 'http'] },
              backends: backendsSchema,
            },
          },
        },
        services: {
          type: 'array',
          items: {
            type: 'object',
            required: ['namespace', 'name', 'ports'],
            properties: {
              namespace: { type: 'string', pattern: DNS_LABEL },
              name: { type: 'string', pattern: DNS_LABEL },
              ports: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['target', 'backends'],
                  properties: {
                    target: { type: 'integer', minimum: 1, maximum: 65535 },
                    appProtocol: { enum: ['tcp', 'http'] },
                    backends: backendsSchema,
                  },
                },
              },
            },
          },
        },
      },
    },
  },
} as const;
