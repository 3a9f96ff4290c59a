import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../core/errors.js';

/**
 * One process at a time drives a cluster from a state dir: `berth run` holds this lock for its
 * lifetime and `berth apply` for its one reconcile, so two rollouts never race. The lock file
 * holds the owner's pid; a lock whose process is gone (a kill -9) is taken over.
 */
export interface StateLock {
  release(): Promise<void>;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function acquireStateLock(stateDir: string, command: string): Promise<StateLock> {
  await mkdir(stateDir, { recursive: true });
  const path = join(stateDir, 'lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600);
      await handle.writeFile(JSON.stringify({ pid: process.pid, command, since: new Date().toISOString() }));
      await handle.close();
      return {
        release: async () => {
          await rm(path, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let owner: { pid?: number; command?: string; since?: string } = {};
    try {
      owner = JSON.parse(await readFile(path, 'utf8')) as typeof owner;
    } catch {
      // Unreadable or half-written: treat as stale.
    }
    if (typeof owner.pid === 'number' && owner.pid !== process.pid && isRunning(owner.pid)) {
      throw new BerthError(
        'ERR_STATE',
        `another berth process (pid ${owner.pid}, \`berth ${owner.command ?? '?'}\` since ${owner.since ?? '?'}) is driving the cluster from ${stateDir}; stop it or use another --state-dir`,
      );
    }
    await rm(path, { force: true });
  }
  throw new BerthError('ERR_STATE', `could not take the lock ${path}`);
}
