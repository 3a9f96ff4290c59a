import type { NodeAgent, NodeSnapshot, ObservedState } from './types.js';
import type { Logger } from '../core/log.js';
import { volumeLocations } from './volume-locations.js';

/**
 * Asks every agent what runs, in parallel. An agent that does not answer is reported as a
 * `down` node with no replicas (and the volumes it last reported): the planner neither places on
 * it nor asks it to do anything.
 */
export async function observeCluster(
  agents: ReadonlyMap<string, NodeAgent>,
  log: Logger,
): Promise<ObservedState> {
  const lastReportedVolumes = volumeLocations();
  const nodes = await Promise.all(
    [...agents.values()].map(async (agent): Promise<NodeSnapshot> => {
      try {
        const snapshot = await agent.snapshot();
        if (snapshot.incompatible !== undefined) warnIncompatible(log, agent.name, snapshot.incompatible);
        if (snapshot.volumes !== undefined && snapshot.status !== 'down')
          lastReportedVolumes.remember(agent.name, snapshot.volumes);
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
          volumes: lastReportedVolumes.lastOf(agent.name) ?? [],
        };
      }
    }),
  );
  await lastReportedVolumes.save(log);
  return { nodes };
}

/** Nodes whose too-old agent was said, so the log says it once per node, not every observation. */
const saidIncompatible = new Set<string>();

function warnIncompatible(log: Logger, node: string, reason: string): void {
  if (saidIncompatible.has(node)) return;
  saidIncompatible.add(node);
  log.warn({ node }, `node ${node}: ${reason}`);
}
