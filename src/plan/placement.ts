import type { NodeSnapshot } from '../api/types.js';
import type { PlacementConstraint, ServiceSpec } from '../manifests/types.js';
import { compareStrings, serviceKey } from './replica-name.js';

/** Where each slot of a service should run, and the slots that fit nowhere. */
export interface ServicePlacement {
  assignments: { slot: string; node: string }[];
  pending: { slot: string; reason: string }[];
}

/** The node each existing slot runs on today, per service key: placement keeps it (stability). */
export type CurrentSlots = Map<string, Map<string, string>>;

export function matchesConstraint(
  node: Pick<NodeSnapshot, 'name' | 'labels'>,
  c: PlacementConstraint,
): boolean {
  let actual: string | undefined;
  if (c.field === 'node.name' || c.field === 'node.hostname') actual = node.name;
  else if (c.field.startsWith('node.labels.')) actual = node.labels[c.field.slice('node.labels.'.length)];
  const equal = actual === c.value;
  return c.op === '==' ? equal : !equal;
}

/** Indexes (into the sorted node list) of the nodes a service may run on. */
function eligibleNodes(spec: ServiceSpec, nodes: NodeSnapshot[]): number[] {
  const out: number[] = [];
  nodes.forEach((n, i) => {
    if (n.status === 'ready' && spec.placement.constraints.every((c) => matchesConstraint(n, c))) out.push(i);
  });
  return out;
}

/**
 * Places every service's slots on nodes. Pure and deterministic. Two passes over all services:
 * first every slot that already runs on a node that is still eligible keeps its node, then the
 * remaining slots are placed on the least loaded nodes that fit (constraints, reservations,
 * maxPerNode), spreading over `placement.spread` label values first and over nodes second.
 *
 * A first deploy of a large cluster runs the inner loop slots x nodes times (3000 x 100 in the
 * plan benchmark), so node state lives in typed arrays indexed by node position, not in maps.
 */
