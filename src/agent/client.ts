/**
 * A NodeAgent over HTTPS (or HTTP on loopback): the operator's side of server.ts. Errors come back
 * as the BerthError the agent raised (errorFromWire); an agent that cannot be reached is
 * ERR_AGENT_UNREACHABLE (transient: the operator backs off and observes again), one whose
 * certificate is not the pinned one ERR_AGENT_UNAUTHORIZED (agent-connection.ts). How long each
 * call may take is the call contract's (src/api/agent-calls.ts).
 */
import { BerthError, errorFromWire } from '../core/errors.js';
import {
  LOG_STREAM_IDLE_MS,
  agentCallTimeoutMs,
  drainWithinCall,
  MAX_CALL_WAIT_MS,
  waitInCalls,
  type AgentCall,
  type AgentCallName,
  type AgentCallParams,
} from '../api/agent-calls.js';
import { asCompatible } from '../api/agent-protocol.js';
import { readLogStream } from '../api/log-stream.js';
import type {
  NodeAgent,
  NodeChangeMark,
  NodeSnapshot,
  ObservedReplica,
  ReplicaLogLine,
  ReplicaLogOptions,
  ObservedVolume,
  ReplicaWaitResult,
} from '../api/types.js';
import { openAgentConnection, type AgentConnection } from './agent-connection.js';
import { httpRequestFor } from './agent-routes.js';
import { parseAgentToken } from './agent-token.js';

export interface AgentClientOptions {
  /** Base URL of the agent, e.g. https://10.0.0.5:7947 (http:// on loopback only). */
  url: string;
  /** The agent's token as `berth agent` printed it (agent-token.ts). */
  token: string;
  nodeName: string;
}

interface AgentEndpoint {
  connection: AgentConnection;
  /** The agent's secret, sent as `Bearer`; the token's fingerprint is the connection's pin. */
  secret: string;
  nodeName: string;
  closing: AbortSignal;
}

/** Throws (ERR_AGENT_UNAUTHORIZED, ERR_BAD_REQUEST) when the URL and the token do not fit together. */
export function createAgentClient(options: AgentClientOptions): NodeAgent {
  const closing = new AbortController();
  const token = parseAgentToken(options.token);
  const endpoint: AgentEndpoint = {
    connection: openAgentConnection(options.url, token),
    secret: token.secret,
    nodeName: options.nodeName,
    closing: closing.signal,
  };
  const call = <K extends AgentCallName>(method: K, ...params: AgentCallParams[K]): Promise<unknown> =>
    send(endpoint, { method, params } as AgentCall, agentCallTimeoutMs(method, params));
  let last: NodeSnapshot | null = null;
  return {
    name: options.nodeName,
    snapshot: async () => {
      last = asCompatible((await call('snapshot')) as NodeSnapshot);
      return last;
    },
    reportedAgent: () =>
      last === null
        ? null
        : { version: last.agent?.version ?? null, incompatible: last.incompatible ?? null },
    ensureReplica: async (request) => (await call('ensureReplica', request)) as ObservedReplica,
    async prepareReplica(request) {
      await call('prepareReplica', request);
    },
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
    listVolumes: async () => (await call('listVolumes')) as ObservedVolume[],
    async removeVolume(name) {
      await call('removeVolume', name);
    },
    async setMeshRoutes(table, { drainTimeoutMs }) {
      await call('setMeshRoutes', table, { drainTimeoutMs: drainWithinCall(drainTimeoutMs) });
    },
    logs: (name, logOptions) => streamLogs(endpoint, name, logOptions),
    awaitChange: async (since, { timeoutMs }) =>
      (await call('awaitChange', since, {
        timeoutMs: Math.min(timeoutMs, MAX_CALL_WAIT_MS),
      })) as NodeChangeMark,
    async close() {
      closing.abort();
      endpoint.connection.close();
    },
  };
}

