/**
 * An agent in a container hands the engine bind-mount sources (config and secret files under its
 * state dir) as paths of its own filesystem, but the engine resolves them on the host. So a
 * containerized agent needs its state dir bind-mounted at the same path on host and in the
 * container, and, for secrets, a tmpfs the host can see: one the host mounted before the agent
 * started, or one the agent mounts through an rshared bind (which propagates it to the host).
 * This checks both at start, so a misconfigured agent stops with the flags to use instead of
 * deploying replicas whose files point at nothing.
 */
import { mkdir, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { connectDocker } from './docker-client.js';
import { BerthError } from '../core/errors.js';
import { isTmpfsMountPoint } from './file-store.js';

interface EngineMount {
  Type?: string;
  Source?: string;
  Destination?: string;
  Propagation?: string;
}

export interface HostVisibleStateOptions {
  /** The state dir to check, as the process sees it. */
  stateDir: string;
  /** Where the file store mounts its secrets tmpfs (under stateDir). */
  secretsDir: string;
  /** The engine the replicas run on. */
  socketPath: string;
  /** The command-line flag that sets stateDir, for the message. */
  flag: string;
}

/**
 * Resolves when the engine sees stateDir at the same path (always so outside a container of this
 * engine); throws ERR_BAD_REQUEST with the docker run flags to use otherwise.
 */
export async function assertStateVisibleToEngine(options: HostVisibleStateOptions): Promise<void> {
  const containerId = ownContainerId(await readFile('/proc/self/mountinfo', 'utf8'));
  if (containerId === null) return;
  const mounts = await ownMounts(options.socketPath, containerId);
  // Not a container of this engine (the engine runs elsewhere or nested): paths are shared as is.
  if (mounts === null) return;

  await mkdir(options.stateDir, { recursive: true });
  const stateDir = await realpath(options.stateDir);
  const mount = coveringMount(mounts, stateDir);
  const rshared = `--mount type=bind,src=${stateDir},dst=${stateDir},bind-propagation=rshared`;
  const hostPath =
    mount?.Type === 'bind' && mount.Source !== undefined && mount.Destination !== undefined
      ? path.join(mount.Source, path.relative(mount.Destination, stateDir))
      : null;
  if (hostPath !== stateDir) {
    const where = hostPath === null ? 'only inside this container' : `at ${hostPath} on the host`;
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `berth runs in container ${containerId.slice(0, 12)} and its state dir ${stateDir} is ${where}; ` +
        `the engine would bind-mount config and secret files from ${stateDir} on the host. ` +
        `Mount it at the same path: docker run ${rshared} ... ${options.flag} ${stateDir}`,
    );
  }
  const propagates = mount?.Propagation === 'rshared' || mount?.Propagation === 'shared';
  if (!propagates && !(await isTmpfsMountPoint(options.secretsDir).catch(() => false))) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `berth runs in container ${containerId.slice(0, 12)}: the tmpfs it mounts for secrets at ${options.secretsDir} ` +
        `would stay inside the container. Either mount the state dir with ${rshared} and give the ` +
        `container --cap-add SYS_ADMIN (and --security-opt apparmor=unconfined under AppArmor), or mount ` +
        `the tmpfs on the host before starting the container: mkdir -p ${options.secretsDir} && ` +
        `mount -t tmpfs -o size=64m,mode=0700 tmpfs ${options.secretsDir}`,
    );
  }
}

/**
 * Docker bind-mounts /etc/hostname, /etc/hosts and /etc/resolv.conf from the container's own
 * directory (<data-root>/containers/<id>/), whose name survives --hostname and --network host.
 */
export function ownContainerId(mountinfo: string): string | null {
  for (const line of mountinfo.split('\n')) {
    const root = line.split(' ')[3] ?? '';
    const match = /\/containers\/([0-9a-f]{64})\/(?:hostname|hosts|resolv\.conf)$/.exec(root);
    if (match?.[1] !== undefined) return match[1];
  }
  return null;
}

async function ownMounts(socketPath: string, containerId: string): Promise<EngineMount[] | null> {
  try {
    const info = (await connectDocker(socketPath).getContainer(containerId).inspect()) as {
      Mounts?: EngineMount[];
    };
    return info.Mounts ?? [];
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return null;
    throw new BerthError(
      'ERR_DOCKER_UNAVAILABLE',
      `cannot inspect this container (${containerId.slice(0, 12)}) to check its mounts: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** The mount whose destination holds dir, deepest first (a mount inside a mount wins). */
function coveringMount(mounts: EngineMount[], dir: string): EngineMount | undefined {
  return mounts
    .filter((m) => m.Destination !== undefined && isWithin(dir, m.Destination))
    .sort((a, b) => (b.Destination?.length ?? 0) - (a.Destination?.length ?? 0))[0];
}

function isWithin(dir: string, parent: string): boolean {
  const relative = path.relative(parent, dir);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}
