import type WebSocket from 'ws';
import type {
  NodeAgent,
  NodeSnapshot,
  ObservedReplica,
  ReplicaRequest,
  ReplicaWaitResult,
} from '../api/types.js';
import { BerthError, errorFromWire } from '../errors.js';
import { messageText, type RpcMethod, type RpcRequest, type RpcResponse } from './rpc-protocol.js';

/** Head-room on top of a call's own duration (pulls, grace periods) before the operator gives up. */
const SNAPSHOT_TIMEOUT_MS = 30_000;
const SLOW_CALL_TIMEOUT_MS = 15 * 60_000;
const WAIT_SLACK_MS = 30_000;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: BerthError) => void;
  timer: NodeJS.Timeout;
}

/**
 * The operator's NodeAgent for a joined node: every call goes over the node's current
 * WebSocket. While the node has no connection, every call fails with ERR_AGENT_UNREACHABLE
 * (observeCluster then reports the node down). A drained node reports status `drain`.
 */
export class ConnectedNodeAgent implements NodeAgent {
  readonly name: string;
  private socket: WebSocket | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private downSince = new Date();
  /** Set by the registry: a drained node takes no new replicas. */
  drained = false;
  lastSnapshot: NodeSnapshot | null = null;

  constructor(name: string) {
    this.name = name;
  }

  get connected(): boolean {
    return this.socket !== null;
  }

  get downSinceIso(): string | null {
    return this.socket === null ? this.downSince.toISOString() : null;
  }

  /** Routes calls over `socket` from now on (a reconnect replaces the previous one). */
  attach(socket: WebSocket): void {
    if (this.socket && this.socket !== socket) this.socket.terminate();
    this.socket = socket;
    socket.on('message', (data: WebSocket.RawData) => this.onMessage(data));
    socket.on('close', () => this.detach(socket, 'its connection closed'));
  }

  /** Forgets `socket` (if it is the current one) and fails what was in flight on it. */
  detach(socket: WebSocket, why: string): void {
    if (this.socket !== socket) return;
    this.socket = null;
    this.downSince = new Date();
    for (const [id, call] of this.pending) {
      clearTimeout(call.timer);
      call.reject(
        new BerthError('ERR_AGENT_UNREACHABLE', `node ${this.name} went away during a call: ${why}`),
      );
      this.pending.delete(id);
    }
  }

  private onMessage(data: WebSocket.RawData): void {
    let message: RpcResponse;
    try {
      message = JSON.parse(messageText(data)) as RpcResponse;
    } catch {
      return;
    }
    const call = this.pending.get(message.id);
    if (!call) return;
    this.pending.delete(message.id);
    clearTimeout(call.timer);
    if ('error' in message) call.reject(errorFromWire(message.error, `node ${this.name} failed a call`));
    else call.resolve(message.result);
  }

  private call<T>(method: RpcMethod, params: unknown[], timeoutMs: number): Promise<T> {
    const socket = this.socket;
    if (socket === null) {
      return Promise.reject(
        new BerthError(
          'ERR_AGENT_UNREACHABLE',
          `node ${this.name} is down (not connected since ${this.downSince.toISOString()})`,
        ),
      );
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new BerthError(
            'ERR_AGENT_UNREACHABLE',
            `node ${this.name} did not answer ${method} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      const request: RpcRequest = { id, method, params };
      socket.send(JSON.stringify(request), (error) => {
        if (!error) return;
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new BerthError('ERR_AGENT_UNREACHABLE', `cannot send to node ${this.name}: ${error.message}`));
      });
    });
  }

  async snapshot(): Promise<NodeSnapshot> {
    const snapshot = await this.call<NodeSnapshot>('snapshot', [], SNAPSHOT_TIMEOUT_MS);
    // The certificate names the node, not what the agent says about itself.
    const result: NodeSnapshot = {
      ...snapshot,
      name: this.name,
      status: this.drained ? 'drain' : snapshot.status,
      replicas: snapshot.replicas.map((r) => ({ ...r, node: this.name })),
    };
    this.lastSnapshot = result;
    return result;
  }

  ensureReplica(request: ReplicaRequest): Promise<ObservedReplica> {
    return this.call('ensureReplica', [request], SLOW_CALL_TIMEOUT_MS);
  }

  awaitReplica(name: string, options: { timeoutMs: number }): Promise<ReplicaWaitResult> {
    return this.call('awaitReplica', [name, options], options.timeoutMs + WAIT_SLACK_MS);
  }

  watchReplica(name: string, options: { durationMs: number }): Promise<ReplicaWaitResult> {
    return this.call('watchReplica', [name, options], options.durationMs + WAIT_SLACK_MS);
  }

  async removeReplica(name: string): Promise<void> {
    await this.call('removeReplica', [name], SLOW_CALL_TIMEOUT_MS);
  }

  /** The operator's handle closes; the node itself stays joined and keeps its containers. */
  async close(): Promise<void> {
    const socket = this.socket;
    if (socket) {
      this.detach(socket, 'the operator is stopping');
      socket.close(1001, 'operator stopping');
    }
  }
}