export function placeServices(
  services: ServiceSpec[],
  nodes: NodeSnapshot[],
  current: CurrentSlots,
): Map<string, ServicePlacement> {
  const sorted = [...nodes].sort((a, b) => compareStrings(a.name, b.name));
  const indexOf = new Map(sorted.map((n, i) => [n.name, i]));
  const usedCpu = new Float64Array(sorted.length);
  const usedMemory = new Float64Array(sorted.length);
  const replicasOn = new Int32Array(sorted.length);
  const result = new Map<string, ServicePlacement>();
  const perService = new Map<string, Int32Array>();
  const todo: { spec: ServiceSpec; key: string; slots: string[] }[] = [];

  const countsOf = (key: string): Int32Array => {
    let counts = perService.get(key);
    if (!counts) {
      counts = new Int32Array(sorted.length);
      perService.set(key, counts);
    }
    return counts;
  };
  const fits = (spec: ServiceSpec, i: number): boolean => {
    const r = spec.resources.reservations;
    const node = sorted[i]!;
    return (
      (r.nanoCpus === 0 || usedCpu[i]! + r.nanoCpus <= node.capacity.nanoCpus) &&
      (r.memoryBytes === 0 || usedMemory[i]! + r.memoryBytes <= node.capacity.memoryBytes)
    );
  };
  const charge = (spec: ServiceSpec, counts: Int32Array, i: number): void => {
    usedCpu[i]! += spec.resources.reservations.nanoCpus;
    usedMemory[i]! += spec.resources.reservations.memoryBytes;
    replicasOn[i]! += 1;
    counts[i]! += 1;
  };

  const ordered = [...services].sort((a, b) =>
    compareStrings(serviceKey(a.namespace, a.name), serviceKey(b.namespace, b.name)),
  );

  // Pass 1: keep what already runs where it may.
  for (const spec of ordered) {
    const key = serviceKey(spec.namespace, spec.name);
    const eligible = eligibleNodes(spec, sorted);
    const counts = countsOf(key);
    const placement: ServicePlacement = { assignments: [], pending: [] };
    result.set(key, placement);
    if (spec.mode === 'global') {
      for (const i of eligible) {
        const name = sorted[i]!.name;
        if (fits(spec, i)) {
          placement.assignments.push({ slot: name, node: name });
          charge(spec, counts, i);
        } else {
          placement.pending.push({ slot: name, reason: capacityReason(spec, name) });
        }
      }
      continue;
    }
    const existing = current.get(key);
    const eligibleSet = new Set(eligible);
    const unplaced: string[] = [];
    for (let n = 1; n <= spec.replicas; n++) {
      const slot = String(n);
      const node = existing?.get(slot);
      const i = node === undefined ? undefined : indexOf.get(node);
      if (
        i !== undefined &&
        eligibleSet.has(i) &&
        (spec.placement.maxPerNode === 0 || counts[i]! < spec.placement.maxPerNode)
      ) {
        placement.assignments.push({ slot, node: node! });
        charge(spec, counts, i);
      } else {
        unplaced.push(slot);
      }
    }
    todo.push({ spec, key, slots: unplaced });
  }

  // Pass 2: place new slots.
  for (const { spec, key, slots } of todo) {
    if (slots.length === 0) continue;
    const placement = result.get(key)!;
    const counts = countsOf(key);
    const eligible = eligibleNodes(spec, sorted);
    const label = spec.placement.spread?.startsWith('node.labels.')
      ? spec.placement.spread.slice('node.labels.'.length)
      : null;
    // Spread groups: the label value of each eligible node, as a small integer.
    const groupIds = new Map<string, number>();
    const groupOf = new Int32Array(sorted.length);
    for (const i of eligible) {
      const value = label === null ? '' : (sorted[i]!.labels[label] ?? '');
      if (!groupIds.has(value)) groupIds.set(value, groupIds.size);
      groupOf[i] = groupIds.get(value)!;
    }
    const groupCount = new Int32Array(groupIds.size);
    for (const i of eligible) groupCount[groupOf[i]!]! += counts[i]!;
    const maxPerNode = spec.placement.maxPerNode;
    for (const slot of slots) {
      let best = -1;
      for (const i of eligible) {
        if (maxPerNode !== 0 && counts[i]! >= maxPerNode) continue;
        if (!fits(spec, i)) continue;
        if (
          best === -1 ||
          groupCount[groupOf[i]!]! < groupCount[groupOf[best]!]! ||
          (groupCount[groupOf[i]!]! === groupCount[groupOf[best]!]! &&
            (counts[i]! < counts[best]! ||
              (counts[i]! === counts[best]! && replicasOn[i]! < replicasOn[best]!)))
        ) {
          best = i;
        }
      }
      if (best === -1) {
        placement.pending.push({ slot, reason: pendingReason(spec, sorted, eligible, counts, fits) });
        continue;
      }
      placement.assignments.push({ slot, node: sorted[best]!.name });
      charge(spec, counts, best);
      groupCount[groupOf[best]!]! += 1;
    }
    placement.assignments.sort((a, b) => Number(a.slot) - Number(b.slot));
  }
  return result;
}

function capacityReason(spec: ServiceSpec, node: string): string {
  const r = spec.resources.reservations;
  return `node ${node} lacks free resources for the reservation (cpus ${r.nanoCpus / 1e9}, memory ${r.memoryBytes} bytes)`;
}

function pendingReason(
  spec: ServiceSpec,
  nodes: NodeSnapshot[],
  eligible: number[],
  counts: Int32Array,
  fits: (spec: ServiceSpec, i: number) => boolean,
): string {
  if (nodes.every((n) => n.status !== 'ready')) return 'no node is ready';
  if (eligible.length === 0) {
    const text = spec.placement.constraints.map((c) => `${c.field} ${c.op} ${c.value}`).join(', ');
    return `no ready node satisfies the constraints (${text})`;
  }
  const withRoom = eligible.filter((i) => fits(spec, i));
  if (withRoom.length === 0) {
    const r = spec.resources.reservations;
    return `no eligible node has free resources for the reservation (cpus ${r.nanoCpus / 1e9}, memory ${r.memoryBytes} bytes)`;
  }
  if (spec.placement.maxPerNode > 0 && withRoom.every((i) => counts[i]! >= spec.placement.maxPerNode)) {
    return `every eligible node already runs maxPerNode=${spec.placement.maxPerNode} replicas`;
  }
  return 'no node fits';
}
