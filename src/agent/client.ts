/**
 * A NodeAgent over HTTP: the operator's side of server.ts. Errors come back as the BerthError the
 * agent raised (errorFromWire); an agent that cannot be reached is ERR_AGENT_UNREACHABLE
 * (transient: the operator backs off and observes again). How long each call may take is the
 * call contract's (src/api/agent-calls.ts).
 */
import { BerthError, errorFromWire } from '../core/errors.js';
import {
  agentCallTimeoutMs,
  drainWithinCall,
  waitInCalls,
  type AgentCall,
  type AgentCallName,
  type AgentCallParams,
} from '../api/agent-calls.js';
import type { NodeAgent, NodeSnapshot, ObservedReplica, ReplicaWaitResult } from '../api/types.js';
import { httpRequestFor } from './agent-routes.js';

export interface AgentClientOptions {
  /** Base URL of the agent, e.g. http://10.0.0.5:7947 */
  url: string;
  token: string;
  nodeName: string;
}

interface AgentEndpoint {
  base: string;
  token: string;
  nodeName: string;
  closing: AbortSignal;
}

export function createAgentClient(options: AgentClientOptions): NodeAgent {
  const closing = new AbortController();
  const endpoint: AgentEndpoint = {
    base: options.url.replace(/\/+$/, ''),
    token: options.token,
    nodeName: options.nodeName,
    closing: closing.signal,
  };
  const call = <K extends AgentCallName>(method: K, ...params: AgentCallParams[K]): Promise<unknown> =>
    send(endpoint, { method, params } as AgentCall, agentCallTimeoutMs(method, params));
  return {
    name: options.nodeName,
    snapshot: async () => (await call('snapshot')) as NodeSnapshot,
    ensureReplica: async (request) => (await call('ensureReplica', request)) as ObservedReplica,
    awaitReplica: (name, { timeoutMs }) =>
      waitInCalls('await', timeoutMs, async (waitMs) => {
        return (await call('awaitReplica', name, { timeoutMs: waitMs })) as ReplicaWaitResult;
      }),
    watchReplica: (name, { durationMs }) =>
      waitInCalls('watch', durationMs, async (waitMs) => {
        return (await call('watchReplica', name, { durationMs: waitMs })) as ReplicaWaitResult;
      }),
    async removeReplica(name) {
      await call('removeReplica', name);
    },
    async setMeshRoutes(table, { drainTimeoutMs }) {
      await call('setMeshRoutes', table, { drainTimeoutMs: drainWithinCall(drainTimeoutMs) });
    },
    async close() {
      closing.abort();
    },
  };
}

async function send(endpoint: AgentEndpoint, call: AgentCall, timeoutMs: number): Promise<unknown> {
  const { method, path, body } = httpRequestFor(call);
  const what = `${method} ${path}`;
  const headers: Record<string, string> = {
    authorization: `Bearer ${endpoint.token}`,
    accept: 'application/json',
  };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  let text: string;
  try {
    response = await fetch(`${endpoint.base}${path}`, {
      method,
      headers,
      signal: AbortSignal.any([endpoint.closing, AbortSignal.timeout(timeoutMs)]),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    text = await response.text();
  } catch (error) {
    throw unreachable(endpoint, error, what, timeoutMs);
  }
  const parsed = parseJson(text);
  if (!response.ok) {
    throw errorFromWire(parsed, `agent ${endpoint.nodeName} answered ${what} with HTTP ${response.status}`);
  }
  return parsed;
}

function parseJson(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function unreachable(endpoint: AgentEndpoint, error: unknown, what: string, timeoutMs: number): BerthError {
  const { base, nodeName } = endpoint;
  if (endpoint.closing.aborted) {
    return new BerthError('ERR_AGENT_UNREACHABLE', `client for agent ${nodeName} was closed`, {
      cause: error,
    });
  }
  const name = error instanceof Error ? error.name : '';
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new BerthError(
      'ERR_AGENT_UNREACHABLE',
      `agent ${nodeName} at ${base} did not answer ${what} within ${timeoutMs} ms`,
      { cause: error },
    );
  }
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
  return new BerthError('ERR_AGENT_UNREACHABLE', `agent ${nodeName} at ${base} is unreachable: ${cause}`, {
    cause: error,
  });
}
