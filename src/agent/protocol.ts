/** What the agent's HTTP server and its client agree on, beyond the call contract in src/api. */

/** Requests carry file contents (configs, secrets), so they may be large, within reason. */
export const AGENT_BODY_LIMIT_BYTES = 8 * 1024 * 1024;

export { DEFAULT_AGENT_PORT } from '../core/berth-ports.js';

export function replicaPath(name: string): string {
  return `/v1/replicas/${encodeURIComponent(name)}`;
}
