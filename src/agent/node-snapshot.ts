/** What a node reports to the operator: its engine, its images, every replica it runs and its volumes. */
import { LABELS, type NodeSnapshot, type ObservedReplica, type ObservedVolume } from '../api/types.js';
import type { HealthFollowing } from './health-following.js';
import type { NodeContainers } from './node-containers.js';
import type { RuntimeContainer, RuntimeVolume } from './runtime.js';

export interface NodeSnapshotSource {
  containers: NodeContainers;
  following: Pick<HealthFollowing, 'track'>;
  address: string;
  labels: Record<string, string>;
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
  // Containers seen for the first time (made by an earlier agent) get their first probe now, so a
  // snapshot right after an agent restart reports real health, not `starting`.
  await Promise.all(ours.map((container) => source.following.track(container)));
  return {
    name: containers.nodeName,
    address: source.address,
    labels: { ...source.labels },
    capacity: { nanoCpus: info.cpus * 1e9, memoryBytes: info.memoryBytes },
    engineVersion: info.engineVersion,
    status: 'ready',
    images,
    replicas: ours
      .map((container) => source.toObserved(container))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    volumes: volumes.flatMap((volume) => observedVolume(volume) ?? []),
  };
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
