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

export async function createTcpBalancer(options: TcpBalancerOptions): Promise<TcpBalancer> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 1000;
  const rotation = new BackendRotation();
  const open = new InFlight();
  const clients = new Set<Socket>();

  const track = (id: string, socket: Socket): void => {
    open.begin(id);
    socket.once('close', () => open.end(id));
  };

  const dial = (backend: MeshBackend): Promise<Socket> =>
    new Promise((resolve, reject) => {
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

  const handle = async (client: Socket): Promise<void> => {
    clients.add(client);
    client.once('close', () => clients.delete(client));
    client.pause();
    client.on('error', () => client.destroy());

    // What the client sent before the first byte of an answer, for a replay on the next backend.
    const sent: Buffer[] = [];
    let sentBytes = 0;
    let overflow = false;
    let answered = false;
    let clientEnded = false;
    let upstream: Socket | null = null;
    client.on('data', (chunk: Buffer) => {
      if (!answered) {
        if (sentBytes + chunk.length > REPLAY_LIMIT_BYTES) overflow = true;
        else {
          sent.push(chunk);
          sentBytes += chunk.length;
        }
      }
      const to = upstream;
      if (to !== null && !to.write(chunk)) {
        client.pause();
        to.once('drain', () => {
          if (upstream === to) client.resume();
        });
      }
    });
    client.on('end', () => {
      clientEnded = true;
      upstream?.end();
    });
    client.on('close', () => upstream?.destroy());

    // Each connection walks the list once (BackendRotation: round robin, recent failures last).
    const list = rotation.order();
    for (let attempt = 0; attempt < list.length && !client.destroyed; attempt++) {
      const backend = list[attempt];
      if (!backend) break;
      let socket: Socket;
      try {
        socket = await dial(backend);
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
      track(backend.id, socket);
      upstream = socket;
      for (const chunk of sent) socket.write(chunk);
      if (clientEnded) socket.end();
      const outcome = await new Promise<'answered' | 'silent'>((resolve) => {
        let failed = false;
        socket.on('data', (chunk: Buffer) => {
          if (!answered) {
            answered = true;
            sent.length = 0;
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
          if (answered) client.end();
        });
        socket.once('close', () => {
          if (answered) {
            if (failed) client.destroy();
            else client.end();
            return;
          }
          resolve('silent');
        });
        client.resume();
      });
      if (outcome === 'answered') {
        rotation.succeeded(backend.id);
        return;
      }
      rotation.failed(backend.id);
      // The backend closed without a byte of answer: a replica that died (or a port proxy in
      // front of a dead one). Another replica gets the same bytes when that cannot do harm.
      client.pause();
      upstream = null;
      const replay = { bytes: sentBytes, overflow, head: Buffer.concat(sent).subarray(0, 8) };
      if (client.destroyed || !canReplay(replay, Date.now() - connectedAt)) break;
      options.log.debug({ backend: backend.id }, 'backend closed without answering; trying the next one');
    }
    if (!client.destroyed) {
      options.log.debug(
        { port: options.port, backends: list.length },
        'no backend took the connection; closing it',
      );
    }
    client.destroy();
  };

  const server: Server = createServer((client) => void handle(client));
  const port = await listenOn(server, options.host, options.port);

  return {
    host: options.host,
    port,
    setBackends(list) {
      rotation.set(list);
    },
    activeConnections: (backendId) => open.count(backendId),
    drained: (backendId, timeoutMs) => open.drained(backendId, timeoutMs),
    async close() {
      for (const client of clients) client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
