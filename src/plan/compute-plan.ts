import type { NodeSnapshot, ObservedReplica, ObservedState } from '../api/types.js';
import type { DesiredState, ServiceSpec, UpdatePolicySpec } from '../manifests/types.js';
import { diffFields } from './field-diff.js';
import { placeServices, type CurrentSlots, type ServicePlacement } from './placement.js';
import { compareStrings, replicaName, serviceKey } from './replica-name.js';
import { planReplicaTemplate, replicaVolumes, type ReplicaTemplate } from './replica-request.js';
import { specHashOf, summariseService } from './spec-summary.js';
import type {
  Plan,
  PlannedReplicaRequest,
  ReplicaRef,
  ReplicaStep,
  ServiceChange,
  ServicePlan,
} from './types.js';

/** A replica that can serve: running and not failing its health check. */
export function isAlive(r: ObservedReplica): boolean {
  return r.state === 'running' && r.health !== 'unhealthy';
}

function refOf(r: ObservedReplica): ReplicaRef {
  return { name: r.name, node: r.node, slot: r.slot, specHash: r.specHash, revision: r.revision };
}

/** Alive replicas first, then the current hash, then the newest: the best one to keep or replace. */
function preference(hash: string | null): (a: ObservedReplica, b: ObservedReplica) => number {
  return (a, b) =>
    Number(isAlive(b)) - Number(isAlive(a)) ||
    Number(b.specHash === hash) - Number(a.specHash === hash) ||
    compareStrings(b.createdAt, a.createdAt) ||
    compareStrings(a.name, b.name);
}

function groupReplicas(nodes: NodeSnapshot[]): Map<string, ObservedReplica[]> {
  const byService = new Map<string, ObservedReplica[]>();
  for (const node of nodes) {
    // A node that is down cannot be asked to do anything; its replicas are handled by the
    // failure path (they are rescheduled because the node is not eligible). A draining node's
    // replicas stay visible, so they are replaced elsewhere (start-first) before they stop.
    if (node.status === 'down') continue;
    for (const r of node.replicas) {
      const key = serviceKey(r.namespace, r.service);
      byService.set(key, [...(byService.get(key) ?? []), r]);
    }
  }
  return byService;
}

function currentSlots(byService: Map<string, ObservedReplica[]>, hashes: Map<string, string>): CurrentSlots {
  const slots: CurrentSlots = new Map();
  for (const [key, replicas] of byService) {
    const perSlot = new Map<string, string>();
    for (const r of [...replicas].sort(preference(hashes.get(key) ?? null)).reverse())
      perSlot.set(r.slot, r.node);
    slots.set(key, perSlot);
  }
  return slots;
}

