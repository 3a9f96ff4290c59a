/**
 * A NodeAgent over HTTP: the operator's side of server.ts. Errors come back as the BerthError the
 * agent raised (errorFromWire); an agent that cannot be reached is ERR_AGENT_UNREACHABLE
 * (transient: the operator backs off and observes again).
 */
import { BerthError, errorFromWire } from '../core/errors.js';
import type {
  MeshRoutes,
  NodeAgent,
  NodeSnapshot,
  ObservedReplica,
  ReplicaRequest,
  ReplicaWaitResult,
} from '../api/types.js';
import { MAX_LONG_POLL_MS, replicaPath } from './protocol.js';

export interface AgentClientOptions {
  /** Base URL of the agent, e.g. http://10.0.0.5:7947 */
  url: string;
  token: string;
  nodeName: string;
}

/** Longest a plain request may take. Creating a replica may pull an image; removing waits out a grace period. */
const SNAPSHOT_TIMEOUT_MS = 30_000;
const SLOW_REQUEST_TIMEOUT_MS = 15 * 60_000;
/** Head-room on top of a long poll's own duration before the client gives up on the answer. */
const LONG_POLL_SLACK_MS = 30_000;

export function createAgentClient(options: AgentClientOptions): NodeAgent {
  const base = options.url.replace(/\/+$/, '');
  const nodeName = options.nodeName;
  const closing = new AbortController();

  async function call<T>(method: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
    const signal = AbortSignal.any([closing.signal, AbortSignal.timeout(timeoutMs)]);
    const headers: Record<string, string> = {
      authorization: `Bearer ${options.token}`,
      accept: 'application/json',
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, {
        method,
        headers,
        signal,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (error) {
      throw unreachable(error, method, path, timeoutMs);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw unreachable(error, method, path, timeoutMs);
    }
    let parsed: unknown = undefined;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    if (!response.ok) {
      throw errorFromWire(
        parsed,
        `agent ${nodeName} answered ${method} ${path} with HTTP ${response.status}`,
      );
    }
    return parsed as T;
  }

  function unreachable(error: unknown, method: string, path: string, timeoutMs: number): BerthError {
    if (closing.signal.aborted) {
      return new BerthError('ERR_AGENT_UNREACHABLE', `client for agent ${nodeName} was closed`, {
        cause: error,
      });
    }
    const name = error instanceof Error ? error.name : '';
    if (name === 'TimeoutError' || name === 'AbortError') {
      return new BerthError(
        'ERR_AGENT_UNREACHABLE',
        `agent ${nodeName} at ${base} did not answer ${method} ${path} within ${timeoutMs} ms`,
        { cause: error },
      );
    }
    const cause =
      error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
    return new BerthError('ERR_AGENT_UNREACHABLE', `agent ${nodeName} at ${base} is unreachable: ${cause}`, {
      cause: error,
    });
  }

  /** Splits a long wait into polls the HTTP stack will not cut off. */
  async function longPoll(
    name: string,
    kind: 'await' | 'watch',
    totalMs: number,
  ): Promise<ReplicaWaitResult> {
    const deadline = Date.now() + totalMs;
    for (;;) {
      const chunk = Math.max(1, Math.min(MAX_LONG_POLL_MS, deadline - Date.now()));
      const body = kind === 'await' ? { timeoutMs: chunk } : { durationMs: chunk };
      const result = await call<ReplicaWaitResult>(
        'POST',
        `${replicaPath(name)}/${kind}`,
        body,
        chunk + LONG_POLL_SLACK_MS,
      );
      const more = deadline - Date.now() > 0;
      // `await` goes on after a timeout; `watch` goes on after a window survived.
      const goOn = kind === 'await' ? result.outcome === 'timeout' : result.outcome === 'healthy';
      if (!goOn || !more) return result;
    }
  }

  return {
    name: nodeName,

    snapshot() {
      return call<NodeSnapshot>('GET', '/v1/node', undefined, SNAPSHOT_TIMEOUT_MS);
    },

    ensureReplica(request: ReplicaRequest) {
      return call<ObservedReplica>('PUT', replicaPath(request.name), request, SLOW_REQUEST_TIMEOUT_MS);
    },

    awaitReplica(name, { timeoutMs }) {
      return longPoll(name, 'await', timeoutMs);
    },

    watchReplica(name, { durationMs }) {
      return longPoll(name, 'watch', durationMs);
    },

    async removeReplica(name) {
      await call<undefined>('DELETE', replicaPath(name), undefined, SLOW_REQUEST_TIMEOUT_MS);
    },

    async setMeshRoutes(table: MeshRoutes, { drainTimeoutMs }) {
      const drain = Math.min(drainTimeoutMs, MAX_LONG_POLL_MS);
      await call<undefined>('PUT', '/v1/mesh', { table, drainTimeoutMs: drain }, drain + LONG_POLL_SLACK_MS);
    },

    async close() {
      closing.abort();
    },
  };
}
