import type WebSocket from 'ws';
import { invokeAgentCall, isLogStream, parseAgentCall } from '../api/agent-calls.js';
import type { NodeAgent } from '../api/types.js';
import { asBerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { serveLogStream, type ServedStream } from './rpc-log-stream.js';
import { messageText, type RpcResponse } from './rpc-protocol.js';

/** A message's id when it is a JSON object with a numeric id: without one there is no one to answer. */
function parseMessage(
  data: WebSocket.RawData,
): { id: number; method: unknown; params: unknown; ack: unknown; cancel: unknown } | null {
  let message: unknown;
  try {
    message = JSON.parse(messageText(data));
  } catch {
    return null;
  }
  if (message === null || typeof message !== 'object') return null;
  const { id, method, params, ack, cancel } = message as Record<string, unknown>;
  return typeof id === 'number' ? { id, method, params, ack, cancel } : null;
}

/**
 * The agent's side of the connection: answers the operator's NodeAgent calls on `socket`. Every
 * call is checked against the call contract first; a bad one is answered ERR_BAD_REQUEST.
 */
export function serveNodeAgent(socket: WebSocket, agent: NodeAgent, log: Logger): void {
  // Log streams in flight on this connection, by call id (rpc-log-stream.ts).
  const streams = new Map<number, ServedStream>();
  socket.on('close', () => {
    for (const stream of streams.values()) stream.cancel();
  });
  socket.on('message', (data: WebSocket.RawData) => {
    const message = parseMessage(data);
    if (message === null) {
      log.warn('ignoring a message that is not a NodeAgent call');
      return;
    }
    if (message.ack === true || message.cancel === true) {
      const stream = streams.get(message.id);
      if (message.ack === true) stream?.ack();
      else stream?.cancel();
      return;
    }
    void (async () => {
      let response: RpcResponse;
      try {
        const call = parseAgentCall(message.method, message.params);
        const result = await invokeAgentCall(agent, call);
        if (isLogStream(call, result)) {
          await serveLogStream(socket, message.id, result, streams);
          return;
        }
        response = { id: message.id, result: result ?? null };
      } catch (error) {
        const berthError = asBerthError(error);
        if (berthError.httpStatus >= 500) log.error({ err: error, method: message.method }, 'call failed');
        response = { id: message.id, error: berthError.toWire() };
      }
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(response));
    })();
  });
}
