/**
 * The containers of one node on its engine: the managed containers labelled with the node's name
 * (berth.node). Containers of other node names on the same engine are invisible to the agent,
 * which lets several agents share one engine (tests, or a node that was renamed and whose old
 * containers are left alone).
 */
import { LABELS } from '../api/types.js';
import type { ContainerRuntime, RuntimeContainer } from './runtime.js';

export interface NodeContainers {
  readonly runtime: ContainerRuntime;
  readonly nodeName: string;
  isOurs(container: RuntimeContainer): boolean;
  /** The container of that name when it belongs to this node; null otherwise. */
  observe(name: string): Promise<RuntimeContainer | null>;
  /** Every managed container of this node, in any state. */
  list(): Promise<RuntimeContainer[]>;
}

export function nodeContainers(runtime: ContainerRuntime, nodeName: string): NodeContainers {
  const isOurs = (container: RuntimeContainer) => container.labels[LABELS.node] === nodeName;
  return {
    runtime,
    nodeName,
    isOurs,
    async observe(name) {
      const container = await runtime.inspect(name);
      return container !== null && isOurs(container) ? container : null;
    },
    async list() {
      return (await runtime.listManaged()).filter(isOurs);
    },
  };
}
