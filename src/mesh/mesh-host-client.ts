/**
 * The agent's side of its node's mesh host: a NodeMesh (and service discovery's containerDns)
 * served by a process of its own (`berth mesh-host`, mesh-host-server.ts), so that the node's
 * published ports and service addresses keep answering when the agent is killed or frozen.
 *
 * - On start it adopts the mesh host already running for this state dir when that one speaks the
 *   same protocol and serves the same address and range: it keeps serving its last table until the
 *   operator pushes a newer one. Otherwise it stops that one and starts its own, detached, with its
 *   log in the state dir.
 * - When the host goes away while the agent runs, another is started and given the last table.
 * - close() is a clean agent stop: the host stops too. A killed or frozen agent leaves it serving.
 */
import type { ContainerDns as ServiceContainerDns } from './service-discovery.js';
import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { MeshRoutes } from '../api/types.js';
import { MeshHostConnection } from './mesh-host-connection.js';
import {
  MESH_HOST_FILES,
  MESH_HOST_PROTOCOL,
  type MeshHostHello,
  type MeshHostIdentity,
} from './mesh-host-protocol.js';
import type { NodeMesh } from './node-mesh.js';
import type { DataPlane, DataPlaneChoice } from './nftables.js';

/** How to run the berth CLI: `command ...args mesh-host ...` starts a mesh host. */
export interface MeshHostLaunch {
  command: string;
  args: string[];
}

export interface MeshHostClientOptions extends Omit<MeshHostIdentity, 'dataPlane'> {
  /** Default `userspace`. */
  dataPlane?: DataPlaneChoice;
  /** The agent's state dir: the host's socket, pid file and log live there. */
  stateDir: string;
  launch: MeshHostLaunch;
  log: Logger;
}

/** What the mesh host answers for a new container: its resolver settings, or null without discovery. */
export type ContainerDns = ServiceContainerDns | null;

export interface RemoteNodeMesh extends NodeMesh {
  containerDns(namespace: string): Promise<ContainerDns>;
  /** A clean stop: the mesh host stops too, its ports close. */
  close(): Promise<void>;
}

/** A slow machine may take a while to answer; a frozen host never does. */
const HELLO_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const RESTORE_RETRY_MS = 5000;
/** The log is kept to about this size: the previous one is kept beside it (`.1`). */
const LOG_ROTATE_BYTES = 8 * 1024 * 1024;
const WAIT_SLACK_MS = 30_000;

export function connectMeshHost(options: MeshHostClientOptions): RemoteNodeMesh {
  const client = new MeshHostClient(options);
  client.connectInBackground();
  return client;
}

class MeshHostClient implements RemoteNodeMesh {
  private readonly log: Logger;
  private readonly paths: { socket: string; pid: string; log: string; dir: string };
  private connection: Promise<MeshHostConnection> | null = null;
  private last: MeshRoutes | null = null;
  private served: number[] = [];
  private serving: DataPlane | null = null;
  private closing = false;
  private restoreTimer: NodeJS.Timeout | null = null;
  /** The process of the mesh host connected to (or last connected to). */
  private hostPid: number | null = null;

  constructor(private readonly options: MeshHostClientOptions) {
    this.log = options.log.child({ component: 'mesh-host' });
    const dir = resolve(options.stateDir);
    this.paths = {
      dir,
      socket: join(dir, MESH_HOST_FILES.socket),
      pid: join(dir, MESH_HOST_FILES.pid),
      log: join(dir, MESH_HOST_FILES.log),
    };
  }

  connectInBackground(): void {
    void this.ensure().catch((error: unknown) =>
      this.log.warn({ err: error }, 'no mesh host yet: trying again with the next routing table'),
    );
  }

  async apply(table: MeshRoutes, { drainTimeoutMs }: { drainTimeoutMs: number }): Promise<void> {
    this.last = table;
    const connection = await this.ensure();
    const applied = await connection.request(
      'apply',
      { table, drainTimeoutMs },
      drainTimeoutMs + WAIT_SLACK_MS,
    );
    this.serving = dataPlaneOf(applied) ?? this.serving;
    const ports = await connection.request('ports', {}, HELLO_TIMEOUT_MS);
    if (Array.isArray(ports)) this.served = ports.filter((p): p is number => Number.isInteger(p));
  }

  ports(): number[] {
    return [...this.served];
  }

  dataPlane(): DataPlane | null {
    return this.serving;
  }

