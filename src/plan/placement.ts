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

function eligibleNodes(spec: ServiceSpec, nodes: NodeSnapshot[]): NodeSnapshot[] {
  return nodes.filter(
    (n) => n.status === 'ready' && spec.placement.constraints.every((c) => matchesConstraint(n, c)),
  );
}

interface NodeLoad {
  nanoCpus: number;
  memoryBytes: number;
  replicas: number;
}

/**
 * Places every service's slots on nodes. Pure and deterministic. Two passes over all services:
 * first every slot that already runs on a node that is still eligible keeps its node, then the
 * remaining slots are placed on the least loaded nodes that fit (constraints, reservations,
 * maxPerNode), spreading over `placement.spread` label values first and over nodes second.
 */
export function placeServices(
  services: ServiceSpec[],
  nodes: NodeSnapshot[],
  current: CurrentSlots,
): Map<string, ServicePlacement> {
  const sortedNodes = [...nodes].sort((a, b) => compareStrings(a.name, b.name));
  const load = new Map<string, NodeLoad>(
    sortedNodes.map((n) => [n.name, { nanoCpus: 0, memoryBytes: 0, replicas: 0 }]),
  );
  const result = new Map<string, ServicePlacement>();
  const perServiceCount = new Map<string, Map<string, number>>();
  const todo: { spec: ServiceSpec; slots: string[] }[] = [];

  const charge = (spec: ServiceSpec, key: string, node: string): void => {
    const l = load.get(node);
    if (l) {
      l.nanoCpus += spec.resources.reservations.nanoCpus;
      l.memoryBytes += spec.resources.reservations.memoryBytes;
      l.replicas += 1;
    }
    let counts = perServiceCount.get(key);
    if (!counts) {
      counts = new Map<string, number>();
      perServiceCount.set(key, counts);
    }
    counts.set(node, (counts.get(node) ?? 0) + 1);
  };

  const ordered = [...services].sort((a, b) =>
    compareStrings(serviceKey(a.namespace, a.name), serviceKey(b.namespace, b.name)),
  );

  // Pass 1: keep what already runs where it may.
  for (const spec of ordered) {
    const key = serviceKey(spec.namespace, spec.name);
    const eligible = eligibleNodes(spec, sortedNodes);
    const placement: ServicePlacement = { assignments: [], pending: [] };
    result.set(key, placement);
    if (spec.mode === 'global') {
      for (const node of eligible) {
        if (fits(spec, load.get(node.name), node)) {
          placement.assignments.push({ slot: node.name, node: node.name });
          charge(spec, key, node.name);
        } else {
          placement.pending.push({ slot: node.name, reason: capacityReason(spec, node.name) });
        }
      }
      continue;
    }
    const existing = current.get(key) ?? new Map<string, string>();
    const unplaced: string[] = [];
    for (let i = 1; i <= spec.replicas; i++) {
      const slot = String(i);
      const node = existing.get(slot);
      const perNode = perServiceCount.get(key)?.get(node ?? '') ?? 0;
      if (
        node !== undefined &&
        eligible.some((n) => n.name === node) &&
        (spec.placement.maxPerNode === 0 || perNode < spec.placement.maxPerNode)
      ) {
        placement.assignments.push({ slot, node });
        charge(spec, key, node);
      } else {
        unplaced.push(slot);
      }
    }
    todo.push({ spec, slots: unplaced });
  }

  // Pass 2: place new slots. This loop runs slots x nodes times for a first deploy of a large
  // cluster, so it avoids allocating per candidate.
  for (const { spec, slots } of todo) {
    if (slots.length === 0) continue;
    const key = serviceKey(spec.namespace, spec.name);
    const placement = result.get(key)!;
    const eligible = eligibleNodes(spec, sortedNodes);
    const spread = spec.placement.spread?.startsWith('node.labels.')
      ? spec.placement.spread.slice('node.labels.'.length)
      : null;
    const groups = eligible.map((n) => (spread === null ? '' : (n.labels[spread] ?? '')));
    const counts = perServiceCount.get(key) ?? new Map<string, number>();
    perServiceCount.set(key, counts);
    const groupCount = new Map<string, number>();
    eligible.forEach((n, i) => {
      groupCount.set(groups[i]!, (groupCount.get(groups[i]!) ?? 0) + (counts.get(n.name) ?? 0));
    });
    for (const slot of slots) {
      let best = -1;
      let bestGroup = 0;
      let bestCount = 0;
      let bestLoad = 0;
      for (let i = 0; i < eligible.length; i++) {
        const n = eligible[i]!;
        const count = counts.get(n.name) ?? 0;
        if (spec.placement.maxPerNode !== 0 && count >= spec.placement.maxPerNode) continue;
        const l = load.get(n.name);
        if (!fits(spec, l, n)) continue;
        const group = groupCount.get(groups[i]!) ?? 0;
        const nodeLoad = l?.replicas ?? 0;
        if (
          best === -1 ||
          group < bestGroup ||
          (group === bestGroup && (count < bestCount || (count === bestCount && nodeLoad < bestLoad)))
        ) {
          best = i;
          bestGroup = group;
          bestCount = count;
          bestLoad = nodeLoad;
        }
      }
      if (best === -1) {
        placement.pending.push({ slot, reason: pendingReason(spec, sortedNodes, eligible, counts, load) });
        continue;
      }
      const chosen = eligible[best]!;
      placement.assignments.push({ slot, node: chosen.name });
      charge(spec, key, chosen.name);
      groupCount.set(groups[best]!, (groupCount.get(groups[best]!) ?? 0) + 1);
    }
    placement.assignments.sort((a, b) => Number(a.slot) - Number(b.slot));
  }
  return result;
}

function fits(spec: ServiceSpec, used: NodeLoad | undefined, node: NodeSnapshot): boolean {
  const r = spec.resources.reservations;
  const u = used ?? { nanoCpus: 0, memoryBytes: 0, replicas: 0 };
  const cpuOk = r.nanoCpus === 0 || u.nanoCpus + r.nanoCpus <= node.capacity.nanoCpus;
  const memOk = r.memoryBytes === 0 || u.memoryBytes + r.memoryBytes <= node.capacity.memoryBytes;
  return cpuOk && memOk;
}

function capacityReason(spec: ServiceSpec, node: string): string {
  const r = spec.resources.reservations;
  return `node ${node} lacks free resources for the reservation (cpus ${r.nanoCpus / 1e9}, memory ${r.memoryBytes} bytes)`;
}

function pendingReason(
  spec: ServiceSpec,
  nodes: NodeSnapshot[],
  eligible: NodeSnapshot[],
  counts: Map<string, number>,
  load: Map<string, NodeLoad>,
): string {
  if (nodes.every((n) => n.status !== 'ready')) return 'no node is ready';
  if (eligible.length === 0) {
    const text = spec.placement.constraints.map((c) => `${c.field} ${c.op} ${c.value}`).join(', ');
    return `no ready node satisfies the constraints (${text})`;
  }
  const withRoom = eligible.filter((n) => fits(spec, load.get(n.name), n));
  if (withRoom.length === 0) {
    const r = spec.resources.reservations;
    return `no eligible node has free resources for the reservation (cpus ${r.nanoCpus / 1e9}, memory ${r.memoryBytes} bytes)`;
  }
  if (
    spec.placement.maxPerNode > 0 &&
    withRoom.every((n) => (counts.get(n.name) ?? 0) >= spec.placement.maxPerNode)
  ) {
    return `every eligible node already runs maxPerNode=${spec.placement.maxPerNode} replicas`;
  }
  return 'no node fits';
}
