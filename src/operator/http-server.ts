import type { Server } from 'node:http';

import Fastify, { type FastifyInstance } from 'fastify';
import type { OperatorMetrics } from './metrics.js';
import type { Operator } from './operator.js';

/**
 * How long and how much a client of the operator's port may take. Slow or idle clients are cut
 * off so they cannot pin sockets, memory or file descriptors; the health check, the metrics and
 * webhooks answer in milliseconds, so the bounds are generous for honest clients.
 */
export interface HttpServerLimits {
  /** Time to send the request headers (slowloris), from the connection's start (10 s). */
  headersTimeoutMs: number;
  /** Time to send the whole request, body included (30 s). */
  requestTimeoutMs: number;
  /** An idle kept-alive connection is closed after this (5 s, Node's default). */
  keepAliveTimeoutMs: number;
  /** A socket silent this long is closed, whatever it is doing (60 s). */
  idleTimeoutMs: number;
  /** How often Node checks the two timeouts above: they are enforced to within this (1 s). */
  timeoutCheckIntervalMs: number;
  /** Largest request body (1 MiB; webhooks set their own, also 1 MiB). */
  bodyLimit: number;
  /** Open connections at once (256): past it, new connections are closed at once. */
  maxConnections: number;
  /**
   * Open connections at once from one client address (32): one client cannot take every slot,
   * so /healthz keeps answering the others.
   */
  maxConnectionsPerClient: number;
}

export const DEFAULT_HTTP_SERVER_LIMITS: HttpServerLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  timeoutCheckIntervalMs: 1_000,
  bodyLimit: 1024 * 1024,
  maxConnections: 256,
  maxConnectionsPerClient: 32,
};

/**
 * What `berth run --listen ADDR` serves: liveness and Prometheus metrics. The operator API and
 * webhooks are added by their own modules on this same instance.
 */
export function createOperatorServer(args: {
  operator: Operator;
  metrics: OperatorMetrics;
  limits?: Partial<HttpServerLimits>;
}): FastifyInstance {
  const limits = { ...DEFAULT_HTTP_SERVER_LIMITS, ...args.limits };
  const app = Fastify({
    logger: false,
    bodyLimit: limits.bodyLimit,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      connectionsCheckingInterval: limits.timeoutCheckIntervalMs,
    },
  });
  capConnections(app.server, limits);
  app.get('/healthz', async () => {
    const last = args.operator.lastResult;
    return {
      status: 'ok',
      lastReconcile: last
        ? {
            id: last.reconcileId,
            outcome: last.outcome,
            head: last.headRevision,
            target: last.targetRevision,
          }
        : null,
      lastError: args.operator.lastError?.message ?? null,
    };
  });
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', args.metrics.registry.contentType);
    return args.metrics.registry.metrics();
  });
  return app;
}

/** Closes a new connection at once when the server, or its client's address, has too many open. */
function capConnections(server: Server, limits: HttpServerLimits): void {
  server.maxConnections = limits.maxConnections;
  const open = new Map<string, number>();
  server.on('connection', (socket) => {
    const client = socket.remoteAddress ?? '';
    const count = (open.get(client) ?? 0) + 1;
    if (count > limits.maxConnectionsPerClient) {
      socket.destroy();
      return;
    }
    open.set(client, count);
    socket.once('close', () => {
      const left = (open.get(client) ?? 1) - 1;
      if (left > 0) open.set(client, left);
      else open.delete(client);
    });
  });
}
