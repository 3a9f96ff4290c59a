import type WebSocket from 'ws';
import type {
  MeshRoutes,
  NodeAgent,
  NodeChangeMark,
  NodeSnapshot,
  ObservedReplica,
  ReplicaLogLine,
  ReplicaLogOptions,
  ObservedVolume,
  ReplicaRequest,
  ReplicaWaitResult,
} from '../api/types.js';
import {
  agentCallTimeoutMs,
  drainWithinCall,
  MAX_CALL_WAIT_MS,
  waitInCalls,
  type AgentCallName,
  type AgentCallParams,
} from '../api/agent-calls.js';
import { asCompatible } from '../api/agent-protocol.js';
import { BerthError, errorFromWire } from '../core/errors.js';
import type { RecordedPlacement } from './node-placement.js';
import { LogStreamReader, type RpcStreamMessage } from './rpc-log-stream.js';
import { messageText, NODE_DOWN_AFTER_MS, type RpcRequest, type RpcResponse } from './rpc-protocol.js';

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: BerthError) => void;
  timer: NodeJS.Timeout;
}

/**
 * The operator's NodeAgent for a joined node: every call goes over the node's current
 * WebSocket. While the node has no connection, every call fails with ERR_AGENT_UNREACHABLE
 * (observeCluster then reports the node down). A drained node reports status `drain`. The
 * node's name, labels and address in its snapshots are the operator's (its certificate, nodes.json),
 * whatever the agent says about itself.
 */
export class ConnectedNodeAgent implements NodeAgent {
  readonly name: string;
  private socket: WebSocket | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Log streams in flight, by call id (rpc-log-stream.ts). */
  private readonly streams = new Map<number, LogStreamReader>();
  /** When the node last answered anything (a pong, a reply, its connection). */
  private lastHeard = 0;
  /** Set by the registry: a drained node takes no new replicas. */
  drained = false;
  /** Set by the registry: the labels and address recorded in nodes.json (absent for nodes joined by an earlier version). */
  recorded: Partial<RecordedPlacement> = {};
  /** Told what each fresh snapshot reported, before the recorded placement replaces it. */
  onReported: (reported: RecordedPlacement) => void = () => undefined;
  private reported: NodeSnapshot | null = null;

  constructor(name: string) {
    this.name = name;
  }

  get connected(): boolean {
    return this.socket !== null;
  }

  /** Down: not heard from for NODE_DOWN_AFTER_MS (a node never connected since start is down). */
  get down(): boolean {
    return Date.now() - this.lastHeard >= NODE_DOWN_AFTER_MS;
  }

  /** ms until this node counts as down if nothing is heard from it; 0 when it already does. */
  get msUntilDown(): number {
    return Math.max(0, this.lastHeard + NODE_DOWN_AFTER_MS - Date.now());
  }

  get lastHeardIso(): string | null {
    return this.lastHeard === 0 ? null : new Date(this.lastHeard).toISOString();
  }

  heard(): void {
    this.lastHeard = Date.now();
  }

  private connectWaiters: (() => void)[] = [];

