/**
 * Several real Docker engines on this machine, one per simulated node, for the cluster suites.
 *
 * Each engine is its own `dockerd` with a data root, exec root, pid file and socket of its own,
 * and its own Linux bridge (`--bridge=... --iptables=false --ip-masq=false`): an engine started
 * without a bridge and exec root of its own can tear down the main engine's `docker0`, which every
 * other suite uses. Node N publishes replica ports on a loopback address of its own
 * (127.0.K.N, K random per run so parallel runs on one machine do not share addresses), as real
 * hosts publish the same ports on their own addresses.
 *
 * Engines are started once per suite file (in parallel, about 5 s) and stopped by their pid file.
 * Images cannot be pulled: the offline test images are copied from the main engine into each
 * engine (`docker save | docker load`).
 */
import { execFile, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { stopMeshHostByPidFile } from '../../src/mesh/mesh-host-client.js';
import { MESH_HOST_FILES } from '../../src/mesh/mesh-host-protocol.js';
import { startBerth, type BerthProcess } from './berth-cli.js';
import { TEST_IMAGES, dockerCli, requireTestImages } from './docker.js';

const run = promisify(execFile);

export interface TestEngine {
  /** 1-based index of the node. */
  index: number;
  /** Node name the tests give the agent on this engine. */
  node: string;
  socketPath: string;
  /** Loopback address replicas of this node publish on (the agent's --advertise-addr). */
  address: string;
  docker: Docker;
  /**
   * The agent's --service-addresses: every agent shares this machine's network stack here, so
   * each node takes a small range of its own (on real hosts they all use the same one).
   */
  serviceAddresses: string;
  dir: string;
  bridge: string;
  /** The /24 of the engine's bridge (its first three octets). */
  subnet: string;
  /**
   * State dirs of the agents started on this engine: each agent's mesh host (the node's routing
   * mesh, a process of its own that outlives a killed agent) is found there by its pid file.
   */
  agentStateDirs: Set<string>;
}

export interface TestEngines {
  engines: TestEngine[];
  /** Stops every engine and every agent's mesh host by their pid files; removes bridges and directories. */
  stop(): Promise<void>;
}

const ENGINE_START_TIMEOUT_MS = 60_000;

async function exists(path: string): Promise<boolean> {
  try {
    await readFile(path);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function ip(args: string[]): Promise<void> {
  await run('ip', args);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops one engine as a lost host would go: its containers killed at once, then dockerd, its
 * bridge and its directory. Fine to call again (TestEngines.stop does, for every engine).
 */
export async function stopEngine(engine: TestEngine): Promise<void> {
  const pidFile = join(engine.dir, 'docker.pid');
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (pid > 0 && pidAlive(pid)) {
    // Containers first, so the engine does not wait for each one's grace period on shutdown.
    const containers = await engine.docker.listContainers({ all: true }).catch(() => []);
    await Promise.all(
      containers.map((c) =>
        engine.docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined),
      ),
    );
    process.kill(pid, 'SIGTERM');
    await waitFor(`dockerd ${pid} to exit`, async () => !pidAlive(pid), 30_000).catch(() => {
      process.kill(pid, 'SIGKILL');
    });
  }
  await ip(['link', 'del', engine.bridge]).catch(() => undefined);
  // dockerd unmounts its layers on a clean shutdown; anything left is unmounted lazily.
  await run('sh', ['-c', `grep -o ' ${engine.dir}[^ ]*' /proc/mounts | xargs -r -n1 umount -l`]).catch(
    () => undefined,
  );
  await rm(engine.dir, { recursive: true, force: true }).catch(() => undefined);
}

async function startEngine(engine: TestEngine, subnet: string): Promise<void> {
  await mkdir(engine.dir, { recursive: true });
  await ip(['link', 'add', engine.bridge, 'type', 'bridge']);
  await ip(['addr', 'add', `${subnet}.1/24`, 'dev', engine.bridge]);
  await ip(['link', 'set', engine.bridge, 'up']);
  const log = join(engine.dir, 'dockerd.log');
  await writeFile(log, '');
  const child = spawn(
    'dockerd',
    [
      '--data-root',
      join(engine.dir, 'data'),
      '--exec-root',
      join(engine.dir, 'exec'),
      '--pidfile',
      join(engine.dir, 'docker.pid'),
      '-H',
      `unix://${engine.socketPath}`,
      `--bridge=${engine.bridge}`,
      '--iptables=false',
      '--ip-masq=false',
      '--log-level=warn',
      // If a system containerd is running, every engine uses it: namespaces of their own keep
      // one engine from seeing (and cleaning up) another's containers.
      `--containerd-namespace=berth-${engine.bridge}`,
      `--containerd-plugins-namespace=berth-${engine.bridge}-plugins`,
    ],
    { detached: true, stdio: ['ignore', 'ignore', 'ignore'] },
  );
  child.unref();
  try {
    await waitFor(
      `the engine of ${engine.node} at ${engine.socketPath}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`dockerd exited with ${child.exitCode}`);
        await engine.docker.ping();
        return true;
      },
      ENGINE_START_TIMEOUT_MS,
    );
  } catch (error) {
    const tail = (await readFile(log, 'utf8').catch(() => '')).split('\n').slice(-20).join('\n');
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${tail}`);
  }
}

function loadImages(engine: TestEngine, archive: string): Promise<unknown> {
  return run('docker', ['-H', `unix://${engine.socketPath}`, 'load', '-q', '-i', archive]);
}

/**
 * Starts again an engine that stopEngine stopped, as a replaced host comes back: empty (stopEngine
 * removed its containers and data), with the offline test images loaded again.
 */
export async function restartEngine(engine: TestEngine): Promise<void> {
  await startEngine(engine, engine.subnet);
  await loadImages(engine, join(dirname(engine.dir), 'images.tar'));
}

/**
 * Starts `count` engines named `<prefix>1..N`; loads the offline test images into each. The caller
 * must call stop() (in `after`), also when a test failed.
 */
export async function startTestEngines(count: number, prefix: string): Promise<TestEngines> {
  await requireTestImages();
  const runId = `${Date.now().toString(36).slice(-4)}${randomInt(36 ** 2).toString(36)}`;
  // Short paths: a unix socket path must stay under 108 bytes.
  const root = join('/tmp', `bn-${runId}`);
  const loopbackOctet = randomInt(2, 250);
  // Never 10.234.x: berth's default range of service addresses, local to the host once in use.
  const picked = randomInt(100, 249);
  const subnetOctet = picked >= 234 ? picked + 1 : picked;
  const engines: TestEngine[] = [];
  for (let index = 1; index <= count; index++) {
    const dir = join(root, `n${index}`);
    const socketPath = join(dir, 'docker.sock');
    engines.push({
      index,
      node: `${prefix}${index}`,
      socketPath,
      address: `127.0.${loopbackOctet}.${index}`,
      docker: new Docker({ socketPath }),
      serviceAddresses: `10.234.${loopbackOctet}.${index * 16}/28`,
      dir,
      // Interface names are at most 15 bytes.
      bridge: `brb${runId}${index}`.slice(0, 15),
      subnet: `10.${subnetOctet}.${index}`,
      agentStateDirs: new Set(),
    });
  }
  const stop = async (): Promise<void> => {
    await Promise.all(engines.map((e) => stopMeshHosts(e)));
    await Promise.all(engines.map((e) => stopEngine(e)));
    // An agent makes its service-address range local to the host (a route that outlives it, as
    // on a real host); the test's ranges go with the test.
    await Promise.all(
      engines.map((e) =>
        ip(['route', 'del', 'local', e.serviceAddresses, 'dev', 'lo']).catch(() => undefined),
      ),
    );
    await rm(root, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    await Promise.all(engines.map((e) => startEngine(e, e.subnet)));
    const archive = join(root, 'images.tar');
    if (!(await exists(archive))) await dockerCli(['save', '-o', archive, ...Object.values(TEST_IMAGES)]);
    await Promise.all(engines.map((e) => loadImages(e, archive)));
  } catch (error) {
    await stop();
    throw error;
  }
  return { engines, stop };
}

/**
 * `berth agent --join` on one engine: its socket, its address, the label zone=a for node 1
 * (b for 2, ...), images never pulled. Resolves once the agent has joined.
 */
export function startEngineAgent(
  engine: TestEngine,
  join: { endpoint: string; token: string },
  options: { stateDir: string; args?: string[]; env?: NodeJS.ProcessEnv },
): Promise<BerthProcess> {
  engine.agentStateDirs.add(options.stateDir);
  return startBerth(
    'agent',
    [
      ...['--join', join.endpoint, '--token', join.token],
      ...['--node', engine.node, '--docker', engine.socketPath, '--advertise-addr', engine.address],
      ...['--label', `zone=${String.fromCharCode(96 + engine.index)}`],
      ...['--state-dir', options.stateDir, '--pull', 'never'],
      ...(options.args ?? []),
    ],
    options.env === undefined ? {} : { env: options.env },
  );
}

/**
 * Stops the mesh hosts of the agents started on `engine` (by their pid files): what a killed agent
 * leaves serving, and what a lost host loses with it. Fine to call again.
 */
export async function stopMeshHosts(engine: TestEngine): Promise<void> {
  await Promise.all(
    [...engine.agentStateDirs].map((dir) => stopMeshHostByPidFile(join(dir, MESH_HOST_FILES.pid))),
  );
}

/** Managed containers on one engine, read straight from it (not through berth). */
export async function managedOn(
  engine: TestEngine,
  namespace: string,
  service?: string,
): Promise<{ name: string; slot: string; state: string; node: string; port: number | null }[]> {
  const labels = [`berth.namespace=${namespace}`];
  if (service !== undefined) labels.push(`berth.service=${service}`);
  const containers = await engine.docker.listContainers({ all: true, filters: { label: labels } });
  return containers.map((c) => ({
    name: (c.Names[0] ?? '').replace(/^\//, ''),
    slot: c.Labels['berth.slot'] ?? '',
    state: c.State,
    node: engine.node,
    port: c.Ports.find((p) => p.PublicPort)?.PublicPort ?? null,
  }));
}
