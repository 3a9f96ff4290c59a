import { connect, createServer, type Server, type Socket } from 'node:net';
import type { MeshBackend } from '../api/types.js';
import type { Logger } from '../log.js';

/**
 * A TCP load balancer with a live set of backends: the data path of the routing mesh. Each
 * client connection goes to the next backend in round-robin order; a backend that refuses or
 * does not answer within the connect timeout is skipped for the next one, so a replica that just
 * died costs a retry, not a failed request (nothing has been sent to it yet). Removing a backend
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

export async function createTcpBalancer(options: TcpBalancerOptions): Promise<TcpBalancer> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 1000;
  let backends: MeshBackend[] = [];
  let next = 0;
  const open = new Map<string, Set<Socket>>();
  const clients = new Set<Socket>();
  const drainWaiters = new Set<() => void>();

  const track = (id: string, socket: Socket): void => {
    const set = open.get(id) ?? new Set<Socket>();
    set.add(socket);
    open.set(id, set);
    socket.once('close', () => {
      set.delete(socket);
      if (set.size === 0) open.delete(id);
      for (const wake of drainWaiters) wake();
    });
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
    // Each connection walks the list once from its own starting point, so concurrent connections
    // neither skip a live backend nor retry a dead one twice.
    const list = backends;
    const start = next++;
    for (let attempt = 0; attempt < list.length && !client.destroyed; attempt++) {
      const backend = list[(start + attempt) % list.length];
      if (!backend) break;
      try {
        const upstream = await dial(backend);
        if (client.destroyed) {
          upstream.destroy();
          return;
        }
        track(backend.id, upstream);
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
        return;
      } catch (error) {
        options.log.debug({ backend: backend.id, err: error }, 'backend did not accept; trying the next one');
      }
    }
    client.destroy();
  };

  const server: Server = createServer((client) => void handle(client));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;

  return {
    host: options.host,
    port,
    setBackends(list) {
      backends = [...list];
    },
    activeConnections(backendId) {
      if (backendId !== undefined) return open.get(backendId)?.size ?? 0;
      let total = 0;
      for (const set of open.values()) total += set.size;
      return total;
    },
    drained(backendId, timeoutMs) {
      return new Promise((resolve) => {
        const check = (): boolean => {
          if ((open.get(backendId)?.size ?? 0) > 0) return false;
          finish(true);
          return true;
        };
        const finish = (value: boolean): void => {
          clearTimeout(timer);
          drainWaiters.delete(wake);
          resolve(value);
        };
        const wake = (): void => void check();
        const timer = setTimeout(() => finish(false), timeoutMs);
        drainWaiters.add(wake);
        check();
      });
    },
    async close() {
      for (const client of clients) client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