function chunk<T>(items: T[], size: number): T[][] {
  if (items.length === 0) return [];
  if (size <= 0) return [items];
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function bySlot(a: { slot: string }, b: { slot: string }): number {
  const x = Number(a.slot);
  const y = Number(b.slot);
  return Number.isNaN(x) || Number.isNaN(y) ? compareStrings(a.slot, b.slot) : x - y;
}

/**
 * The plan that moves what is observed to what is desired. Pure: no I/O, no clock, same input
 * same output. Per service: which replicas to keep, create, replace and remove, in batches that
 * follow the update policy (see the Rollout section of the README for how batches execute).
 */
export function computePlan(
  desired: DesiredState,
  observed: ObservedState,
  options: { policy?: 'update' | 'rollback' } = {},
): Plan {
  const policyOf = (spec: ServiceSpec) => (options.policy === 'rollback' ? spec.rollback : spec.update);
  const summaries = new Map(
    desired.services.map((s) => [serviceKey(s.namespace, s.name), summariseService(s, desired)]),
  );
  const hashes = new Map([...summaries].map(([key, summary]) => [key, specHashOf(summary)]));
  const byService = groupReplicas(observed.nodes);
  const placements = placeServices(desired.services, observed.nodes, currentSlots(byService, hashes));

  const services: ServicePlan[] = [];
  const secretCiphertexts: Record<string, string> = {};
  for (const spec of desired.services) {
    const key = serviceKey(spec.namespace, spec.name);
    const summary = summaries.get(key)!;
    const hash = hashes.get(key)!;
    // Built once per service, and only for a service that starts replicas.
    let template: ReplicaTemplate | null = null;
    const requestFor = (slot: string, name: string): PlannedReplicaRequest => {
      template ??= planReplicaTemplate(spec, desired, summary, hash, secretCiphertexts);
      return { ...template, name, slot, volumes: replicaVolumes(template, slot) };
    };
    services.push(
      planService(
        { spec, policy: policyOf(spec), summary, hash, requestFor },
        byService.get(key) ?? [],
        placements.get(key)!,
      ),
    );
  }
  for (const [key, replicas] of byService) {
    if (hashes.has(key)) continue;
    const first = replicas[0]!;
    services.push(planRemoval(first.namespace, first.service, replicas, observed.nodes));
  }
  services.sort((a, b) => compareStrings(serviceKey(a.namespace, a.name), serviceKey(b.namespace, b.name)));
  return {
    revision: desired.revision,
    services,
    secretCiphertexts,
    hasChanges: services.some((s) => s.change !== 'unchanged'),
  };
}

/** One desired service as the planner sees it: its spec, policy, hash and how to build requests. */
interface ServiceTarget {
  spec: ServiceSpec;
  policy: UpdatePolicySpec;
  summary: ReturnType<typeof summariseService>;
  hash: string;
  requestFor: (slot: string, name: string) => PlannedReplicaRequest;
}

function planService(
  target: ServiceTarget,
  observed: ObservedReplica[],
  placement: ServicePlacement,
): ServicePlan {
  const { spec, policy, summary, hash } = target;
  // A container that was created ahead of its batch and never started (the rollout stopped, the
  // operator crashed) is no replica: it goes, and the slot is planned as if it were not there.
  const replicas = observed.filter((r) => r.state !== 'created');
  const cleanup: ReplicaStep[] = observed
    .filter((r) => r.state === 'created')
    .map((r) => ({ action: 'remove', old: refOf(r), reason: 'never-started' }));
  const slots = new Map<string, ObservedReplica[]>();
  for (const r of replicas) slots.set(r.slot, [...(slots.get(r.slot) ?? []), r]);

  const keep: ReplicaRef[] = [];
  const creates: ReplicaStep[] = [];
  const replaces: { step: ReplicaStep; extra: ReplicaStep[] }[] = [];
  let updated = false;

  for (const { slot, node } of placement.assignments) {
    const name = replicaName(spec.namespace, spec.name, slot, hash);
    const inSlot = (slots.get(slot) ?? []).sort(preference(hash));
    slots.delete(slot);
    const exact = inSlot.find((r) => r.name === name && r.node === node);
    // The same name on another node is another replica: a slot moved off a node that was down
    // or drained leaves its old container there.
    const others = inSlot.filter((r) => r !== exact && (r.name !== name || r.node !== node));
    if (exact && isAlive(exact) && others.every((r) => r.specHash === hash)) {
      keep.push(refOf(exact));
      // Extra copies of a slot that is served (a node that came back after its replicas were
      // rescheduled): removing them never drops below the desired count.
      for (const r of others) cleanup.push({ action: 'remove', old: refOf(r), reason: 'duplicate' });
      continue;
    }
    if (!exact && others.length === 0) {
      creates.push({ action: 'create', slot, node, name, request: target.requestFor(slot, name) });
      continue;
    }
    // Replace the best other replica (keeping capacity until the new one is healthy); a dead
    // replica under the desired name itself is recreated in place by ensureReplica.
    const old = others[0] ?? exact!;
    if (old.specHash !== hash) updated = true;
    const extra: ReplicaStep[] = others
      .slice(old === others[0] ? 1 : 0)
      .map((r) => ({ action: 'remove', old: refOf(r), reason: 'duplicate' }));
    const request = target.requestFor(slot, name);
    replaces.push({ step: { action: 'replace', slot, node, name, old: refOf(old), request }, extra });
  }

  // Slots that are no longer wanted. Slots that fit nowhere keep what they run: a placement
  // problem must not take down a replica that serves.
  const pendingSlots = new Set(placement.pending.map((p) => p.slot));
  for (const [slot, rs] of slots) {
    if (pendingSlots.has(slot)) continue;
    const reason = spec.mode === 'global' ? 'misplaced' : 'scaled-down';
    for (const r of rs) cleanup.push({ action: 'remove', old: refOf(r), reason });
  }

  const slotOf = (s: ReplicaStep): { slot: string } => (s.action === 'remove' ? s.old : s);
  creates.sort((a, b) => bySlot(slotOf(a), slotOf(b)));
  replaces.sort((a, b) => bySlot(slotOf(a.step), slotOf(b.step)));
  const batches: ReplicaStep[][] = [];
  if (cleanup.length > 0) batches.push(cleanup);
  const ordered = [...creates.map((step) => ({ step, extra: [] as ReplicaStep[] })), ...replaces];
  for (const group of chunk(ordered, policy.parallelism)) {
    batches.push(group.flatMap((g) => [g.step, ...g.extra]));
  }

  const currentCount = replicas.filter((r) => r.specHash === hash && isAlive(r)).length;
  const desiredCount = placement.assignments.length + placement.pending.length;
  let change: ServiceChange = 'unchanged';
  if (replicas.length === 0 && batches.length > 0) change = 'create';
  else if (updated) change = 'update';
  else if (creates.length > 0 || cleanup.some((s) => s.action === 'remove' && s.reason === 'scaled-down'))
    change = 'scale';
  else if (batches.length > 0) change = 'repair';

  const previous = mostCommonSummary(replicas.filter((r) => r.specHash !== hash));
  const fieldChanges = previous ? diffFields(previous, summary) : [];
  // The replica count is not part of the spec summary (scaling must not restart anything), so
  // it is compared here: the slots that run something now against the slots wanted.
  const runningSlots = new Set(replicas.map((r) => r.slot)).size;
  if (replicas.length > 0 && runningSlots !== desiredCount) {
    fieldChanges.push({ path: 'replicas', from: runningSlots, to: desiredCount });
    fieldChanges.sort((a, b) => compareStrings(a.path, b.path));
  }
  return {
    namespace: spec.namespace,
    name: spec.name,
    change,
    specHash: hash,
    desiredReplicas: desiredCount,
    currentReplicas: currentCount,
    fieldChanges,
    keep,
    batches,
    policy,
    stopGracePeriodMs: spec.stopGracePeriodMs,
    pending: placement.pending,
  };
}

function mostCommonSummary(replicas: ObservedReplica[]): Record<string, unknown> | null {
  const counts = new Map<string, { n: number; summary: Record<string, unknown> }>();
  for (const r of replicas) {
    if (!r.specSummary) continue;
    const entry = counts.get(r.specHash) ?? { n: 0, summary: r.specSummary };
    entry.n += 1;
    counts.set(r.specHash, entry);
  }
  let best: { n: number; summary: Record<string, unknown> } | null = null;
  for (const entry of counts.values()) if (!best || entry.n > best.n) best = entry;
  return best?.summary ?? null;
}

/**
 * The volumes of a service leaving git that go with it: every one of its volumes on a node that
 * answers, when its replicas say volumeReclaim: delete (the manifest is gone; the containers' spec
 * summary is what is left of it). Retained otherwise, as Kubernetes' Retain.
 */
function reclaimedVolumes(
  namespace: string,
  name: string,
  replicas: ObservedReplica[],
  nodes: NodeSnapshot[],
): { node: string; name: string }[] {
  if (!replicas.some((r) => r.specSummary?.['volumeReclaim'] === 'delete')) return [];
  return nodes
    .filter((n) => n.status !== 'down')
    .flatMap((n) =>
      (n.volumes ?? [])
        .filter((v) => v.namespace === namespace && v.service === name)
        .map((v) => ({ node: n.name, name: v.name })),
    );
}

function planRemoval(
  namespace: string,
  name: string,
  replicas: ObservedReplica[],
  nodes: NodeSnapshot[],
): ServicePlan {
  const sorted = [...replicas].sort(bySlot);
  const deleteVolumes = reclaimedVolumes(namespace, name, replicas, nodes);
  return {
    namespace,
    name,
    change: 'remove',
    specHash: null,
    desiredReplicas: 0,
    currentReplicas: replicas.filter(isAlive).length,
    fieldChanges: [],
    keep: [],
    batches: [sorted.map((r) => ({ action: 'remove', old: refOf(r), reason: 'pruned' }))],
    policy: {
      parallelism: 0,
      delayMs: 0,
      order: 'stop-first',
      monitorMs: 0,
      failureAction: 'continue',
      maxFailureRatio: 1,
      progressDeadlineMs: 600_000,
    },
    stopGracePeriodMs: null,
    pending: [],
    ...(deleteVolumes.length > 0 ? { deleteVolumes } : {}),
  };
}
