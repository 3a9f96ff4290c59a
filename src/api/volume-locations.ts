import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic-file.js';
import type { Logger } from '../core/log.js';
import type { ObservedVolume, ReplicaRequest } from './types.js';

/** The file in the state dir that keeps where each node's volumes are. */
export const VOLUME_LOCATIONS_FILE = 'volumes.json';

interface VolumeLocationsFile {
  /** Node name -> the berth volumes it reported last (sizes left out: they change all the time). */
  nodes: Record<string, ObservedVolume[]>;
}

/**
 * The volumes each node reported last, by node name. A node that goes down keeps its volumes: a
 * slot whose volume is there must wait for it, not start empty elsewhere, so a down node is
 * reported with the volumes it had. With a state dir, the record is kept in
 * `<state-dir>/volumes.json`, so an operator restarted while the node is down still knows.
 */
export class VolumeLocations {
  private readonly byNode: Map<string, ObservedVolume[]>;
  private written: string;
  /** Writes in order, one at a time: the last one written is the newest record. */
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly path: string | null) {
    this.byNode = new Map(Object.entries(path === null ? {} : readRecord(path)));
    this.written = this.serialise();
  }

  lastOf(node: string): ObservedVolume[] | undefined {
    return this.byNode.get(node);
  }

  remember(node: string, volumes: ObservedVolume[]): void {
    this.byNode.set(
      node,
      volumes.map((v) => ({ ...v, sizeBytes: null })),
    );
  }

  /**
   * The volumes a replica is about to be started with on `node`: known to be there from the
   * moment they may exist, so a node lost before it next reports still holds its slot.
   */
  placed(node: string, request: Pick<ReplicaRequest, 'namespace' | 'service' | 'slot' | 'volumes'>): void {
    const known = this.byNode.get(node) ?? [];
    const added: ObservedVolume[] = (request.volumes ?? [])
      .filter((v) => !known.some((k) => k.name === v.source))
      .map((v) => ({
        name: v.source,
        namespace: request.namespace,
        service: request.service,
        volume: v.volume,
        slot: request.slot,
        driver: v.driver,
        sizeBytes: null,
      }));
    if (added.length > 0) this.byNode.set(node, [...known, ...added]);
  }

  /** A node removed from the cluster (`berth node rm`): what it held is no longer anyone's. */
  forget(node: string): void {
    this.byNode.delete(node);
  }

  /** Writes the record when it changed since the last write; a failed write is logged and retried next time. */
  save(log: Logger): Promise<void> {
    const text = this.serialise();
    if (this.path === null || text === this.written) return this.writing;
    const path = this.path;
    this.written = text;
    this.writing = this.writing.then(() =>
      writeFileAtomic(path, text).catch((error: unknown) => {
        this.written = '';
        log.warn({ err: error, path }, 'could not record where the volumes are');
      }),
    );
    return this.writing;
  }

  private serialise(): string {
    const nodes: VolumeLocationsFile['nodes'] = {};
    for (const name of [...this.byNode.keys()].sort()) {
      const volumes = this.byNode.get(name)!;
      if (volumes.length > 0) nodes[name] = [...volumes].sort((a, b) => (a.name < b.name ? -1 : 1));
    }
    return `${JSON.stringify({ nodes } satisfies VolumeLocationsFile, null, 2)}\n`;
  }
}

/** What the file says; a missing or unreadable file is an empty record (live nodes fill it in). */
function readRecord(path: string): Record<string, ObservedVolume[]> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return {};
  }
  try {
    const parsed = JSON.parse(text) as Partial<VolumeLocationsFile>;
    return parsed.nodes !== null && typeof parsed.nodes === 'object' ? parsed.nodes : {};
  } catch {
    return {};
  }
}

let current = new VolumeLocations(null);

/** The record observeCluster reads and writes (in memory only until keepVolumeLocationsIn). */
export function volumeLocations(): VolumeLocations {
  return current;
}

/**
 * Keeps the record in `<stateDir>/volumes.json` from now on, starting from what that file says:
 * called once by each command that opens the nodes of a state dir.
 */
export function keepVolumeLocationsIn(stateDir: string): void {
  current = new VolumeLocations(join(stateDir, VOLUME_LOCATIONS_FILE));
}