async function send(endpoint: AgentEndpoint, call: AgentCall, timeoutMs: number): Promise<unknown> {
  const { method, path, body } = httpRequestFor(call);
  const what = `${method} ${path}`;
  const headers: Record<string, string> = {
    authorization: `Bearer ${endpoint.secret}`,
    accept: 'application/json',
  };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let answer: { status: number; text: string };
  const deadline = AbortSignal.timeout(timeoutMs);
  try {
    answer = await endpoint.connection.request(path, {
      method,
      headers,
      signal: AbortSignal.any([endpoint.closing, deadline]),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (error) {
    // A certificate that is not the pinned one: said as is, it is no network fault.
    if (error instanceof BerthError) throw error;
    throw unreachable(endpoint, error, what, deadline.aborted ? timeoutMs : null);
  }
  const parsed = parseJson(answer.text);
  if (answer.status < 200 || answer.status >= 300) {
    throw errorFromWire(parsed, `agent ${endpoint.nodeName} answered ${what} with HTTP ${answer.status}`);
  }
  return parsed;
}

/**
 * A `logs` call: its NDJSON answer read as it comes. Given up (ERR_AGENT_UNREACHABLE) when nothing,
 * not even a keepalive, came for LOG_STREAM_IDLE_MS; ended when the caller stops iterating.
 */
async function* streamLogs(
  endpoint: AgentEndpoint,
  name: string,
  options: ReplicaLogOptions,
): AsyncGenerator<ReplicaLogLine> {
  const { method, path, body } = httpRequestFor({ method: 'logs', params: [name, options] });
  const what = `${method} ${path}`;
  const ended = new AbortController();
  let idle: NodeJS.Timeout | undefined;
  let idledOut = false;
  const heard = (): void => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      idledOut = true;
      ended.abort();
    }, LOG_STREAM_IDLE_MS);
  };
  heard();
  let response: Awaited<ReturnType<AgentEndpoint['connection']['stream']>>['body'] | undefined;
  try {
    const answer = await endpoint.connection.stream(path, {
      method,
      headers: {
        authorization: `Bearer ${endpoint.secret}`,
        accept: 'application/x-ndjson',
        'content-type': 'application/json',
      },
      body: JSON.stringify(body ?? {}),
      signal: AbortSignal.any([endpoint.closing, ended.signal]),
    });
    response = answer.body;
    if (answer.status !== 200) {
      const chunks: Buffer[] = [];
      for await (const chunk of answer.body) chunks.push(chunk as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      throw errorFromWire(
        parseJson(text),
        `agent ${endpoint.nodeName} answered ${what} with HTTP ${answer.status}`,
      );
    }
    yield* readLogStream(answer.body, `logs of ${name} on node ${endpoint.nodeName}`, heard);
  } catch (error) {
    if (error instanceof BerthError) throw error;
    throw unreachable(endpoint, error, what, idledOut ? LOG_STREAM_IDLE_MS : null);
  } finally {
    clearTimeout(idle);
    ended.abort();
    response?.destroy();
  }
}

function parseJson(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** `timedOutAfterMs`: the call's time was up (whatever error the abort surfaced as). */
function unreachable(
  endpoint: AgentEndpoint,
  error: unknown,
  what: string,
  timedOutAfterMs: number | null,
): BerthError {
  const { nodeName } = endpoint;
  const { base } = endpoint.connection;
  if (endpoint.closing.aborted) {
    return new BerthError('ERR_AGENT_UNREACHABLE', `client for agent ${nodeName} was closed`, {
      cause: error,
    });
  }
  if (timedOutAfterMs !== null) {
    return new BerthError(
      'ERR_AGENT_UNREACHABLE',
      `agent ${nodeName} at ${base} did not answer ${what} within ${timedOutAfterMs} ms`,
      { cause: error },
    );
  }
  const cause = error instanceof Error ? error.message : String(error);
  return new BerthError('ERR_AGENT_UNREACHABLE', `agent ${nodeName} at ${base} is unreachable: ${cause}`, {
    cause: error,
  });
}
