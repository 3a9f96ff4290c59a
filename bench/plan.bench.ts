/**
 * npm run bench:plan — computePlan over 1000 services (3 replicas each) across 100 nodes.
 * Target (PRODUCT.md): under 100 ms. Prints the median of several runs for two cases: a first
 * deploy (everything to create) and a steady state (everything already running).
 */
import type { NodeSnapshot, ObservedReplica } from '../src/api/types.js';
import type { DesiredState, ServiceSpec } from '../src/manifests/types.js';
import { computePlan } from '../src/plan/compute-plan.js';

const SERVICES = 1000;
const NODES = 100;

function spec(i: number): ServiceSpec {
  const policy = {
    parallelism: 1,
    delayMs: 0,
    order: 'start-first' as const,
    monitorMs: 5000,
    failureAction: 'rollback' as const,
    maxFailureRatio: 0,
    progressDeadlineMs: 600_000,
  };
  return {
    kind: 'Service',
    name: `svc-${i}`,
    namespace: 'default',
    labels: {},
    image: `app:${i % 7}`,
    command: null,
    args: null,
    env: { INDEX: String(i) },
    envFrom: [],
    mode: 'replicated',
    replicas: 3,
    ports: [{ target: 8080, published: null, protocol: 'tcp', appProtocol: 'tcp' }],
    configs: [],
    secrets: [],
    healthcheck: null,
    resources: {
      limits: { nanoCpus: 0, memoryBytes: 0 },
      reservations: { nanoCpus: 1e7, memoryBytes: 16 * 2 ** 20 },
    },
    placement: { constraints: [], spread: 'node.labels.zone', maxPerNode: 0 },
    update: policy,
    rollback: policy,
    restart: { condition: 'any', maxAttempts: 0 },
    stopGracePeriodMs: 10_000,
    user: null,
    readOnlyRootFilesystem: false,
    capabilities: { drop: [], add: [] },
    workingDir: null,
    init: false,
    volumes: [],
    tmpfs: [],
    volumeReclaim: 'retain',
  };
}

function nodes(replicas: Map<string, ObservedReplica[]>): NodeSnapshot[] {
  return Array.from({ length: NODES }, (_, i) => ({
    name: `node-${String(i).padStart(3, '0')}`,
    address: `127.0.1.${i + 1}`,
    labels: { zone: `z${i % 3}` },
    capacity: { nanoCpus: 16e9, memoryBytes: 64 * 2 ** 30 },
    engineVersion: '27',
    status: 'ready' as const,
    images: [],
    replicas: replicas.get(`node-${String(i).padStart(3, '0')}`) ?? [],
  }));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function time(fn: () => void, runs = 7): number {
  fn(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

const desired: DesiredState = {
  revision: 'bench',
  services: Array.from({ length: SERVICES }, (_, i) => spec(i)),
  configs: [],
  secrets: [],
  namespaces: [],
};
const empty = nodes(new Map());
const first = computePlan(desired, { nodes: empty });
const placed = new Map<string, ObservedReplica[]>();
for (const s of first.services) {
  for (const step of s.batches.flat()) {
    if (step.action !== 'create') continue;
    const r: ObservedReplica = {
      name: step.name,
      id: step.name,
      node: step.node,
      namespace: s.namespace,
      service: s.name,
      slot: step.slot,
      specHash: s.specHash!,
      revision: 'bench',
      state: 'running',
      health: 'healthy',
      healthDetail: null,
      exitCode: null,
      restartCount: 0,
      createdAt: '2026-01-01T00:00:00Z',
      startedAt: null,
      ports: [],
      specSummary: null,
    };
    placed.set(step.node, [...(placed.get(step.node) ?? []), r]);
  }
}
const steady = nodes(placed);
const check = computePlan(desired, { nodes: steady });
if (check.hasChanges) throw new Error('steady state should plan no changes');

const firstMs = time(() => computePlan(desired, { nodes: empty }));
const steadyMs = time(() => computePlan(desired, { nodes: steady }));
console.log(`plan: ${SERVICES} services x 3 replicas over ${NODES} nodes`);
console.log(`first deploy (3000 creates): median ${firstMs.toFixed(1)} ms`);
console.log(`steady state (3000 kept):    median ${steadyMs.toFixed(1)} ms`);
console.log(`target 100 ms: ${Math.max(firstMs, steadyMs) < 100 ? 'met' : 'NOT met'}`);
console.log(`ratio=${(Math.max(firstMs, steadyMs) / 100).toFixed(3)}`);
