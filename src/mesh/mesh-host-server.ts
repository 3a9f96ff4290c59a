/**
 * The mesh host's side of the wire (mesh-host-protocol.ts): serves one node's routing mesh and
 * service discovery to its agent over a unix socket, so that the data plane outlives the agent
 * (kill -9, a freeze, a crash): the mesh keeps serving the last table it was given until an agent
 * connects again and the operator pushes a newer one.
 *
 * It says when the host should go (`done`): an agent asked it to (a clean agent stop), its socket
 * file was removed or replaced (the state dir is gone, or another host took over), or no agent
 * has been connected for a long time (see ORPHAN_LIMIT_MS).
 */
import { stat, chmod, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { BerthError, asBerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import {
  lineReader,
  MESH_HOST_PROTOCOL,
  parseMeshHostRequest,
  type MeshHostAnswer,
  type MeshHostHello,
  type MeshHostIdentity,
  type MeshHostRequest,
} from './mesh-host-protocol.js';
import type { NodeMesh } from './node-mesh.js';
import type { ServiceDiscovery } from './service-discovery.js';

/**
 * How long a mesh host serves without any agent connected. With a table it keeps the node's
 * published ports answering for a day (a crashed agent that is restarted, by hand or by its
 * supervisor, adopts it; the operator reschedules the replicas of a node that stays down, so a
 * table older than that routes to little that still runs). Without any table it serves nothing:
 * it goes after a few minutes.
 */
export const ORPHAN_LIMIT_MS = { withTable: 24 * 60 * 60_000, withoutTable: 5 * 60_000 } as const;
const WATCH_EVERY_MS = 1000;

export interface MeshHostServerOptions {
  socketPath: string;
  mesh: NodeMesh;
  discovery: ServiceDiscovery | null;
  identity: MeshHostIdentity;
  log: Logger;
  /** Overrides ORPHAN_LIMIT_MS (tests). */
  orphanLimitMs?: { withTable: number; withoutTable: number };
}

export interface MeshHostServer {
  /** Settles, with the reason, when the host should exit. */
  readonly done: Promise<string>;
  /** Stops listening and drops every agent connection (the mesh itself is the caller's). */
  close(): Promise<void>;
}

/** Listens on `socketPath` (mode 0600); fails if another mesh host answers there. */
export async function listenMeshHost(options: MeshHostServerOptions): Promise<MeshHostServer> {
  const { socketPath, log } = options;
  if (await answers(socketPath)) {
    throw new BerthError('ERR_STATE', `another mesh host already serves at ${socketPath}`);
  }
  // A socket file left by a host that was killed: nothing listens there any more.
  await unlink(socketPath).catch(() => undefined);
  const clients = new Set<Socket>();
  let tableVersion: number | null = null;
  let lastAgentAt = Date.now();
  let finish: (reason: string) => void = () => undefined;
  const done = new Promise<string>((resolve) => (finish = resolve));

  const hello = (): MeshHostHello => ({
    protocol: MESH_HOST_PROTOCOL,
    pid: process.pid,
    ...options.identity,
    tableVersion,
    serving: options.mesh.dataPlane(),
  });
  const perform = async (request: MeshHostRequest): Promise<unknown> => {
    switch (request.method) {
      case 'hello':
        return hello();
      case 'ports':
        return options.mesh.ports();
      case 'containerDns':
        return options.discovery ? options.discovery.containerDns(request.namespace) : null;
      case 'apply':
        tableVersion = Math.max(tableVersion ?? request.table.version, request.table.version);
        await options.mesh.apply(request.table, { drainTimeoutMs: request.drainTimeoutMs });
        return { dataPlane: options.mesh.dataPlane() };
      case 'shutdown':
        log.info('an agent stopped cleanly: the mesh host stops with it');
        setImmediate(() => finish('asked to stop by its agent'));
        return null;
    }
  };

  const server: Server = createServer((socket) => {
    clients.add(socket);
    lastAgentAt = Date.now();
    log.info({ agents: clients.size }, 'an agent connected to the mesh host');
    answerRequests(socket, perform);
    socket.on('close', () => {
      clients.delete(socket);
      lastAgentAt = Date.now();
      log.info({ agents: clients.size }, 'an agent left the mesh host');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(socketPath, 0o600);
  const ours = await stat(socketPath);

  const limits = options.orphanLimitMs ?? ORPHAN_LIMIT_MS;
  const watch = setInterval(
    () => {
      void stat(socketPath).then(
        (now) => {
          if (now.ino !== ours.ino || now.dev !== ours.dev) finish(`${socketPath} was replaced`);
        },
        () => finish(`${socketPath} is gone`),
      );
      const limit = tableVersion === null ? limits.withoutTable : limits.withTable;
      if (clients.size === 0 && Date.now() - lastAgentAt > limit) {
        finish(`no agent connected for ${Math.round(limit / 1000)} s`);
      }
    },
    Math.min(WATCH_EVERY_MS, limits.withoutTable),
  );

  return {
    done,
    async close() {
      clearInterval(watch);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of clients) socket.destroy();
      await closed;
      // Only our own socket file: a host that replaced it keeps its own.
      const now = await stat(socketPath).catch(() => null);
      if (now && now.ino === ours.ino && now.dev === ours.dev)
        await unlink(socketPath).catch(() => undefined);
    },
  };
}

/** Reads requests from one agent's connection and answers each, in the order they complete. */
function answerRequests(socket: Socket, perform: (request: MeshHostRequest) => Promise<unknown>): void {
  const send = (answer: MeshHostAnswer): void => {
    if (!socket.destroyed) socket.write(`${JSON.stringify(answer)}\n`);
  };
  const onLine = (line: string): void => {
    const parsed = parseMeshHostRequest(line);
    if ('error' in parsed) {
      send({ id: parsed.id, error: parsed.error.toWire() });
      // A line without an id is a broken peer: nothing it sends next can be answered.
      if (parsed.id === null) socket.end();
      return;
    }
    perform(parsed.request).then(
      (result) => send({ id: parsed.id, result: result ?? null }),
      (error: unknown) => send({ id: parsed.id, error: asBerthError(error).toWire() }),
    );
  };
  const tooLong = (): void => {
    send({ id: null, error: new BerthError('ERR_BAD_REQUEST', 'mesh host: a line is too long').toWire() });
    socket.end();
  };
  socket.on('data', lineReader(onLine, tooLong));
  socket.on('error', () => socket.destroy());
}

/** Whether something accepts connections on the unix socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
