/**
 * The agent calls as HTTP requests, both ways: how client.ts sends a call and how server.ts turns
 * a request back into the call's positional parameters (checked by src/api/agent-calls.ts).
 *
 *   GET    /v1/node                       snapshot       -> NodeSnapshot
 *   PUT    /v1/replicas/:name             ensureReplica  ReplicaRequest -> ObservedReplica
 *   PUT    /v1/replicas/:name/prepared    prepareReplica ReplicaRequest -> 204
 *   POST   /v1/replicas/:name/await       awaitReplica   { timeoutMs }  -> ReplicaWaitResult (long poll)
 *   POST   /v1/replicas/:name/watch       watchReplica   { durationMs } -> ReplicaWaitResult (long poll)
 *   DELETE /v1/replicas/:name             removeReplica  -> 204
 *   PUT    /v1/mesh                       setMeshRoutes  { table, drainTimeoutMs } -> 204 once drained
 *   POST   /v1/replicas/:name/logs        logs           { sinceSeconds?, tail?, follow? } -> NDJSON stream
 *                                                       (src/api/log-stream.ts; errors in the stream)
 *   GET    /v1/volumes                    listVolumes    -> ObservedVolume[] (with sizes)
 *   DELETE /v1/volumes/:name              removeVolume   -> 204
 *   POST   /v1/changes                    awaitChange    { since, timeoutMs } -> { mark } (long poll)
 */
import { BerthError } from '../core/errors.js';
import type { AgentCall, AgentCallName } from '../api/agent-calls.js';
import { replicaPath } from './protocol.js';

export interface HttpRequestInput {
  params: Record<string, string>;
  body: unknown;
}

export interface AgentRoute {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  url: string;
  call: AgentCallName;
  /** The call's positional parameters as the request carries them, unchecked. */
  callParams: (input: HttpRequestInput) => unknown[];
  /** What the contract cannot see: agreement between the URL and the body. */
  check?: (call: AgentCall, input: HttpRequestInput) => void;
}

/** The body's fields, or none when the body is not a JSON object (the schema then says what is missing). */
const fields = (body: unknown): Record<string, unknown> =>
  body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};

function sameReplicaName(call: AgentCall, { params }: HttpRequestInput): void {
  const bodyName =
    call.method === 'ensureReplica' || call.method === 'prepareReplica' ? call.params[0].name : undefined;
  if (bodyName !== params['name']) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `replica name in the body (${String(bodyName)}) differs from the URL (${String(params['name'])})`,
    );
  }
}

export const AGENT_ROUTES: readonly AgentRoute[] = [
  { method: 'GET', url: '/v1/node', call: 'snapshot', callParams: () => [] },
  {
    method: 'PUT',
    url: '/v1/replicas/:name',
    call: 'ensureReplica',
    callParams: ({ body }) => [body],
    check: sameReplicaName,
  },
  {
    method: 'PUT',
    url: '/v1/replicas/:name/prepared',
    call: 'prepareReplica',
    callParams: ({ body }) => [body],
    check: sameReplicaName,
  },
  {
    method: 'POST',
    url: '/v1/replicas/:name/await',
    call: 'awaitReplica',
    callParams: ({ params, body }) => [params['name'], body],
  },
  {
    method: 'POST',
    url: '/v1/replicas/:name/watch',
    call: 'watchReplica',
    callParams: ({ params, body }) => [params['name'], body],
  },
  {
    method: 'POST',
    url: '/v1/replicas/:name/logs',
    call: 'logs',
    callParams: ({ params, body }) => [params['name'], body ?? {}],
  },
  {
    method: 'DELETE',
    url: '/v1/replicas/:name',
    call: 'removeReplica',
    callParams: ({ params }) => [params['name']],
  },
  {
    method: 'PUT',
    url: '/v1/mesh',
    call: 'setMeshRoutes',
    callParams: ({ body }) => {
      const { table, drainTimeoutMs } = fields(body);
      return [table, drainTimeoutMs === undefined ? {} : { drainTimeoutMs }];
    },
  },
  { method: 'GET', url: '/v1/volumes', call: 'listVolumes', callParams: () => [] },
  {
    method: 'DELETE',
    url: '/v1/volumes/:name',
    call: 'removeVolume',
    callParams: ({ params }) => [params['name']],
  },
  {
    method: 'POST',
    url: '/v1/changes',
    call: 'awaitChange',
    callParams: ({ body }) => {
      const { since, timeoutMs } = fields(body);
      return [since, timeoutMs === undefined ? {} : { timeoutMs }];
    },
  },
];

export interface HttpCall {
  method: AgentRoute['method'];
  path: string;
  body?: unknown;
}

/** How the HTTP client sends `call`: the inverse of AGENT_ROUTES. */
export function httpRequestFor(call: AgentCall): HttpCall {
  switch (call.method) {
    case 'snapshot':
      return { method: 'GET', path: '/v1/node' };
    case 'ensureReplica':
      return { method: 'PUT', path: replicaPath(call.params[0].name), body: call.params[0] };
    case 'prepareReplica':
      return { method: 'PUT', path: `${replicaPath(call.params[0].name)}/prepared`, body: call.params[0] };
    case 'awaitReplica':
      return { method: 'POST', path: `${replicaPath(call.params[0])}/await`, body: call.params[1] };
    case 'watchReplica':
      return { method: 'POST', path: `${replicaPath(call.params[0])}/watch`, body: call.params[1] };
    case 'removeReplica':
      return { method: 'DELETE', path: replicaPath(call.params[0]) };
    case 'logs':
      return { method: 'POST', path: `${replicaPath(call.params[0])}/logs`, body: call.params[1] };
    case 'setMeshRoutes':
      return {
        method: 'PUT',
        path: '/v1/mesh',
        body: { table: call.params[0], drainTimeoutMs: call.params[1].drainTimeoutMs },
      };
    case 'listVolumes':
      return { method: 'GET', path: '/v1/volumes' };
    case 'removeVolume':
      return { method: 'DELETE', path: `/v1/volumes/${encodeURIComponent(call.params[0])}` };
    case 'awaitChange':
      return {
        method: 'POST',
        path: '/v1/changes',
        body: { since: call.params[0], timeoutMs: call.params[1].timeoutMs },
      };
  }
}
