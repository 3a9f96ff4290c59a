/** What the agent's HTTP server and its client agree on, beyond the call contract in src/api. */

/** Requests carry file contents (configs, secrets), so they may be large, within reason. */
export const AGENT_BODY_LIMIT_BYTES = 8 * 1024 * 1024;

/** The port `berth agent` listens on by default. */
export const DEFAULT_AGENT_PORT = 7947;

export function replicaPath(name: string): string {
  return `/v1/replicas/${encodeURIComponent(name)}`;
}
