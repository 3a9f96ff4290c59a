import type { Server, Socket } from 'node:net';

export interface ConnectionCaps {
  /** Open connections at once: past it, new connections are closed at once. */
  maxConnections: number;
  /** Open connections at once from one client address: one client cannot take every slot. */
  maxConnectionsPerClient: number;
}

/**
 * Closes a new connection at once when the server, or its client's address, has too many open,
 * so a flood of idle or slow clients cannot exhaust file descriptors and memory. Works for
 * http, https and fastify's server alike ('connection' is the TCP accept, before TLS).
 */
export function capConnections(server: Server, caps: ConnectionCaps): void {
  server.maxConnections = caps.maxConnections;
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const client = socket.remoteAddress ?? '';
    const count = (open.get(client) ?? 0) + 1;
    if (count > caps.maxConnectionsPerClient) {
      socket.destroy();
      return;
    }
    open.set(client, count);
    socket.once('close', () => {
      const left = (open.get(client) ?? 1) - 1;
      if (left > 0) open.set(client, left);
      else open.delete(client);
    });
  });
}
