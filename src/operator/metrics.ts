import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ObservedState } from '../api/types.js';
import type { JobRecord } from '../plan/job-plan.js';
import type { Plan } from '../plan/types.js';
import { CONDITION_TYPES, type Condition } from './conditions.js';
import type { ReconcileResult } from './reconcile.js';

/** The operator's Prometheus metrics, on a registry of its own (served at GET /metrics). */
export class OperatorMetrics {
  readonly registry = new Registry();
  private readonly reconciles = new Counter({
    name: 'berth_reconciles_total',
    help: 'Reconciles run, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  private readonly reconcileSeconds = new Histogram({
    name: 'berth_reconcile_duration_seconds',
    help: 'Time one reconcile took, rollout included',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });
  private readonly rollouts = new Counter({
    name: 'berth_rollouts_total',
    help: 'Rollouts, by outcome (succeeded, failed, rolled back, interrupted)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  private readonly replicas = new Gauge({
    name: 'berth_service_replicas',
    help: 'Replicas per service: desired, running and healthy',
    labelNames: ['namespace', 'service', 'state'] as const,
    registers: [this.registry],
  });
  private readonly revision = new Gauge({
    name: 'berth_revision_info',
    help: 'The branch-head and the deployed (last good) revision, as labels; value 1',
    labelNames: ['kind', 'revision'] as const,
    registers: [this.registry],
  });

  private readonly condition = new Gauge({
    name: 'berth_condition',
    help: "The operator's conditions (Ready, Reconciling, Stalled): 1 for the status each one has, 0 for the other",
    labelNames: ['type', 'status'] as const,
    registers: [this.registry],
  });

  private readonly webhookDeliveries = new Counter({
    name: 'berth_webhook_deliveries_total',
    help: 'Push webhook deliveries, by provider and result (triggered, ignored, unauthorized, replayed, ...)',
    labelNames: ['provider', 'result'] as const,
    registers: [this.registry],
  });

  private readonly jobRuns = new Counter({
    name: 'berth_job_runs_total',
    help: 'Finished runs of Jobs, by outcome (succeeded, failed, lost: its node went down)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  private readonly jobLastSuccess = new Gauge({
    name: 'berth_job_last_success_timestamp_seconds',
    help: 'When each Job last succeeded (its completions all done), in Unix seconds; from the state dir',
    labelNames: ['namespace', 'job'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({
      register: this.registry,
      prefix: 'berth_process_',
      // The event-loop lag histogram samples with a timer at this period; prom-client's 10 ms
      // wakes an idle operator 100 times a second (half a percent of a core for one metric).
      eventLoopMonitoringPrecision: 100,
    });
  }

  recordReconcile(result: ReconcileResult | null, seconds: number, error: boolean): void {
    this.reconciles.inc({ outcome: error ? 'error' : (result?.outcome ?? 'error') });
    this.reconcileSeconds.observe(seconds);
    if (result?.rollout) {
      this.rollouts.inc({
        outcome:
          result.outcome === 'succeeded' || result.outcome === 'unchanged' ? 'succeeded' : result.outcome,
      });
    }
  }

  recordConditions(conditions: readonly Condition[]): void {
    for (const type of CONDITION_TYPES) {
      const holds = conditions.some((c) => c.type === type && c.status === 'True');
      this.condition.set({ type, status: 'True' }, holds ? 1 : 0);
      this.condition.set({ type, status: 'False' }, holds ? 0 : 1);
    }
  }

  recordJobRun(outcome: 'succeeded' | 'failed' | 'lost'): void {
    this.jobRuns.inc({ outcome });
  }

  /** From the Job records of state.json, so the times survive an operator restart. */
  recordJobSuccesses(records: Readonly<Record<string, JobRecord>>): void {
    const newest = new Map<string, { namespace: string; job: string; at: number }>();
    for (const record of Object.values(records)) {
      if (record.phase !== 'succeeded' || record.finishedAt === null) continue;
      const at = Date.parse(record.finishedAt);
      const key = `${record.namespace}/${record.name}`;
      if ((newest.get(key)?.at ?? -Infinity) < at)
        newest.set(key, { namespace: record.namespace, job: record.name, at });
    }
    this.jobLastSuccess.reset();
    for (const { namespace, job, at } of newest.values())
      this.jobLastSuccess.set({ namespace, job }, at / 1000);
  }

  recordWebhookDelivery(provider: string, result: string): void {
    this.webhookDeliveries.inc({ provider, result });
  }

  recordRevisions(head: string | null, deployed: string | null): void {
    this.revision.reset();
    if (head) this.revision.set({ kind: 'head', revision: head }, 1);
    if (deployed) this.revision.set({ kind: 'deployed', revision: deployed }, 1);
  }

  recordReplicas(plan: Plan | null, observed: ObservedState): void {
    this.replicas.reset();
    const counts = new Map<string, { desired: number; running: number; healthy: number }>();
    const entry = (ns: string, name: string): { desired: number; running: number; healthy: number } => {
      const key = `${ns}/${name}`;
      const value = counts.get(key) ?? { desired: 0, running: 0, healthy: 0 };
      counts.set(key, value);
      return value;
    };
    for (const s of plan?.services ?? []) entry(s.namespace, s.name).desired = s.desiredReplicas;
    for (const node of observed.nodes) {
      for (const r of node.replicas) {
        const e = entry(r.namespace, r.service);
        if (r.state === 'running') e.running += 1;
        if (r.state === 'running' && (r.health === 'healthy' || r.health === 'none')) e.healthy += 1;
      }
    }
    for (const [key, value] of counts) {
      const [namespace = '', service = ''] = key.split('/');
      for (const state of ['desired', 'running', 'healthy'] as const) {
        this.replicas.set({ namespace, service, state }, value[state]);
      }
    }
  }
}
