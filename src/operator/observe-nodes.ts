import { observeCluster } from '../api/observe-cluster.js';
import type { NodeAgent, ObservedState } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';

/**
 * Every node's state. When nodes exist but none answers, nothing observed is true and no plan
 * over it can be: that is the infrastructure's fault, never the commit's, so it is an error that
 * is retried with back-off instead of a plan that would place everything nowhere.
 */
export async function observeNodes(
  agents: ReadonlyMap<string, NodeAgent>,
  log: Logger,
): Promise<ObservedState> {
  const observed = await observeCluster(agents, log);
  if (observed.nodes.length > 0 && observed.nodes.every((node) => node.status === 'down')) {
    throw new BerthError(
      'ERR_AGENT_UNREACHABLE',
      `no node answers (${observed.nodes.map((node) => node.name).join(', ')}): is the agent or its Docker engine running?`,
    );
  }
  return observed;
}
