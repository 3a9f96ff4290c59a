/** An agent's connection to its node's mesh host: requests by id over the unix socket. */
import { connect, type Socket } from 'node:net';
import { BerthError, errorFromWire } from '../core/errors.js';
import { lineReader } from './mesh-host-protocol.js';

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class MeshHostConnection {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Settles when the connection is gone, whoever closed it. */
  readonly closed: Promise<void>;

  private constructor(private readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => socket.destroy());
    socket.on(
      'data',
      lineReader(
        (line) => this.onAnswer(line),
        () => socket.destroy(),
      ),
    );
    void this.closed.then(() => {
      for (const [, call] of this.pending) {
        clearTimeout(call.timer);
        call.reject(new BerthError('ERR_INTERNAL', 'the connection to the mesh host closed'));
      }
      this.pending.clear();
    });
  }

  /** Connects to the mesh host at `path`; fails at once when nothing listens there. */
  static open(path: string, timeoutMs = 5000): Promise<MeshHostConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      const timer = setTimeout(() => socket.destroy(new Error(`no answer from ${path}`)), timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', reject);
        resolve(new MeshHostConnection(socket));
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  get isOpen(): boolean {
    return !this.socket.destroyed;
  }

  request(method: string, params: object, timeoutMs: number): Promise<unknown> {
    if (this.socket.destroyed) {
      return Promise.reject(new BerthError('ERR_INTERNAL', 'the connection to the mesh host is closed'));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new BerthError('ERR_INTERNAL', `the mesh host did not answer ${method} within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.write(`${JSON.stringify({ id, method, params })}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onAnswer(line: string): void {
    let answer: { id?: unknown; result?: unknown; error?: unknown };
    try {
      answer = JSON.parse(line) as typeof answer;
    } catch {
      this.socket.destroy();
      return;
    }
    const call = typeof answer.id === 'number' ? this.pending.get(answer.id) : undefined;
    if (!call) {
      // An error without an id: the host refused what we sent as a whole and closes.
      return;
    }
    this.pending.delete(answer.id as number);
    clearTimeout(call.timer);
    if (answer.error !== undefined) call.reject(errorFromWire(answer.error, 'the mesh host failed'));
    else call.resolve(answer.result);
  }
}
