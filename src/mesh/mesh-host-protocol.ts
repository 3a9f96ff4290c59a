/**
 * The wire between an agent and its node's mesh host (mesh-host-server.ts): one JSON object per
 * line over a unix socket in the agent's state dir, requests carry an id and each gets one answer
 * with that id. The socket is the agent's (mode 0600), but a request is still checked as if anyone
 * had written it: the routing table against the agent-call contract (setMeshRoutes), the rest here.
 *
 *   method        params                          result
 *   hello         {}                              MeshHostHello
 *   apply         { table, drainTimeoutMs }       { dataPlane }, once drained (see NodeMesh.apply)
 *   ports         {}                              published ports served now
 *   containerDns  { namespace }                   resolver settings, or null
 *   shutdown      {}                              null; then the host closes and exits
 *
 * MESH_HOST_PROTOCOL changes whenever a message changes meaning: an agent adopts a running mesh
 * host only when it speaks the same protocol, and replaces it otherwise.
 */
import { BerthError } from '../core/errors.js';
import { parseAgentCall } from '../api/agent-calls.js';
import type { MeshRoutes } from '../api/types.js';
import type { DataPlane, DataPlaneChoice } from './nftables.js';

export const MESH_HOST_PROTOCOL = 2;

/** The longest line either side accepts: a routing table of thousands of services fits many times. */
export const MAX_MESH_HOST_LINE_BYTES = 16 * 1024 * 1024;

/** Files of the mesh host in the agent's state dir. */
export const MESH_HOST_FILES = {
  socket: 'mesh-host.sock',
  pid: 'mesh-host.pid',
  log: 'mesh-host.log',
} as const;

/** What a mesh host serves: an agent adopts it only when this is what it would start itself. */
export interface MeshHostIdentity {
  /** The node's address, where published ports are served. */
  address: string;
  /** The range of service addresses; null without service discovery. */
  serviceAddresses: string | null;
  /** What the host was asked to carry published TCP ports with (nftables.ts). */
  dataPlane: DataPlaneChoice;
}

export interface MeshHostHello extends MeshHostIdentity {
  protocol: number;
  pid: number;
  /** Version of the newest table applied, or null before the first. */
  tableVersion: number | null;
  /** What carries published TCP ports now; null before the first table. */
  serving: DataPlane | null;
}

export type MeshHostRequest =
  | { id: number; method: 'hello' | 'ports' | 'shutdown' }
  | { id: number; method: 'apply'; table: MeshRoutes; drainTimeoutMs: number }
  | { id: number; method: 'containerDns'; namespace: string };

export type MeshHostAnswer =
  { id: number | null; result: unknown } | { id: number | null; error: { code: string; message: string } };

const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function bad(message: string): BerthError {
  return new BerthError('ERR_BAD_REQUEST', `mesh host: ${message}`);
}

/**
 * A request line, checked: the request, or the error to answer with (under the request's id when
 * it has one; a line without one is a broken peer, to be cut off).
 */
export function parseMeshHostRequest(
  line: string,
): { id: number; request: MeshHostRequest } | { id: number | null; error: BerthError } {
  let message: unknown;
  try {
    message = JSON.parse(line);
  } catch {
    return { id: null, error: bad('a request is one JSON object per line') };
  }
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    return { id: null, error: bad('a request is a JSON object') };
  }
  const { id, method, params } = message as { id?: unknown; method?: unknown; params?: unknown };
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
    return { id: null, error: bad('a request needs an id') };
  }
  const fields = (typeof params === 'object' && params !== null ? params : {}) as Record<string, unknown>;
  try {
    return { id, request: checkedRequest(id, method, fields) };
  } catch (error) {
    return { id, error: error instanceof BerthError ? error : bad(String(error)) };
  }
}

function checkedRequest(id: number, method: unknown, fields: Record<string, unknown>): MeshHostRequest {
  switch (method) {
    case 'hello':
    case 'ports':
    case 'shutdown':
      return { id, method };
    case 'apply': {
      // The operator's setMeshRoutes contract, so the agent and its mesh host refuse the same tables.
      const call = parseAgentCall('setMeshRoutes', [
        fields['table'],
        { drainTimeoutMs: fields['drainTimeoutMs'] },
      ]);
      if (call.method !== 'setMeshRoutes') throw bad('unreachable: not a table');
      const [table, { drainTimeoutMs }] = call.params;
      return { id, method, table, drainTimeoutMs };
    }
    case 'containerDns': {
      const namespace = fields['namespace'];
      if (typeof namespace !== 'string' || !NAMESPACE.test(namespace)) {
        throw bad('containerDns needs a namespace (a DNS label)');
      }
      return { id, method, namespace };
    }
    default:
      throw bad(`unknown method ${JSON.stringify(method) ?? 'undefined'}`);
  }
}

/**
 * Splits a byte stream into lines, at most MAX_MESH_HOST_LINE_BYTES each (`onTooLong` once, then
 * nothing more: the peer is broken or hostile and the connection is to be closed).
 */
export function lineReader(
  onLine: (line: string) => void,
  onTooLong: () => void,
  limit = MAX_MESH_HOST_LINE_BYTES,
): (chunk: Buffer) => void {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let broken = false;
  return (chunk) => {
    if (broken) return;
    let start = 0;
    for (let end = chunk.indexOf(10, start); end !== -1; end = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, end);
      if (pendingBytes + piece.length > limit) break;
      const line = Buffer.concat([...pending, piece]).toString('utf8');
      pending = [];
      pendingBytes = 0;
      start = end + 1;
      if (line.trim() !== '') onLine(line);
    }
    const rest = chunk.subarray(start);
    if (pendingBytes + rest.length > limit || rest.includes(10)) {
      broken = true;
      pending = [];
      onTooLong();
      return;
    }
    if (rest.length > 0) {
      pending.push(rest);
      pendingBytes += rest.length;
    }
  };
}
