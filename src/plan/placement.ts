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
 * What is reserved on each node so far, in typed arrays indexed by the node's position in the
 * sorted node list: a first deploy of a large cluster asks `fits` slots x nodes times (3000 x
 * 100 in the plan benchmark), so node state lives in arrays, not in maps.
 */
class NodeLoad {
  readonly nodes: NodeSnapshot[];
  readonly indexOf: Map<string, number>;
  private readonly usedCpu: Float64Array;
  private readonly usedMemory: Float64Array;
  /** Replicas of every service per node. */
  readonly replicasOn: Int32Array;
  private readonly perService = new Map<string, Int32Array>();

  constructor(nodes: NodeSnapshot[]) {
    this.nodes = [...nodes].sort((a, b) => compareStrings(a.name, b.name));
    this.indexOf = new Map(this.nodes.map((n, i) => [n.name, i]));
    this.usedCpu = new Float64Array(this.nodes.length);
    this.usedMemory = new Float64Array(this.nodes.length);
    this.replicasOn = new Int32Array(this.nodes.length);
  }

  /** Replicas of one service per node. */
  countsOf(key: string): Int32Array {
    let counts = this.perService.get(key);
    if (!counts) {
      counts = new Int32Array(this.nodes.length);
      this.perService.set(key, counts);
    }
    return counts;
  }

  fits(spec: ServiceSpec, i: number): boolean {
    const r = spec.resources.reservations;
    const node = this.nodes[i]!;
    return (
      (r.nanoCpus === 0 || this.usedCpu[i]! + r.nanoCpus <= node.capacity.nanoCpus) &&
      (r.memoryBytes === 0 || this.usedMemory[i]! + r.memoryBytes <= node.capacity.memoryBytes)
    );
  }

  charge(spec: ServiceSpec, counts: Int32Array, i: number): void {
    this.usedCpu[i]! += spec.resources.reservations.nanoCpus;
    this.usedMemory[i]! += spec.resources.reservations.memoryBytes;
    this.replicasOn[i]! += 1;
    counts[i]! += 1;
  }
}

/** A replicated service's slots that still need a node after pass 1. */
interface Unplaced {
  spec: ServiceSpec;
  key: string;
  slots: string[];
}

/** A global service: one slot per eligible node, named after it. */
function placeGlobal(
  spec: ServiceSpec,
  load: NodeLoad,
  counts: Int32Array,
  placement: ServicePlacement,
): void {
  for (const i of eligibleNodes(spec, load.nodes)) {
    const name = load.nodes[i]!.name;
    if (load.fits(spec, i)) {
      placement.assignments.push({ slot: name, node: name });
      load.charge(spec, counts, i);
    } else {
      placement.pending.push({ slot: name, reason: capacityReason(spec, name) });
    }
  }
}

/**
 * Pass 1 for a replicated service: every slot that runs on a node still eligible stays there, and
 * a slot whose volume is on a node goes there or nowhere (pending, with the reason).
 */
function keepRunningSlots(
  spec: ServiceSpec,
  load: NodeLoad,
  counts: Int32Array,
  existing: Map<string, string> | undefined,
  placement: ServicePlacement,
  volumes: SlotVolumes | undefined,
): string[] {
  const eligible = new Set(eligibleNodes(spec, load.nodes));
  const maxPerNode = spec.placement.maxPerNode;
  const unplaced: string[] = [];
  for (let n = 1; n <= spec.replicas; n++) {
    const slot = String(n);
    const pinned = volumes?.get(slot);
    if (pinned !== undefined) {
      const i = load.indexOf.get(pinned.node);
      const why = i === undefined ? null : pinnedProblem(spec, load, counts, eligible, i);
      if (i !== undefined && why === null) {
        placement.assignments.push({ slot, node: pinned.node });
        load.charge(spec, counts, i);
      } else {
        placement.pending.push({
          slot,
          reason: `volume ${pinned.volume} is on node ${pinned.node}, ${why ?? 'which is not in the cluster'}; the replica waits for it rather than start empty elsewhere`,
        });
      }
      continue;
    }
    const node = existing?.get(slot);
    const i = node === undefined ? undefined : load.indexOf.get(node);
    if (i !== undefined && eligible.has(i) && (maxPerNode === 0 || counts[i]! < maxPerNode)) {
      placement.assignments.push({ slot, node: node! });
      load.charge(spec, counts, i);
    } else {
      unplaced.push(slot);
    }
  }
  return unplaced;
}

/** Where each slot's volume is, for one service: the slot's replica runs there and nowhere else. */
type SlotVolumes = Map<string, { node: string; volume: string }>;

/**
 * Volumes of services that mount volumes, by service key and slot. When a slot's volumes are on
 * several nodes (a volume added to the spec after the slot moved), the node its replica runs on
 * today wins, then the first by name.
 */
function volumesBySlot(
  services: ServiceSpec[],
  nodes: NodeSnapshot[],
  current: CurrentSlots,
): Map<string, SlotVolumes> {
  const wanted = new Map<string, Set<string>>();
  for (const spec of services) {
    if (spec.mode === 'global' || spec.volumes.length === 0) continue;
    wanted.set(serviceKey(spec.namespace, spec.name), new Set(spec.volumes.map((v) => v.name)));
  }
  const result = new Map<string, SlotVolumes>();
  for (const node of [...nodes].sort((a, b) => compareStrings(a.name, b.name))) {
    for (const v of node.volumes ?? []) {
      const key = serviceKey(v.namespace, v.service);
      if (!wanted.get(key)?.has(v.volume)) continue;
      const slots = result.get(key) ?? new Map<string, { node: string; volume: string }>();
      result.set(key, slots);
      const earlier = slots.get(v.slot);
      if (
        earlier === undefined ||
        (earlier.node !== node.name && current.get(key)?.get(v.slot) === node.name)
      )
        slots.set(v.slot, { node: node.name, volume: v.name });
    }
  }
  return result;
}

