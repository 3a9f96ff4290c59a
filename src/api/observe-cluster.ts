import type { NodeAgent, NodeSnapshot, ObservedState } from './types.js';
import type { Logger } from '../core/log.js';

/**
 * Asks every agent what runs, in parallel. An agent that does not answer is reported as a
 * `down` node with no replicas: the planner neither places on it nor asks it to do anything.
 */
export async function observeCluster(
  agents: ReadonlyMap<string, NodeAgent>,
  log: Logger,
): Promise<ObservedState> {
  const nodes = await Promise.all(
    [...agents.values()].map(async (agent): Promise<NodeSnapshot> => {
      try {
        return await agent.snapshot();
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
        };
      }
    }),
  );
  return { nodes };
}
