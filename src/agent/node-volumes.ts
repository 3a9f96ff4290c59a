/** The node's berth volumes as agent calls: listed with their sizes, and removed by name. */
import type { NodeAgent } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { observedVolume } from './node-snapshot.js';
import type { ContainerRuntime } from './runtime.js';

export function nodeVolumes(runtime: ContainerRuntime): Pick<NodeAgent, 'listVolumes' | 'removeVolume'> {
  return {
    async listVolumes() {
      const volumes = await runtime.listManagedVolumes({ withSizes: true });
      return volumes.flatMap((volume) => observedVolume(volume) ?? []);
    },
    async removeVolume(name) {
      // The wire's schema holds remote calls to berth's names; this holds the embedded agent too.
      if (!name.startsWith('berth.')) {
        throw new BerthError('ERR_BAD_REQUEST', `${name} is not a berth volume`);
      }
      await runtime.removeVolume(name);
    },
  };
}