/** Why a slot cannot run on the node that holds its volume (node index `i`), or null when it can. */
function pinnedProblem(
  spec: ServiceSpec,
  load: NodeLoad,
  counts: Int32Array,
  eligible: Set<number>,
  i: number,
): string | null {
  const node = load.nodes[i]!;
  if (node.status === 'down') return 'which is down';
  if (node.status === 'drain') return 'which is draining (move the data or end the drain)';
  if (!eligible.has(i)) return 'which the placement constraints exclude';
  if (spec.placement.maxPerNode !== 0 && counts[i]! >= spec.placement.maxPerNode)
    return `which already runs maxPerNode=${spec.placement.maxPerNode} replicas`;
  return null;
}

/** Spread groups: the `placement.spread` label value of each eligible node, as a small integer. */
function spreadGroups(
  spec: ServiceSpec,
  load: NodeLoad,
  eligible: number[],
  counts: Int32Array,
): { groupOf: Int32Array; groupCount: Int32Array } {
  const label = spec.placement.spread?.startsWith('node.labels.')
    ? spec.placement.spread.slice('node.labels.'.length)
    : null;
  const groupIds = new Map<string, number>();
  const groupOf = new Int32Array(load.nodes.length);
  for (const i of eligible) {
    const value = label === null ? '' : (load.nodes[i]!.labels[label] ?? '');
    if (!groupIds.has(value)) groupIds.set(value, groupIds.size);
    groupOf[i] = groupIds.get(value)!;
  }
  const groupCount = new Int32Array(groupIds.size);
  for (const i of eligible) groupCount[groupOf[i]!]! += counts[i]!;
  return { groupOf, groupCount };
}

/** Pass 2 for one service: each new slot on the least loaded node that fits, spread groups first. */
function placeNewSlots({ spec, key, slots }: Unplaced, load: NodeLoad, placement: ServicePlacement): void {
  const counts = load.countsOf(key);
  const eligible = eligibleNodes(spec, load.nodes);
  const { groupOf, groupCount } = spreadGroups(spec, load, eligible, counts);
  const maxPerNode = spec.placement.maxPerNode;
  const better = (i: number, best: number): boolean =>
    best === -1 ||
    groupCount[groupOf[i]!]! < groupCount[groupOf[best]!]! ||
    (groupCount[groupOf[i]!]! === groupCount[groupOf[best]!]! &&
      (counts[i]! < counts[best]! ||
        (counts[i]! === counts[best]! && load.replicasOn[i]! < load.replicasOn[best]!)));
  for (const slot of slots) {
    let best = -1;
    for (const i of eligible) {
      if (maxPerNode !== 0 && counts[i]! >= maxPerNode) continue;
      if (!load.fits(spec, i)) continue;
      if (better(i, best)) best = i;
    }
    if (best === -1) {
      const fits = (s: ServiceSpec, i: number): boolean => load.fits(s, i);
      placement.pending.push({ slot, reason: pendingReason(spec, load.nodes, eligible, counts, fits) });
      continue;
    }
    placement.assignments.push({ slot, node: load.nodes[best]!.name });
    load.charge(spec, counts, best);
    groupCount[groupOf[best]!]! += 1;
  }
  placement.assignments.sort((a, b) => Number(a.slot) - Number(b.slot));
}

/**
 * Places every service's slots on nodes. Pure and deterministic. Two passes over all services:
 * first every slot whose volume is on a node is pinned there (pending while that node cannot take
 * it), and every other slot that already runs on a node that is still eligible keeps its node, then the
 * remaining slots are placed on the least loaded nodes that fit (constraints, reservations,
 * maxPerNode), spreading over `placement.spread` label values first and over nodes second.
 */
export function placeServices(
  services: ServiceSpec[],
  nodes: NodeSnapshot[],
  current: CurrentSlots,
): Map<string, ServicePlacement> {
  const load = new NodeLoad(nodes);
  const volumes = volumesBySlot(services, nodes, current);
  const result = new Map<string, ServicePlacement>();
  const todo: Unplaced[] = [];
  const ordered = [...services].sort((a, b) =>
    compareStrings(serviceKey(a.namespace, a.name), serviceKey(b.namespace, b.name)),
  );
  // Pass 1: keep what already runs where it may.
  for (const spec of ordered) {
    const key = serviceKey(spec.namespace, spec.name);
    const counts = load.countsOf(key);
    const placement: ServicePlacement = { assignments: [], pending: [] };
    result.set(key, placement);
    if (spec.mode === 'global') placeGlobal(spec, load, counts, placement);
    else {
      const slots = keepRunningSlots(spec, load, counts, current.get(key), placement, volumes.get(key));
      todo.push({ spec, key, slots });
    }
  }
  // Pass 2: place new slots.
  for (const unplaced of todo) {
    if (unplaced.slots.length > 0) placeNewSlots(unplaced, load, result.get(unplaced.key)!);
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
