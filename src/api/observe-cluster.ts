import type { NodeAgent, NodeSnapshot, ObservedState, ObservedVolume } from './types.js';
import type { Logger } from '../core/log.js';

/**
 * The volumes each node reported last, by node name. A node that goes down keeps its volumes: a
 * slot whose volume is there must wait for it, not start empty elsewhere, so a down node is
 * reported with the volumes it had. Kept for the life of the process only (see the Volumes limits
 * in docs/manifests.md).
 */
const lastReportedVolumes = new Map<string, ObservedVolume[]>();

/**
 * Asks every agent what runs, in parallel. An agent that does not answer is reported as a
 * `down` node with no replicas (and the volumes it last reported): the planner neither places on
 * it nor asks it to do anything.
 */
export async function observeCluster(
  agents: ReadonlyMap<string, NodeAgent>,
  log: Logger,
): Promise<ObservedState> {
  const nodes = await Promise.all(
    [...agents.values()].map(async (agent): Promise<NodeSnapshot> => {
      try {
        const snapshot = await agent.snapshot();
        if (snapshot.volumes !== undefined && snapshot.status !== 'down')
          lastReportedVolumes.set(agent.name, snapshot.volumes);
        return snapshot;
      } catch (error) {
        log.warn({ node: agent.name, err: error }, 'node did not answer; treating it as down');
        return {
          name: agent.name,
          address: '',
          labels: {},
          capacity: { nanoCpus: 0, memoryBytes: 0 },
          engineVersion: '',
          status: 'down',
          images: [],
          replicas: [],
          volumes: lastReportedVolumes.get(agent.name) ?? [],
        };
      }
    }),
  );
  return { nodes };
}
