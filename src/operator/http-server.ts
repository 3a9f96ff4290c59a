import Fastify, { type FastifyInstance } from 'fastify';
import { isHealthy } from './conditions.js';
import type { OperatorMetrics } from './metrics.js';
import type { Operator } from './operator.js';

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
}): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
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
  return app;
}
