import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BerthError } from '../core/errors.js';

/**
 * One process at a time drives a cluster from a state dir: `berth run` holds this lock for its
 * lifetime and `berth apply` for its one reconcile, so two rollouts never race.
 *
 * The lock file is created exclusively (O_EXCL) and records the owner's pid and that process's
 * start time. A lock whose process is gone (a kill -9), or whose pid now belongs to another
 * process (same pid, other start time: a reboot or a container restart reused it), is stale
 * and taken over. Taking over happens under a second exclusive file, `lock.takeover`, so two
 * processes that both find the same stale lock never both end up holding a lock.
 */
export interface StateLock {
  release(): Promise<void>;
}

/** What a lock file records. */
export interface LockOwner {
  pid: number;
  /** /proc/PID/stat field 22 (clock ticks after boot); null where there is no /proc. */
  startTime: string | null;
  command?: string;
  since?: string;
}

/** What is known of a live process: whether it runs, and its start time when readable. */
export interface ProcessProbe {
  running: boolean;
  startTime: string | null;
}

export type LockVerdict =
  { kind: 'held'; owner: LockOwner } | { kind: 'being-created' } | { kind: 'stale'; reason: string };

/**
 * A lock file with no complete record yet is being written by its creator; it only counts as
 * abandoned (its creator died between create and write) after this long.
 */
export const PARTIAL_LOCK_GRACE_MS = 10_000;

/** Decides what an existing lock file means. Pure: the file's text and age and the probe of its pid are data. */
export function judgeLock(args: {
  text: string;
  ageMs: number;
  self: LockOwner;
  probe: (pid: number) => ProcessProbe;
}): LockVerdict {
  const owner = parseOwner(args.text);
  if (owner === null) {
    return args.ageMs < PARTIAL_LOCK_GRACE_MS
      ? { kind: 'being-created' }
      : { kind: 'stale', reason: `the lock was left half-written ${Math.round(args.ageMs / 1000)} s ago` };
  }
  if (owner.pid === args.self.pid) {
    // Our own pid: this very process holds it, unless an earlier process had the same pid.
    const same = owner.startTime !== null && owner.startTime === args.self.startTime;
    return same ? { kind: 'held', owner } : { kind: 'stale', reason: `pid ${owner.pid} is this process now` };
  }
  const process = args.probe(owner.pid);
  if (!process.running) return { kind: 'stale', reason: `pid ${owner.pid} is gone` };
  if (owner.startTime !== null && process.startTime !== null && owner.startTime !== process.startTime) {
    return { kind: 'stale', reason: `pid ${owner.pid} now belongs to another process` };
  }
  return { kind: 'held', owner };
}

function parseOwner(text: string): LockOwner | null {
  try {
    const parsed = JSON.parse(text) as Partial<LockOwner>;
    if (typeof parsed.pid !== 'number') return null;
    return {
      ...parsed,
      pid: parsed.pid,
      startTime: typeof parsed.startTime === 'string' ? parsed.startTime : null,
    };
  } catch {
    return null;
  }
}

/** Field 22 of /proc/PID/stat; the command name (field 2) may hold spaces and parentheses, so count from its end. */
export function processStartTime(pid: number): string | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

export function probeProcess(pid: number): ProcessProbe {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it runs, under another user.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return { running: false, startTime: null };
  }
  return { running: true, startTime: processStartTime(pid) };
}

const ATTEMPTS = 5;
/** How long to wait for a lock being created to get its record, for a useful refusal message. */
const CREATING_WAIT_MS = 50;

export async function acquireStateLock(stateDir: string, command: string): Promise<StateLock> {
  await mkdir(stateDir, { recursive: true });
  const path = join(stateDir, 'lock');
  const self: LockOwner = {
    pid: process.pid,
    startTime: processStartTime(process.pid),
    command,
    since: new Date().toISOString(),
  };
  const record = JSON.stringify(self);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (await createExclusively(path, record)) return heldLock(path, record);
    const verdict = await judgeLockFile(path, self);
    if (verdict === null) continue; // released meanwhile: try again
    if (verdict.kind === 'held') throw busy(stateDir, verdict.owner);
    if (verdict.kind === 'being-created') {
      await sleep(CREATING_WAIT_MS);
      continue;
    }
    await takeOver(path, self);
  }
  const last = await judgeLockFile(path, self);
  if (last?.kind === 'held') throw busy(stateDir, last.owner);
  throw new BerthError(
    'ERR_STATE',
    `another berth process is taking the lock ${path}; try again, or remove it if no berth process runs`,
  );
}

/** Creates the lock file with our record, or false when it exists. */
async function createExclusively(path: string, record: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new BerthError('ERR_STATE', `cannot create the lock ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  try {
    await handle.writeFile(record);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(path, { force: true });
    throw new BerthError('ERR_STATE', `cannot write the lock ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  await handle.close();
  return true;
}

/** The verdict on the lock file at path, or null when there is none. */
async function judgeLockFile(path: string, self: LockOwner): Promise<LockVerdict | null> {
  try {
    const [text, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return judgeLock({ text, ageMs: Date.now() - info.mtimeMs, self, probe: probeProcess });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/**
 * Removes a stale lock, holding `lock.takeover` meanwhile and judging the lock again under it:
 * a second process that found the same stale lock either waits its turn and then sees the
 * first one's fresh lock, or finds the takeover file and leaves the lock alone.
 */
async function takeOver(path: string, self: LockOwner): Promise<void> {
  const takeoverPath = `${path}.takeover`;
  if (!(await createExclusively(takeoverPath, JSON.stringify(self)))) {
    const verdict = await judgeLockFile(takeoverPath, self);
    // A takeover whose process died: clear it; the next attempt starts over.
    if (verdict?.kind === 'stale') await rm(takeoverPath, { force: true });
    else await sleep(CREATING_WAIT_MS);
    return;
  }
  try {
    const verdict = await judgeLockFile(path, self);
    if (verdict?.kind === 'stale') await rm(path, { force: true });
  } finally {
    await rm(takeoverPath, { force: true });
  }
}

function heldLock(path: string, record: string): StateLock {
  return {
    release: async () => {
      // Only our own lock: had it been taken over (judged stale by mistake), it is not ours to remove.
      const text = await readFile(path, 'utf8').catch(() => null);
      if (text === record) await rm(path, { force: true });
    },
  };
}

function busy(stateDir: string, owner: LockOwner): BerthError {
  return new BerthError(
    'ERR_STATE',
    `another berth process (pid ${owner.pid}, \`berth ${owner.command ?? '?'}\` since ${owner.since ?? '?'}) is driving the cluster from ${stateDir}; stop it or use another --state-dir`,
  );
}
