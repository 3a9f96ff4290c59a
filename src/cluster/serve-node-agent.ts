import type WebSocket from 'ws';
import type { MeshRoutes, NodeAgent, ReplicaRequest } from '../api/types.js';
import { BerthError, asBerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { messageText, RPC_METHODS, type RpcRequest, type RpcResponse } from './rpc-protocol.js';

function isRequest(value: unknown): value is RpcRequest {
  if (value === null || typeof value !== 'object') return false;
  const { id, method, params } = value as Record<string, unknown>;
  return (
    typeof id === 'number' &&
    typeof method === 'string' &&
    (RPC_METHODS as readonly string[]).includes(method) &&
    Array.isArray(params)
  );
}

function dispatch(agent: NodeAgent, request: RpcRequest): Promise<unknown> {
  const [first, second] = request.params;
  const name = (): string => {
    if (typeof first !== 'string')
      throw new BerthError('ERR_BAD_REQUEST', `${request.method} needs a replica name`);
    return first;
  };
  const number = (field: string): number => {
    const value = (second as Record<string, unknown> | undefined)?.[field];
    if (typeof value !== 'number' || value < 0)
      throw new BerthError('ERR_BAD_REQUEST', `${request.method} needs ${field}`);
    return value;
  };
  switch (request.method) {
    case 'snapshot':
      return agent.snapshot();
    case 'ensureReplica':
      return agent.ensureReplica(first as ReplicaRequest);
    case 'awaitReplica':
      return agent.awaitReplica(name(), { timeoutMs: number('timeoutMs') });
    case 'watchReplica':
      return agent.watchReplica(name(), { durationMs: number('durationMs') });
    case 'removeReplica':
      return agent.removeReplica(name()).then(() => null);
    case 'setMeshRoutes': {
      const table = first as MeshRoutes | undefined;
      if (table === undefined || typeof table !== 'object' || !Array.isArray(table.routes))
        throw new BerthError('ERR_BAD_REQUEST', 'setMeshRoutes needs a routing table');
      return agent.setMeshRoutes(table, { drainTimeoutMs: number('drainTimeoutMs') }).then(() => null);
    }
  }
}

/** The agent's side of the connection: answers the operator's NodeAgent calls on `socket`. */
export function serveNodeAgent(socket: WebSocket, agent: NodeAgent, log: Logger): void {
  socket.on('message', (data: WebSocket.RawData) => {
    let request: unknown;
    try {
      request = JSON.parse(messageText(data));
    } catch {
      log.warn('ignoring a message that is not JSON');
      return;
    }
    if (!isRequest(request)) {
      log.warn('ignoring a message that is not a NodeAgent call');
      return;
    }
    void (async () => {
      let response: RpcResponse;
      try {
        response = { id: request.id, result: (await dispatch(agent, request)) ?? null };
      } catch (error) {
        const berthError = asBerthError(error);
        if (berthError.httpStatus >= 500) log.error({ err: error, method: request.method }, 'call failed');
        response = { id: request.id, error: berthError.toWire() };
      }
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(response));
    })();
  });
}
