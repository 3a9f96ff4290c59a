/**
 * Where the files of a replica (configs, secrets) live on the node before they are bind-mounted,
 * read-only, into its container. One directory per container, removed with the container.
 *
 *   <stateDir>/files/<container>/    configs, on the node's disk
 *   <stateDir>/secrets/<container>/  secrets, on a tmpfs the agent mounts (memory only, mode 0700)
 *
 * File contents are never logged.
 */
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, readdir, readFile, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { writeFileAtomic } from '../core/atomic-file.js';
import { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { ReplicaFile } from '../api/types.js';
import { assertContainerName } from './container-spec.js';
import type { BindMount } from './runtime.js';

const run = promisify(execFile);
/** Secrets are small; the cap keeps a runaway request from eating the node's memory. */
const SECRETS_TMPFS_SIZE = '64m';

export interface FileStore {
  /** Writes the files of one container (replacing any earlier ones) and returns read-only bind mounts. */
  write(containerName: string, files: ReplicaFile[]): Promise<BindMount[]>;
  /** Removes the files of one container; fine when there are none. */
  remove(containerName: string): Promise<void>;
  /** Names of the containers that have files here, for garbage collection. */
  list(): Promise<string[]>;
}

export interface FileStoreOptions {
  stateDir: string;
  log: Logger;
}

export function createFileStore(options: FileStoreOptions): FileStore {
  const root = path.resolve(options.stateDir);
  const filesRoot = path.join(root, 'files');
  const secretsRoot = secretsDir(root);
  let secretsReady: Promise<void> | null = null;

  const ensureSecretsTmpfs = (): Promise<void> => {
    secretsReady ??= mountSecretsTmpfs(secretsRoot, options.log).catch((error: unknown) => {
      secretsReady = null;
      throw error;
    });
    return secretsReady;
  };

  return {
    async write(containerName, files) {
      assertContainerName(containerName);
      await this.remove(containerName);
      if (files.length === 0) return [];
      const targets = new Set<string>();
      for (const file of files) {
        assertTarget(file.target);
        if (targets.has(file.target)) {
          throw new BerthError('ERR_BAD_REQUEST', `two files target ${file.target} in ${containerName}`);
        }
        targets.add(file.target);
      }
      if (files.some((file) => file.secret)) await ensureSecretsTmpfs();

      const mounts: BindMount[] = [];
      for (const [index, file] of files.entries()) {
        const dir = path.join(file.secret ? secretsRoot : filesRoot, containerName);
        await mkdir(dir, { recursive: true, mode: 0o700 });
        // Flat names: targets never become host paths, so no target can escape the directory.
        const source = path.join(dir, `${index}-${path.posix.basename(file.target)}`);
        await writeFileAtomic(source, Buffer.from(file.contentBase64, 'base64'), 0o600);
        await chmod(source, file.mode);
        await setOwner(source, file.uid, file.gid, file.target);
        mounts.push({ source, target: file.target, readOnly: true });
      }
      options.log.debug(
        {
          container: containerName,
          files: files.map((file) => ({ target: file.target, secret: file.secret })),
        },
        'replica files written',
      );
      return mounts;
    },

    async remove(containerName) {
      assertContainerName(containerName);
      await rm(path.join(filesRoot, containerName), { recursive: true, force: true });
      await rm(path.join(secretsRoot, containerName), { recursive: true, force: true });
    },

    async list() {
      const names = new Set<string>();
      for (const dir of [filesRoot, secretsRoot]) {
        for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
          if (entry.isDirectory()) names.add(entry.name);
        }
      }
      return [...names].sort();
    },
  };
}

/** Where the secrets tmpfs of a state dir is mounted. */
export function secretsDir(stateDir: string): string {
  return path.join(path.resolve(stateDir), 'secrets');
}

function assertTarget(target: string): void {
  const normalised = path.posix.normalize(target);
  if (!path.posix.isAbsolute(target) || normalised !== target || normalised === '/' || target.endsWith('/')) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `file target must be a normalised absolute file path, got ${JSON.stringify(target)}`,
    );
  }
}

async function setOwner(file: string, uid: number, gid: number, target: string): Promise<void> {
  if (uid === process.getuid?.() && gid === process.getgid?.()) return;
  try {
    await chown(file, uid, gid);
  } catch (error) {
    throw new BerthError(
      'ERR_NOT_SUPPORTED',
      `cannot give ${target} owner ${uid}:${gid} on this node (the agent is not root?)`,
      { cause: error },
    );
  }
}

/** Mounts a private tmpfs at dir unless one is already there (from an earlier agent run). */
async function mountSecretsTmpfs(dir: string, log: Logger): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (await isTmpfsMountPoint(dir)) return;
  if (process.getuid?.() !== 0) {
    throw new BerthError(
      'ERR_NOT_SUPPORTED',
      `secrets need memory-backed storage, and only root can mount a tmpfs at ${dir}; run the agent as root or mount one there yourself (mount -t tmpfs -o mode=0700 tmpfs ${dir})`,
    );
  }
  const options = `size=${SECRETS_TMPFS_SIZE},mode=0700`;
  try {
    // noswap (Linux 6.4+) keeps the pages out of swap too, so plaintext never reaches a disk;
    // older kernels refuse the option and get a plain tmpfs, as Swarm uses.
    await run('mount', ['-t', 'tmpfs', '-o', `${options},noswap`, 'tmpfs', dir]).catch(() =>
      run('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]),
    );
  } catch (error) {
    throw new BerthError(
      'ERR_NOT_SUPPORTED',
      // In a container, mount(2) needs CAP_SYS_ADMIN (and no AppArmor profile denying it).
      `could not mount a tmpfs for secrets at ${dir} (in a container: --cap-add SYS_ADMIN): ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  log.info({ dir }, 'mounted a tmpfs for secret files');
}

export async function isTmpfsMountPoint(dir: string): Promise<boolean> {
  const resolved = await realpath(dir);
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  return mountinfo.split('\n').some((line) => {
    // Fields: id parent major:minor root mount-point options [optional...] - fstype source super-options
    const fields = line.split(' ');
    const separator = fields.indexOf('-');
    return (
      separator > 0 && unescapeMountPath(fields[4] ?? '') === resolved && fields[separator + 1] === 'tmpfs'
    );
  });
}

function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_match, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
