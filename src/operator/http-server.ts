import Fastify, { type FastifyInstance } from 'fastify';
import type { OperatorMetrics } from './metrics.js';
import type { Operator } from './operator.js';

/**
 * What `berth run --listen ADDR` serves: liveness and Prometheus metrics. The operator API and
 * webhooks are added by their own modules on this same instance.
 */
export function createOperatorServer(args: {
  operator: Operator;
  metrics: OperatorMetrics;
}): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
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
