/**
 * How `berth agent` and `berth run` start their node's mesh host. Apart from mesh-host.ts, which
 * serves the mesh and its DNS: the processes that only start one never load the balancers.
 */
import { resolve } from 'node:path';
import { BerthError } from '../core/errors.js';
import type { MeshHostLaunch } from '../mesh/mesh-host-client.js';

/** How this process was started, to start `berth mesh-host` the same way (also from source, in tests). */
export function meshHostLaunch(): MeshHostLaunch {
  const script = process.argv[1];
  if (script === undefined) throw new BerthError('ERR_INTERNAL', 'cannot tell how berth was started');
  // A debugger's or the test runner's flags are for this process only.
  const flags = process.execArgv.filter((flag) => !/^--(inspect|test)/.test(flag));
  return { command: process.execPath, args: [...flags, resolve(script)] };
}
