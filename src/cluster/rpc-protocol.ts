/**
 * The NodeAgent calls as JSON messages over the agent's WebSocket. The operator sends requests,
 * the agent checks each against the call contract (src/api/agent-calls.ts) and answers it by id; errors travel as WireError and are rebuilt with
 * errorFromWire, so a remote node fails exactly as the in-process one does.
 */
import type { RawData } from 'ws';
import type { AgentCallName } from '../api/agent-calls.js';
import type { WireError } from '../core/errors.js';
import type { RecordedPlacement } from './node-placement.js';

/** A call of the agent contract (src/api/agent-calls.ts): its method and positional parameters. */
export interface RpcRequest {
  id: number;
  method: AgentCallName;
  params: unknown[];
}

export type RpcResponse = { id: number; result: unknown } | { id: number; error: WireError };

/** Paths of the cluster endpoint (HTTPS, mutual TLS where it matters). */
export const CLUSTER_PATHS = {
  /** The CA certificate, unauthenticated: the agent checks it against the token's fingerprint. */
  ca: '/v1/ca',
  /** Token secret + node name + public key -> the node's certificate. */
  join: '/v1/join',
  /** The agent's persistent WebSocket (client certificate of role `node`). */
  connect: '/v1/connect',
  /** A node's current certificate + a new public key -> its next certificate. */
  renew: '/v1/renew',
  /** Admin API (client certificate of role `admin`). */
  nodes: '/v1/nodes',
  observed: '/v1/observed',
  /** Admin: `{node, name, options}` -> the replica's log stream (NDJSON, src/api/log-stream.ts). */
  logs: '/v1/logs',
  /** Admin: `{namespace, name}` -> a CronJob runs now, or a Job again (`berth job run`). */
  jobRun: '/v1/jobs/run',
} as const;

export { DEFAULT_CLUSTER_PORT } from '../core/berth-ports.js';

/**
 * Heartbeats: the operator pings every agent every HEARTBEAT_INTERVAL_MS. A node it has not heard
 * from for NODE_DOWN_AFTER_MS (no pong, or no connection at all) is marked down, and a reconcile
 * reschedules its replicas; Swarm's figure is 5 s too. Within that grace, a node whose connection
 * dropped (an agent restart) is observed as it last answered, so nothing moves for a short blip.
 * The agent reconnects when it has heard nothing from the operator for AGENT_SILENCE_MS.
 */
export const HEARTBEAT_INTERVAL_MS = 1000;
export const NODE_DOWN_AFTER_MS = 5000;
export const AGENT_SILENCE_MS = 10_000;

/** A WebSocket message as text, whichever shape ws delivered it in. */
export function messageText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/**
 * Header of the operator's answer to the agent's WebSocket upgrade: the labels and address it
 * holds for the node (base64url of JSON; either may be absent for a node joined by an earlier version).
 */
export const PLACEMENT_HEADER = 'x-berth-node-placement';

export function encodePlacementHeader(placement: Partial<RecordedPlacement>): string {
  return Buffer.from(JSON.stringify(placement), 'utf8').toString('base64url');
}

/** The placement of the header, or null when it is absent or not one. */
export function decodePlacementHeader(
  value: string | string[] | undefined,
): Partial<RecordedPlacement> | null {
  if (typeof value !== 'string') return null;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
    return parsed !== null && typeof parsed === 'object' ? parsed : null;
  } catch {
    return null;
  }
}