  async containerDns(namespace: string): Promise<ContainerDns> {
    const connection = await this.ensure();
    const answer = (await connection.request('containerDns', { namespace }, WAIT_SLACK_MS)) as ContainerDns;
    const strings = (value: unknown): boolean =>
      Array.isArray(value) && value.every((item) => typeof item === 'string');
    return answer !== null && strings(answer.servers) && strings(answer.search) ? answer : null;
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.restoreTimer) clearTimeout(this.restoreTimer);
    const connection =
      (await this.connection?.catch(() => null)) ??
      (await MeshHostConnection.open(this.paths.socket).catch(() => null));
    const pid = this.hostPid ?? (await readPid(this.paths.pid));
    const asked =
      connection?.isOpen === true &&
      (await connection.request('shutdown', {}, HELLO_TIMEOUT_MS).then(
        () => true,
        () => false,
      ));
    connection?.close();
    // Gone by now unless it hangs: then it is stopped by its pid.
    if (pid !== null) await stopMeshHost(pid, { asked });
    this.served = [];
    this.log.info('mesh host stopped');
  }

  private ensure(): Promise<MeshHostConnection> {
    if (this.closing) return Promise.reject(new BerthError('ERR_STATE', 'the agent is closing'));
    this.connection ??= this.adoptOrStart().then(
      (connection) => {
        void connection.closed.then(() => this.lost(connection));
        return connection;
      },
      (error: unknown) => {
        this.connection = null;
        throw error;
      },
    );
    return this.connection;
  }

  private lost(connection: MeshHostConnection): void {
    void this.connection?.then((current) => {
      if (current !== connection) return;
      this.connection = null;
      if (this.closing) return;
      this.log.warn('lost the mesh host: starting it again with the last routing table');
      this.scheduleRestore(0);
    });
  }

  /** A host that went away while the agent runs is replaced and given the last table. */
  private scheduleRestore(afterMs: number): void {
    if (this.restoreTimer) clearTimeout(this.restoreTimer);
    this.restoreTimer = setTimeout(() => {
      this.restoreTimer = null;
      if (this.closing) return;
      const restore = async (): Promise<void> => {
        const connection = await this.ensure();
        if (this.last)
          await connection.request('apply', { table: this.last, drainTimeoutMs: 0 }, WAIT_SLACK_MS);
      };
      restore().catch((error: unknown) => {
        this.log.warn({ err: error }, 'could not start the mesh host again');
        this.scheduleRestore(RESTORE_RETRY_MS);
      });
    }, afterMs);
  }

  private async adoptOrStart(): Promise<MeshHostConnection> {
    const existing = await MeshHostConnection.open(this.paths.socket).catch(() => null);
    if (existing) {
      const hello = (await existing
        .request('hello', {}, HELLO_TIMEOUT_MS)
        .catch(() => null)) as MeshHostHello | null;
      const mismatch = hello === null ? 'it does not answer' : this.mismatch(hello);
      if (hello !== null && mismatch === null) {
        this.log.info(
          { pid: hello.pid, tableVersion: hello.tableVersion },
          'adopted the running mesh host: it serves its last table until the operator pushes a newer one',
        );
        this.hostPid = hello.pid;
        this.serving = hello.serving ?? null;
        return existing;
      }
      this.log.warn({ reason: mismatch }, 'replacing the running mesh host');
      if (hello?.protocol === MESH_HOST_PROTOCOL)
        await existing.request('shutdown', {}, HELLO_TIMEOUT_MS).catch(() => undefined);
      existing.close();
    }
    await stopMeshHostByPidFile(this.paths.pid);
    return this.start();
  }

  private mismatch(hello: MeshHostHello): string | null {
    const { address, serviceAddresses, dataPlane = 'userspace' } = this.options;
    if (hello.protocol !== MESH_HOST_PROTOCOL) {
      return `it speaks protocol ${String(hello.protocol)}, this agent ${MESH_HOST_PROTOCOL}`;
    }
    if (hello.address !== address) return `it serves address ${hello.address}, this agent ${address}`;
    if (hello.serviceAddresses !== serviceAddresses) {
      return `it serves service addresses ${hello.serviceAddresses ?? 'off'}, this agent ${serviceAddresses ?? 'off'}`;
    }
    if (hello.dataPlane !== dataPlane)
      return `it uses data plane ${hello.dataPlane}, this agent ${dataPlane}`;
    return null;
  }

  private async start(): Promise<MeshHostConnection> {
    const { launch, address, serviceAddresses, dataPlane = 'userspace' } = this.options;
    await mkdir(this.paths.dir, { recursive: true, mode: 0o700 });
    const size = (await stat(this.paths.log).catch(() => null))?.size ?? 0;
    if (size > LOG_ROTATE_BYTES) await rename(this.paths.log, `${this.paths.log}.1`).catch(() => undefined);
    const logFile = await open(this.paths.log, 'a', 0o600);
    let exited: string | null = null;
    try {
      const args = [
        ...launch.args,
        'mesh-host',
        ...['--state-dir', this.paths.dir, '--address', address],
        ...['--service-addresses', serviceAddresses ?? 'off'],
        ...['--data-plane', dataPlane],
      ];
      // Detached (a session of its own) so that a signal to the agent's process group spares it.
      const child = spawn(launch.command, args, {
        detached: true,
        stdio: ['ignore', logFile.fd, logFile.fd],
        env: meshHostEnvironment(),
      });
      child.once('error', (error) => (exited = error.message));
      child.once('exit', (code, signal) => (exited = `exited (${signal ?? code})`));
      child.unref();
    } finally {
      await logFile.close();
    }
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const connection = await MeshHostConnection.open(this.paths.socket).catch(() => null);
      const hello = (await connection?.request('hello', {}, HELLO_TIMEOUT_MS).catch(() => null)) as
        MeshHostHello | null | undefined;
      if (connection && hello && this.mismatch(hello) === null) {
        this.log.info({ pid: hello.pid, log: this.paths.log }, 'started the mesh host of this node');
        this.hostPid = hello.pid;
        return connection;
      }
      connection?.close();
      if (exited !== null || Date.now() > deadline) {
        const tail = (await readFile(this.paths.log, 'utf8').catch(() => ''))
          .split('\n')
          .slice(-5)
          .join('\n');
        throw new BerthError(
          'ERR_INTERNAL',
          `the mesh host ${exited ?? `did not answer within ${START_TIMEOUT_MS / 1000} s`}; its log (${this.paths.log}) ends: ${tail}`,
        );
      }
      await sleep(100);
    }
  }
}

