import { connect, createServer, type Server, type Socket } from 'node:net';
import type { MeshBackend } from '../api/types.js';
import type { Logger } from '../core/log.js';
import { BackendRotation } from './backend-rotation.js';
import { InFlight, listenOn } from './in-flight.js';

/**
 * A TCP load balancer with a live set of backends: the data path of the routing mesh. Each
 * client connection goes to the next backend in round-robin order; a backend that refuses or
 * does not answer within the connect timeout is skipped for the next one, so a replica that just
 * died costs a retry, not a failed request (nothing has been sent to it yet). A backend that
 * accepts and then closes without a byte of answer (Docker's port proxy in front of a replica that
 * just died does that) gets the same treatment when replaying is safe: see canReplay. Removing a backend
 * stops new connections at once while the connections it already serves run to their end —
 * that is how a replica is drained before it is stopped.
 */

export interface TcpBalancer {
  readonly host: string;
  readonly port: number;
  /** Replaces the set of backends that get new connections. */
  setBackends(backends: MeshBackend[]): void;
  /** Open connections through this balancer, to one backend or in all. */
  activeConnections(backendId?: string): number;
  /** Resolves once no connection to `backendId` is open, or after `timeoutMs`; true if drained. */
  drained(backendId: string, timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export interface TcpBalancerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  log: Logger;
  connectTimeoutMs?: number;
}

/** Client bytes kept until the first byte of an answer, for a replay on another backend. */
const REPLAY_LIMIT_BYTES = 64 * 1024;
/** A backend that closes a fresh connection this soon, without a word, is broken, not finished. */
const REPLAY_WINDOW_MS = 2000;
/** HTTP methods that RFC 9110 says are idempotent: such a request may be sent again. */
const IDEMPOTENT_HTTP = /^(GET|HEAD|OPTIONS|TRACE|PUT|DELETE) /;

/**
 * Whether a connection that a backend closed without answering may be replayed on the next one:
 * only soon after connecting, only what fits in the replay buffer, and only when the client sent
 * nothing yet or an idempotent HTTP request (HTTP-aware where it matters: a POST is never sent twice).
 */
export function canReplay(
  replay: { bytes: number; overflow: boolean; head: Buffer },
  sinceConnectMs: number,
): boolean {
  if (replay.overflow || sinceConnectMs > REPLAY_WINDOW_MS) return false;
  return replay.bytes === 0 || IDEMPOTENT_HTTP.test(replay.head.toString('latin1'));
}

function dialBackend(backend: MeshBackend, connectTimeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const upstream = connect({ host: backend.host, port: backend.port });
    const timer = setTimeout(() => upstream.destroy(new Error('connect timeout')), connectTimeoutMs);
    upstream.once('connect', () => {
      clearTimeout(timer);
      resolve(upstream);
    });
    upstream.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/**
 * One client connection: forwards its bytes to the current backend and keeps what it sent before
 * the first byte of an answer, so a backend that closes without answering can be replaced.
 */
class ClientRelay {
  private readonly sent: Buffer[] = [];
  private sentBytes = 0;
  private overflow = false;
  private answered = false;
  private clientEnded = false;
  private upstream: Socket | null = null;

  constructor(readonly client: Socket) {
    client.pause();
    client.on('error', () => client.destroy());
    client.on('data', (chunk: Buffer) => this.fromClient(chunk));
    client.on('end', () => {
      this.clientEnded = true;
      this.upstream?.end();
    });
    client.on('close', () => this.upstream?.destroy());
  }

  private fromClient(chunk: Buffer): void {
    if (!this.answered) {
      if (this.sentBytes + chunk.length > REPLAY_LIMIT_BYTES) this.overflow = true;
      else {
        this.sent.push(chunk);
        this.sentBytes += chunk.length;
      }
    }
    const to = this.upstream;
    if (to !== null && !to.write(chunk)) {
      this.client.pause();
      to.once('drain', () => {
        if (this.upstream === to) this.client.resume();
      });
    }
  }

  /** Sends what the client sent so far to `socket`, then relays both ways; settles on the first answer byte or a silent close. */
  relayTo(socket: Socket): Promise<'answered' | 'silent'> {
    const { client } = this;
    this.upstream = socket;
    for (const chunk of this.sent) socket.write(chunk);
    if (this.clientEnded) socket.end();
    return new Promise((resolve) => {
      let failed = false;
      socket.on('data', (chunk: Buffer) => {
        if (!this.answered) {
          this.answered = true;
          this.sent.length = 0;
          resolve('answered');
        }
        if (!client.write(chunk)) {
          socket.pause();
          client.once('drain', () => socket.resume());
        }
      });
      socket.on('error', () => {
        failed = true;
      });
      socket.once('end', () => {
        if (this.answered) client.end();
      });
      socket.once('close', () => {
        if (this.answered) {
          if (failed) client.destroy();
          else client.end();
          return;
        }
        resolve('silent');
      });
      client.resume();
    });
  }

  /** After a silent close: stop forwarding, and say whether the bytes may go to another backend. */
  mayReplay(sinceConnectMs: number): boolean {
    this.client.pause();
    this.upstream = null;
    const replay = {
      bytes: this.sentBytes,
      overflow: this.overflow,
      head: Buffer.concat(this.sent).subarray(0, 8),
    };
    return !this.client.destroyed && canReplay(replay, sinceConnectMs);
  }
}

interface TcpBalancerParts {
  rotation: BackendRotation;
  open: InFlight;
  options: TcpBalancerOptions;
  connectTimeoutMs: number;
}

async function handleConnection(parts: TcpBalancerParts, client: Socket): Promise<void> {
  const { rotation, options } = parts;
  const relay = new ClientRelay(client);
  // Each connection walks the list once (BackendRotation: round robin, recent failures last).
  const list = rotation.order();
  for (const backend of list) {
    if (client.destroyed) break;
    let socket: Socket;
    try {
      socket = await dialBackend(backend, parts.connectTimeoutMs);
    } catch (error) {
      options.log.debug({ backend: backend.id, err: error }, 'backend did not accept; trying the next one');
      rotation.failed(backend.id);
      continue;
    }
    if (client.destroyed) {
      socket.destroy();
      return;
    }
    const connectedAt = Date.now();
    parts.open.begin(backend.id);
    socket.once('close', () => parts.open.end(backend.id));
    if ((await relay.relayTo(socket)) === 'answered') {
      rotation.succeeded(backend.id);
      return;
    }
    rotation.failed(backend.id);
    // The backend closed without a byte of answer: a replica that died (or a port proxy in
    // front of a dead one). Another replica gets the same bytes when that cannot do harm.
    if (!relay.mayReplay(Date.now() - connectedAt)) break;
    options.log.debug({ backend: backend.id }, 'backend closed without answering; trying the next one');
  }
  if (!client.destroyed) {
    options.log.debug(
      { port: options.port, backends: list.length },
      'no backend took the connection; closing it',
    );
  }
  client.destroy();
}

export async function createTcpBalancer(options: TcpBalancerOptions): Promise<TcpBalancer> {
  const parts: TcpBalancerParts = {
    rotation: new BackendRotation(),
    open: new InFlight(),
    options,
    connectTimeoutMs: options.connectTimeoutMs ?? 1000,
  };
  const clients = new Set<Socket>();
  const server: Server = createServer((client) => {
    clients.add(client);
    client.once('close', () => clients.delete(client));
    void handleConnection(parts, client);
  });
  const port = await listenOn(server, options.host, options.port);

  return {
    host: options.host,
    port,
    setBackends(list) {
      parts.rotation.set(list);
    },
    activeConnections: (backendId) => parts.open.count(backendId),
    drained: (backendId, timeoutMs) => parts.open.drained(backendId, timeoutMs),
    async close() {
      for (const client of clients) client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
