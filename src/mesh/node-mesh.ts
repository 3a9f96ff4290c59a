import type { MeshRoutes } from '../api/types.js';
import type { Logger } from '../log.js';
import { createTcpBalancer, type TcpBalancer } from './tcp-balancer.js';

/**
 * The routing mesh on one node: one TCP balancer per published port, listening on the node's
 * address, fed with the routing table the operator pushes. The table lists healthy replicas on
 * every node, so a published port answers on every node, including one that runs no replica.
 */
export interface NodeMesh {
  /**
   * Serves `table` unless a newer one was applied already (pushes may arrive out of order).
   * Resolves once every backend that is in no route any more has no open connection through
   * this node, or after `drainTimeoutMs`.
   */
  apply(table: MeshRoutes, options: { drainTimeoutMs: number }): Promise<void>;
  /** Published ports served now, for status and tests. */
  ports(): number[];
  close(): Promise<void>;
}

interface Listener {
  balancer: TcpBalancer;
  /** Backends this balancer was ever given and that may still have connections open. */
  known: Set<string>;
  /** Backends in the table applied last. */
  current: Set<string>;
}

export function createNodeMesh(options: { address: string; log: Logger }): NodeMesh {
  const log = options.log.child({ mesh: options.address });
  const listeners = new Map<number, Listener>();
  /** Ports whose balancer could not listen (taken by something else), so we say it once. */
  const refused = new Set<number>();
  let version = -1;
  let closed = false;
  // Table changes are applied one at a time (balancers open asynchronously); drains are waited
  // for outside this chain, so a long drain never holds back the next table.
  let applying: Promise<unknown> = Promise.resolve();

  const update = async (table: MeshRoutes): Promise<{ listener: Listener; id: string }[]> => {
    if (closed || table.version < version) return [];
    version = table.version;
    const wanted = new Map(table.routes.map((route) => [route.published, route]));
    const leaving: { listener: Listener; id: string }[] = [];

    for (const [port, route] of wanted) {
      let listener = listeners.get(port);
      if (!listener) {
        try {
          const balancer = await createTcpBalancer({ host: options.address, port, log });
          listener = { balancer, known: new Set(), current: new Set() };
          listeners.set(port, listener);
          refused.delete(port);
          log.info({ port, service: route.service }, 'routing mesh serves a published port');
        } catch (error) {
          if (!refused.has(port)) {
            log.error(
              { port, service: route.service, err: error },
              'cannot serve a published port on this node (is it taken by another process?)',
            );
          }
          refused.add(port);
          continue;
        }
      }
      listener.balancer.setBackends(route.backends);
      const ids = new Set(route.backends.map((b) => b.id));
      for (const id of listener.known) if (!ids.has(id)) leaving.push({ listener, id });
      for (const id of ids) listener.known.add(id);
      listener.current = ids;
    }

    for (const [port, listener] of listeners) {
      if (wanted.has(port)) continue;
      // A port no service publishes any more: new connections are refused at once, the open
      // ones finish (within the drain bound) before the listener goes.
      listener.balancer.setBackends([]);
      listener.current = new Set();
      for (const id of listener.known) leaving.push({ listener, id });
      listeners.delete(port);
      log.info({ port }, 'routing mesh no longer serves a published port');
    }
    return leaving;
  };

  const drain = async (leaving: { listener: Listener; id: string }[], timeoutMs: number): Promise<void> => {
    await Promise.all(
      leaving.map(async ({ listener, id }) => {
        if (listener.balancer.activeConnections(id) > 0) await listener.balancer.drained(id, timeoutMs);
        // A backend that came back in a newer table stays known, to be drained when it leaves again.
        if (!listener.current.has(id)) listener.known.delete(id);
      }),
    );
    const orphans = new Set(
      leaving.map((l) => l.listener).filter((l) => ![...listeners.values()].includes(l)),
    );
    await Promise.all([...orphans].map((l) => l.balancer.close()));
  };

  return {
    async apply(table, { drainTimeoutMs }) {
      const step = applying.then(() => update(table));
      applying = step.catch(() => undefined);
      const leaving = await step;
      await drain(leaving, drainTimeoutMs);
    },
    ports() {
      return [...listeners.keys()].sort((a, b) => a - b);
    },
    async close() {
      closed = true;
      await applying;
      await Promise.all([...listeners.values()].map((l) => l.balancer.close()));
      listeners.clear();
    },
  };
}
