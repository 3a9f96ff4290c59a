import Fastify, { type FastifyInstance } from 'fastify';
import { capConnections } from '../core/connection-cap.js';
import { isHealthy } from './conditions.js';
import type { EventBus } from './event-bus.js';
import { registerEventRoutes } from './event-routes.js';
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
 * What `berth run --listen ADDR` serves: health with the operator's conditions and Prometheus
 * metrics. The operator API and webhooks are added by their own modules on this same instance.
 * /healthz is liveness: 200 while the process serves, whatever its conditions (a liveness probe
 * must not restart the operator over a bad commit); the body says `stalled` and why. /readyz
 * answers 200 while the operator is Ready or Reconciling and 503 when it is Stalled, for alerts
 * and load balancers that want "is the cluster following git".
 */
export function createOperatorServer(args: {
  operator: Operator;
  metrics: OperatorMetrics;
  /** Served at /v1/events (event-routes.ts). */
  events?: EventBus;
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
  const health = (): Record<string, unknown> & { status: 'ok' | 'stalled' } => {
    const { operator } = args;
    const conditions = operator.conditions;
    const healthy = isHealthy(conditions);
    const last = operator.lastResult;
    return {
      status: healthy ? 'ok' : 'stalled',
      conditions,
      lastReconcile: last
        ? {
            id: last.reconcileId,
            outcome: last.outcome,
            head: last.headRevision,
            target: last.targetRevision,
          }
        : null,
      lastError: operator.lastError?.message ?? null,
    };
  };
  app.get('/healthz', async () => health());
  app.get('/readyz', async (_request, reply) => {
    const body = health();
    reply.code(body.status === 'ok' ? 200 : 503);
    return body;
  });
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', args.metrics.registry.contentType);
    return args.metrics.registry.metrics();
  });
  if (args.events) registerEventRoutes(app, args.events);
  return app;
}