/**
 * The agent's environment less what the data plane has no use for: the agent's token, and
 * anything else of berth's but how to log.
 */
function meshHostEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { BERTH_LOG_FORMAT: 'json' };
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('BERTH_') || key === 'BERTH_LOG_LEVEL') env[key] = value;
  }
  return env;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Whether `pid` runs (a zombie, exited but not yet reaped, does not). */
async function running(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/** Whether `pid` runs `berth mesh-host` (a pid file may outlive its process, and the pid be reused). */
async function isMeshHost(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.split('\0').includes('mesh-host');
}

/** Stops the mesh host named by `pidFile`, if it still runs (see stopMeshHost). */
export async function stopMeshHostByPidFile(pidFile: string): Promise<void> {
  const pid = await readPid(pidFile);
  if (pid !== null) await stopMeshHost(pid);
}

async function readPid(pidFile: string): Promise<number | null> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  return Number.isSafeInteger(pid) && pid > 1 && pid !== process.pid ? pid : null;
}

/**
 * Resolves once the mesh host `pid` is gone: given time to stop by itself when it was `asked` to,
 * then SIGTERM (and SIGCONT, for a frozen one), then SIGKILL.
 */
async function stopMeshHost(pid: number, { asked = false } = {}): Promise<void> {
  if (!(await running(pid)) || !(await isMeshHost(pid))) return;
  const gone = async (withinMs: number): Promise<boolean> => {
    const deadline = Date.now() + withinMs;
    while (await running(pid)) {
      if (Date.now() > deadline) return false;
      await sleep(50);
    }
    return true;
  };
  if (asked && (await gone(STOP_TIMEOUT_MS))) return;
  for (const signal of ['SIGTERM', 'SIGCONT'] as const) process.kill(pid, signal);
  if (await gone(STOP_TIMEOUT_MS)) return;
  process.kill(pid, 'SIGKILL');
  if (!(await gone(STOP_TIMEOUT_MS))) {
    throw new BerthError('ERR_STATE', `the mesh host (pid ${pid}) does not stop, even with SIGKILL`);
  }
}

/** The data plane an apply answer names (a host of protocol 1 answered null). */
function dataPlaneOf(answer: unknown): DataPlane | null {
  const value = (answer as { dataPlane?: unknown } | null)?.dataPlane;
  return value === 'nftables' || value === 'userspace' ? value : null;
}
