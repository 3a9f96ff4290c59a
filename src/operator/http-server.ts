import Fastify, { type FastifyInstance } from 'fastify';
import { isHealthy } from './conditions.js';
import type { OperatorMetrics } from './metrics.js';
import type { Operator } from './operator.js';

/**
 * What `berth run --listen ADDR` serves: health with the operator's conditions and Prometheus
 * metrics. The operator API and webhooks are added by their own modules on this same instance.
 * /healthz answers 200 while the operator is Ready or Reconciling and 503 when it is Stalled.
 */
export function createOperatorServer(args: {
  operator: Operator;
  metrics: OperatorMetrics;
}): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  app.get('/healthz', async (_request, reply) => {
    const { operator } = args;
    const conditions = operator.conditions;
    const healthy = isHealthy(conditions);
    const last = operator.lastResult;
    reply.code(healthy ? 200 : 503);
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
  });
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', args.metrics.registry.contentType);
    return args.metrics.registry.metrics();
  });
  return app;
}
