/** What a node reports to the operator: its engine, its images, every replica and Job run, and its volumes. */
import { AGENT_PROTOCOL } from '../api/agent-protocol.js';
import {
  LABELS,
  type NodeSnapshot,
  type ObservedJobRun,
  type ObservedReplica,
  type ObservedVolume,
} from '../api/types.js';
import { BERTH_VERSION } from '../core/version.js';
import type { HealthFollowing } from './health-following.js';
import type { MeshMembership } from './mesh-membership.js';
import type { NodeContainers } from './node-containers.js';
import type { RuntimeContainer, RuntimeVolume } from './runtime.js';

export interface NodeSnapshotSource {
  containers: NodeContainers;
  following: Pick<HealthFollowing, 'track'>;
  address: string;
  labels: Record<string, string>;
  /** Says what carries the node's published TCP ports; null before the first routing table. */
  mesh: Pick<MeshMembership, 'dataPlane'>;
  toObserved(container: RuntimeContainer): ObservedReplica;
}

export async function readNodeSnapshot(source: NodeSnapshotSource): Promise<NodeSnapshot> {
  const { containers } = source;
  const [info, images, ours, volumes] = await Promise.all([
    containers.runtime.info(),
    containers.runtime.listImages(),
    containers.list(),
    containers.runtime.listManagedVolumes(),
  ]);
  const jobRuns = ours.filter((container) => container.labels[LABELS.job] !== undefined);
  const replicas = ours.filter((container) => container.labels[LABELS.job] === undefined);
  // Containers seen for the first time (made by an earlier agent) get their first probe now, so a
  // snapshot right after an agent restart reports real health, not `starting`.
  await Promise.all(replicas.map((container) => source.following.track(container)));
  return {
    name: containers.nodeName,
    address: source.address,
    labels: { ...source.labels },
    capacity: { nanoCpus: info.cpus * 1e9, memoryBytes: info.memoryBytes },
    engineVersion: info.engineVersion,
    status: 'ready',
    images,
    replicas: replicas.map((container) => source.toObserved(container)).sort(byName),
    jobRuns: (await Promise.all(jobRuns.map((container) => observeJobRun(containers, container)))).sort(
      byName,
    ),
    volumes: volumes.flatMap((volume) => observedVolume(volume) ?? []),
    ...dataPlaneOf(source.mesh),
    agent: { version: BERTH_VERSION, protocol: AGENT_PROTOCOL },
  };
}

function dataPlaneOf(mesh: Pick<MeshMembership, 'dataPlane'>): Pick<NodeSnapshot, 'dataPlane'> {
  const dataPlane = mesh.dataPlane();
  return dataPlane === null ? {} : { dataPlane };
}

/** A berth volume as the operator sees it; null for one without berth's labels (made by hand). */
export function observedVolume(volume: RuntimeVolume): ObservedVolume | null {
  const { labels } = volume;
  const namespace = labels[LABELS.namespace];
  const service = labels[LABELS.service];
  const name = labels[LABELS.volume];
  const slot = labels[LABELS.slot];
  if (namespace === undefined || service === undefined || name === undefined || slot === undefined)
    return null;
  return {
    name: volume.name,
    namespace,
    service,
    volume: name,
    slot,
    driver: volume.driver,
    sizeBytes: volume.sizeBytes,
  };
}

/** Lines of output kept of a finished run: enough for the error that ended it. */
export const JOB_RUN_OUTPUT_LINES = 20;

async function observeJobRun(
  containers: NodeContainers,
  container: RuntimeContainer,
): Promise<ObservedJobRun> {
  const label = (name: string) => container.labels[name] ?? '';
  const finished = container.state === 'exited' || container.state === 'dead';
  return {
    name: container.name,
    node: containers.nodeName,
    namespace: label(LABELS.namespace),
    job: label(LABELS.job),
    ...(container.labels[LABELS.cronJob] === undefined ? {} : { cronJob: label(LABELS.cronJob) }),
    attempt: Number(label(LABELS.attempt)) || 0,
    specHash: label(LABELS.specHash),
    revision: label(LABELS.revision),
    state: container.state,
    exitCode: finished ? container.exitCode : null,
    startedAt: container.startedAt,
    finishedAt: finished ? container.finishedAt : null,
    output: finished ? await containers.runtime.logTail(container.name, JOB_RUN_OUTPUT_LINES) : null,
  };
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
