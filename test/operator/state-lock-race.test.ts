import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { acquireStateLock, PARTIAL_LOCK_GRACE_MS, processStartTime } from '../../src/operator/state-lock.js';

const racerScript = fileURLToPath(new URL('./state-lock-racer.ts', import.meta.url));

interface RaceResult {
  pid: number;
  acquired: boolean;
  message?: string;
}

/** Starts `count` processes at once that all try to take the lock; returns what each got while all still run. */
async function race(
  stateDir: string,
  count: number,
): Promise<{ results: RaceResult[]; finish: () => Promise<void> }> {
  const children: ChildProcess[] = [];
  const finish = async (): Promise<void> => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null) return;
        const exited = once(child, 'exit');
        child.stdin?.end();
        await exited;
      }),
    );
  };
  try {
    for (let i = 0; i < count; i++) {
      children.push(
        spawn(process.execPath, ['--import', 'tsx', racerScript, stateDir], {
          stdio: ['pipe', 'pipe', 'inherit'],
        }),
      );
    }
    const results = await Promise.all(
      children.map(async (child) => {
        const lines = createInterface({ input: child.stdout! });
        const [line] = (await once(lines, 'line')) as [string];
        return JSON.parse(line) as RaceResult;
      }),
    );
    return { results, finish };
  } catch (error) {
    for (const child of children) child.kill('SIGKILL');
    await finish();
    throw error;
  }
}

async function deadPid(): Promise<number> {
  const child = spawn('true');
  await once(child, 'exit');
  return child.pid!;
}

async function withStateDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-lock-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function assertOneWinner(results: RaceResult[]): RaceResult {
  const winners = results.filter((r) => r.acquired);
  assert.equal(winners.length, 1, JSON.stringify(results));
  const winner = winners[0]!;
  for (const loser of results.filter((r) => !r.acquired)) {
    assert.match(loser.message ?? '', new RegExp(`another berth process \\(pid ${winner.pid},`));
  }
  return winner;
}

test('of several processes racing for a free lock exactly one gets it; it is free again once released', async () => {
  await withStateDir(async (dir) => {
    const { results, finish } = await race(dir, 6);
    try {
      const winner = assertOneWinner(results);
      assert.equal(
        (JSON.parse(await readFile(join(dir, 'lock'), 'utf8')) as { pid: number }).pid,
        winner.pid,
      );
    } finally {
      await finish();
    }
    const lock = await acquireStateLock(dir, 'test');
    await lock.release();
  });
});

test('of several processes racing for a stale lock (its process died) exactly one takes it over', async () => {
  await withStateDir(async (dir) => {
    await writeFile(
      join(dir, 'lock'),
      JSON.stringify({ pid: await deadPid(), startTime: '1', command: 'run' }),
    );
    const { results, finish } = await race(dir, 6);
    try {
      assertOneWinner(results);
    } finally {
      await finish();
    }
  });
});

test('a lock whose pid was reused by another process is taken over; one whose process still runs is not', async () => {
  await withStateDir(async (dir) => {
    const sleeper = spawn('sleep', ['300']);
    try {
      await once(sleeper, 'spawn');
      const startTime = processStartTime(sleeper.pid!);
      assert.notEqual(startTime, null);
      await writeFile(join(dir, 'lock'), JSON.stringify({ pid: sleeper.pid, startTime, command: 'run' }));
      await assert.rejects(
        acquireStateLock(dir, 'apply'),
        new RegExp(`another berth process \\(pid ${sleeper.pid}, \`berth run\``),
      );

      await writeFile(
        join(dir, 'lock'),
        JSON.stringify({ pid: sleeper.pid, startTime: `${startTime}0`, command: 'run' }),
      );
      const lock = await acquireStateLock(dir, 'apply');
      assert.equal(
        (JSON.parse(await readFile(join(dir, 'lock'), 'utf8')) as { pid: number }).pid,
        process.pid,
      );
      await lock.release();
    } finally {
      sleeper.kill('SIGKILL');
    }
  });
});

test('a lock file still being written is respected; one left half-written long ago is taken over', async () => {
  await withStateDir(async (dir) => {
    const path = join(dir, 'lock');
    await writeFile(path, '');
    await assert.rejects(acquireStateLock(dir, 'apply'), /another berth process is taking the lock/);
    assert.equal(await readFile(path, 'utf8'), '');

    const past = new Date(Date.now() - PARTIAL_LOCK_GRACE_MS - 5000);
    await utimes(path, past, past);
    const lock = await acquireStateLock(dir, 'apply');
    await lock.release();
  });
});

test('a lock cannot be taken twice by the same process', async () => {
  await withStateDir(async (dir) => {
    const lock = await acquireStateLock(dir, 'run');
    try {
      await assert.rejects(acquireStateLock(dir, 'apply'), new RegExp(`pid ${process.pid}, \`berth run\``));
    } finally {
      await lock.release();
    }
  });
});