  private reconnected(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.connectWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Routes calls over `socket` from now on (a reconnect replaces the previous one). */
  attach(socket: WebSocket): void {
    if (this.socket && this.socket !== socket) this.socket.terminate();
    this.socket = socket;
    this.heard();
    for (const wake of this.connectWaiters.splice(0)) wake();
    socket.on('message', (data: WebSocket.RawData) => this.onMessage(data));
    socket.on('close', () => this.detach(socket, 'its connection closed'));
  }

  /** Forgets `socket` (if it is the current one) and fails what was in flight on it. */
  detach(socket: WebSocket, why: string): void {
    if (this.socket !== socket) return;
    this.socket = null;
    for (const stream of this.streams.values()) {
      stream.end(
        new BerthError('ERR_AGENT_UNREACHABLE', `node ${this.name} went away during a log stream: ${why}`),
      );
    }
    for (const [id, call] of this.pending) {
      clearTimeout(call.timer);
      call.reject(
        new BerthError('ERR_AGENT_UNREACHABLE', `node ${this.name} went away during a call: ${why}`),
      );
      this.pending.delete(id);
    }
  }

  private onMessage(data: WebSocket.RawData): void {
    let message: RpcResponse | RpcStreamMessage;
    try {
      message = JSON.parse(messageText(data)) as RpcResponse | RpcStreamMessage;
    } catch {
      return;
    }
    this.heard();
    const stream = this.streams.get(message.id);
    if (stream) {
      if ('chunk' in message) stream.chunk(message.chunk);
      else if ('error' in message)
        stream.end(errorFromWire(message.error, `node ${this.name} failed a log stream`));
      else stream.end(null);
      return;
    }
    if ('chunk' in message) return;
    const call = this.pending.get(message.id);
    if (!call) return;
    this.pending.delete(message.id);
    clearTimeout(call.timer);
    if ('error' in message) call.reject(errorFromWire(message.error, `node ${this.name} failed a call`));
    else call.resolve(message.result);
  }

  /** One call of the agent contract, given up after the contract's timeout for it. */
  private call<T>(method: AgentCallName, params: AgentCallParams[typeof method]): Promise<T> {
    const timeoutMs = agentCallTimeoutMs(method, params);
    const socket = this.socket;
    if (socket === null) {
      return Promise.reject(
        new BerthError(
          'ERR_AGENT_UNREACHABLE',
          `node ${this.name} is not connected (last heard from ${this.lastHeardIso ?? 'never, since the operator started'})`,
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

  /** The last snapshot, as the operator sees it (see snapshot()); null before the first. */
  get lastSnapshot(): NodeSnapshot | null {
    return this.reported === null ? null : this.asRecorded(this.reported);
  }

  private asRecorded(reported: NodeSnapshot): NodeSnapshot {
    const snapshot = asCompatible(reported);
    return {
      ...snapshot,
      // The certificate names the node; nodes.json holds its labels and address.
      name: this.name,
      labels: this.recorded.labels ?? snapshot.labels,
      address: this.recorded.address ?? snapshot.address,
      status: this.drained ? 'drain' : snapshot.status,
      replicas: snapshot.replicas.map((r) => this.ownReplica(r)),
    };
  }

  async snapshot(): Promise<NodeSnapshot> {
    // Within the grace after a dropped connection the node is taken as it last answered, so an
    // agent restart moves nothing; any call that needs it fails (transient) and is retried.
    if (this.socket === null && !this.down && this.reported) return this.asRecorded(this.reported);
    // A node known from before an operator restart: wait for it to reconnect (within the grace)
    // rather than see it down and move its replicas to whichever node reconnected first.
    if (this.socket === null && !this.down) await this.reconnected(this.msUntilDown);
    const snapshot = await this.call<NodeSnapshot>('snapshot', []);
    this.reported = snapshot;
    this.onReported({ labels: snapshot.labels, address: snapshot.address });
    return this.asRecorded(snapshot);
  }

  /** A replica the node reports is on this node, whichever node it names (the mesh admits it by node). */
  private ownReplica(replica: ObservedReplica): ObservedReplica {
    return { ...replica, node: this.name };
  }

  private ownWaitResult(result: ReplicaWaitResult): ReplicaWaitResult {
    return result.replica === null ? result : { ...result, replica: this.ownReplica(result.replica) };
  }

  async ensureReplica(request: ReplicaRequest): Promise<ObservedReplica> {
    return this.ownReplica(await this.call<ObservedReplica>('ensureReplica', [request]));
  }

  async awaitReplica(name: string, options: { timeoutMs: number }): Promise<ReplicaWaitResult> {
    const result = await waitInCalls('await', options.timeoutMs, (timeoutMs) =>
      this.call<ReplicaWaitResult>('awaitReplica', [name, { timeoutMs }]),
    );
    return this.ownWaitResult(result);
  }

  async watchReplica(name: string, options: { durationMs: number }): Promise<ReplicaWaitResult> {
    const result = await waitInCalls('watch', options.durationMs, (durationMs) =>
      this.call<ReplicaWaitResult>('watchReplica', [name, { durationMs }]),
    );
    return this.ownWaitResult(result);
  }

  async prepareReplica(request: ReplicaRequest): Promise<void> {
    await this.call('prepareReplica', [request]);
  }

  async removeReplica(name: string): Promise<void> {
    await this.call('removeReplica', [name]);
  }

  async listVolumes(): Promise<ObservedVolume[]> {
    return this.call<ObservedVolume[]>('listVolumes', []);
  }

  async removeVolume(name: string): Promise<void> {
    await this.call('removeVolume', [name]);
  }

  async setMeshRoutes(table: MeshRoutes, options: { drainTimeoutMs: number }): Promise<void> {
    await this.call('setMeshRoutes', [table, { drainTimeoutMs: drainWithinCall(options.drainTimeoutMs) }]);
  }

  async awaitChange(since: string | null, options: { timeoutMs: number }): Promise<NodeChangeMark> {
    const timeoutMs = Math.min(options.timeoutMs, MAX_CALL_WAIT_MS);
    return this.call<NodeChangeMark>('awaitChange', [since, { timeoutMs }]);
  }

  /** A replica's lines, streamed over the connection under flow control (rpc-log-stream.ts). */
  logs(name: string, options: ReplicaLogOptions): AsyncIterable<ReplicaLogLine> {
    const socket = this.socket;
    if (socket === null) {
      const error = new BerthError('ERR_AGENT_UNREACHABLE', `node ${this.name} is not connected`);
      return (async function* () {
        yield* [];
        throw error;
      })();
    }
    const id = this.nextId++;
    const send = (message: unknown) => {
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
    };
    const reader = new LogStreamReader(`logs of ${name} on node ${this.name}`, send, id);
    this.streams.set(id, reader);
    const request: RpcRequest = { id, method: 'logs', params: [name, options] };
    send(request);
    const streams = this.streams;
    return (async function* () {
      try {
        yield* reader.lines();
      } finally {
        streams.delete(id);
      }
    })();
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
