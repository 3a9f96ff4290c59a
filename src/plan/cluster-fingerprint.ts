import type { NodeSnapshot, ObservedReplica, ObservedState } from '../api/types.js';
import { isAlive } from './compute-plan.js';
import { canonicalJson } from './spec-summary.js';
import { compareStrings } from './replica-name.js';

/**
 * A replica as the planner decides on it: identity, spec hash, revision and whether it serves.
 * Health is kept as alive or not (running and not failing its check), because that is all the
 * planner asks: a replica that went from `starting` to `healthy` leaves every plan the same.
 */
export interface ReplicaFingerprint {
  name: string;
  namespace: string;
  service: string;
  slot: string;
  specHash: string;
  revision: string;
  alive: boolean;
  /** Container state and health as observed, for the message when `alive` changed. */
  state: string;
}

/** A node as placement sees it, with the replicas it runs. */
export interface NodeFingerprint {
  name: string;
  status: NodeSnapshot['status'];
  labels: Record<string, string>;
  capacity: NodeSnapshot['capacity'];
  replicas: ReplicaFingerprint[];
}

/** What a plan was computed against: everything of the observed cluster the planner uses. */
export interface ClusterFingerprint {
  nodes: NodeFingerprint[];
}

function replicaFingerprint(r: ObservedReplica): ReplicaFingerprint {
  return {
    name: r.name,
    namespace: r.namespace,
    service: r.service,
    slot: r.slot,
    specHash: r.specHash,
    revision: r.revision,
    alive: isAlive(r),
    state: r.health === 'none' ? r.state : `${r.state}, ${r.health}`,
  };
}

export function fingerprintCluster(observed: ObservedState): ClusterFingerprint {
  const nodes = observed.nodes.map((n) => ({
    name: n.name,
    status: n.status,
    labels: Object.fromEntries(Object.entries(n.labels).sort(([a], [b]) => compareStrings(a, b))),
    capacity: { nanoCpus: n.capacity.nanoCpus, memoryBytes: n.capacity.memoryBytes },
    replicas: n.replicas.map(replicaFingerprint).sort((a, b) => compareStrings(a.name, b.name)),
  }));
  return { nodes: nodes.sort((a, b) => compareStrings(a.name, b.name)) };
}

/** `abc1234/5f3e9a1b2c4d running`: the revision and spec hash a replica runs, and its state. */
function describeReplica(r: ReplicaFingerprint): string {
  return `${r.revision.slice(0, 7)}/${r.specHash.slice(0, 12)} ${r.state}`;
}

function labelsText(labels: Record<string, string>): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return pairs.length === 0 ? '(none)' : pairs.join(',');
}

function replicaChanges(node: string, before: ReplicaFingerprint[], after: ReplicaFingerprint[]): string[] {
  const changes: string[] = [];
  const now = new Map(after.map((r) => [r.name, r]));
  for (const was of before) {
    const is = now.get(was.name);
    now.delete(was.name);
    if (is === undefined) changes.push(`node ${node}: replica ${was.name} (${describeReplica(was)}) is gone`);
    else if (was.specHash !== is.specHash || was.revision !== is.revision || was.alive !== is.alive)
      changes.push(
        `node ${node}: replica ${was.name} was ${describeReplica(was)}, now ${describeReplica(is)}`,
      );
  }
  for (const is of now.values())
    changes.push(`node ${node}: replica ${is.name} (${describeReplica(is)}) appeared`);
  return changes;
}

function nodeChanges(was: NodeFingerprint, is: NodeFingerprint): string[] {
  const changes: string[] = [];
  if (was.status !== is.status) changes.push(`node ${was.name} was ${was.status}, now ${is.status}`);
  if (canonicalJson(was.labels) !== canonicalJson(is.labels))
    changes.push(`node ${was.name}: labels were ${labelsText(was.labels)}, now ${labelsText(is.labels)}`);
  if (canonicalJson(was.capacity) !== canonicalJson(is.capacity))
    changes.push(
      `node ${was.name}: capacity was ${was.capacity.nanoCpus / 1e9} cpus/${was.capacity.memoryBytes} bytes, now ${is.capacity.nanoCpus / 1e9} cpus/${is.capacity.memoryBytes} bytes`,
    );
  return [...changes, ...replicaChanges(was.name, was.replicas, is.replicas)];
}

/**
 * What differs between the cluster a plan was computed against and the cluster now, one line per
 * difference, naming the node and the replica; empty when the plan still holds.
 */
export function clusterChanges(planned: ClusterFingerprint, now: ClusterFingerprint): string[] {
  const changes: string[] = [];
  const current = new Map(now.nodes.map((n) => [n.name, n]));
  for (const was of planned.nodes) {
    const is = current.get(was.name);
    current.delete(was.name);
    if (is === undefined) changes.push(`node ${was.name} is gone`);
    else changes.push(...nodeChanges(was, is));
  }
  for (const is of current.values()) changes.push(`node ${is.name} is new (${is.status})`);
  return changes;
}
