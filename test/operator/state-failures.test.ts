// State writes against real file-system faults: a tiny tmpfs that fills up (ENOSPC), a
// read-only remount (EROFS) and a directory without write permission (EACCES). Every failed
// write is reported as ERR_STATE_WRITE naming the file and the cause, leaves no temp file, changes
// neither memory nor disk, and does not stop later writes once the fault is gone.
// Needs root (mount, and a child process run as nobody).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { writeFileAtomic } from '../../src/core/atomic-file.js';
import {
  leftoverTempFiles,
  registryScenario,
  storeScenario,
  type FileSystemFault,
  type RegistryObservation,
  type StoreObservation,
} from './state-write-scenarios.js';

const run = promisify(execFile);
const NOBODY = 65534;

/** A 64 KiB tmpfs mounted on a fresh dir for the body; unmounted and removed afterwards, also on failure. */
async function withTinyTmpfs(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-state-fault-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', dir]);
    try {
      await body(dir);
    } finally {
      await run('umount', [dir]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Fills the file system of dir to the last byte with one file; removing that file frees the space. */
function diskFull(dir: string): FileSystemFault {
  const filler = join(dir, 'filler');
  return {
    broken: async () => {
      const handle = await open(filler, 'w');
      try {
        const chunk = Buffer.alloc(4096, 1);
        for (;;) await handle.write(chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      } finally {
        await handle.close();
      }
    },
    repaired: () => rm(filler),
  };
}

function readOnly(dir: string): FileSystemFault {
  return {
    broken: async () => void (await run('mount', ['-o', 'remount,ro', dir])),
    repaired: async () => void (await run('mount', ['-o', 'remount,rw', dir])),
  };
}

function assertReported(
  failures: { code: string | undefined; cause: string | null; message: string }[],
  cause: string,
  file: string,
): void {
  for (const failure of failures) {
    assert.equal(failure.code, 'ERR_STATE_WRITE', failure.message);
    assert.equal(failure.cause, cause, failure.message);
    assert.match(failure.message, new RegExp(`cannot write \\S*${file.replace('.', '\\.')} .*${cause}`));
  }
}

function assertRegistryRecovered(seen: RegistryObservation, cause: string): void {
  assert.equal(seen.failures.length, 3);
  assertReported(seen.failures, cause, 'nodes.json');
  // The failed drain, removal and join changed nothing, in memory or on disk.
  assert.deepEqual(seen.memoryAfterFailure, seen.before);
  assert.deepEqual(seen.diskAfterFailure, seen.before);
  // The removal made after the fault is kept, and a reload from disk equals memory.
  assert.deepEqual(
    seen.memoryAfterRepair.map((r) => [r.name, r.availability]),
    [
      ['n1', 'active'],
      ['n3', 'drain'],
    ],
  );
  assert.deepEqual(seen.diskAfterRepair, seen.memoryAfterRepair);
  assert.equal(seen.removedNodeRevokedOnDisk, true);
  assert.deepEqual(seen.leftovers, []);
}

function assertStoreRecovered(seen: StoreObservation, cause: string): void {
  assert.equal(seen.failures.length, 2);
  assertReported(seen.failures.slice(0, 1), cause, 'state.json');
  assertReported(seen.failures.slice(1), cause, 'history.jsonl');
  assert.equal(seen.stateAfterFailure.lastGood?.revision, 'r1');
  // The failed append is all or nothing: no entry of it, no torn line, not one byte more.
  assert.deepEqual(seen.historyAfterFailure, ['h1']);
  assert.equal(seen.historyBytesAfterFailure, seen.historyBytesBefore);
  assert.equal(seen.returnedAfterRepair.lastGood?.revision, 'r3');
  assert.deepEqual(seen.stateAfterRepair, seen.returnedAfterRepair);
  assert.deepEqual(seen.historyAfterRepair, ['h1', 'repaired-0', 'repaired-1', 'repaired-2']);
  assert.deepEqual(seen.leftovers, []);
}

test('a full disk: writeFileAtomic reports ENOSPC, keeps the old content, leaves no temp file, and writes once there is space', async () => {
  await withTinyTmpfs(async (dir) => {
    const path = join(dir, 'state.json');
    await writeFileAtomic(path, 'old\n');
    const full = diskFull(dir);
    await full.broken();
    await assert.rejects(
      writeFileAtomic(path, 'x'.repeat(20_000)),
      (error: Error & { code?: string; data?: unknown }) => {
        assert.equal(error.code, 'ERR_STATE_WRITE');
        assert.deepEqual(error.data, { path, cause: 'ENOSPC', replaced: false });
        assert.match(error.message, new RegExp(`cannot write ${path} \\(ENOSPC: no space left on device`));
        return true;
      },
    );
    assert.equal(await readFile(path, 'utf8'), 'old\n');
    assert.deepEqual(await leftoverTempFiles(dir), []);
    await full.repaired();
    await writeFileAtomic(path, 'new\n');
    assert.equal(await readFile(path, 'utf8'), 'new\n');
  });
});

test('a full disk: the node registry reports ENOSPC per change, keeps memory and disk equal, and saves a later node removal', async () => {
  await withTinyTmpfs(async (dir) => {
    assertRegistryRecovered(await registryScenario(dir, diskFull(dir)), 'ENOSPC');
  });
});

test('a full disk: the state store reports ENOSPC for an update and an append, which change nothing, and writes again with space', async () => {
  await withTinyTmpfs(async (dir) => {
    assertStoreRecovered(await storeScenario(dir, diskFull(dir)), 'ENOSPC');
  });
});

test('a read-only file system: registry and state store report EROFS, change nothing, and write again once remounted read-write', async () => {
  await withTinyTmpfs(async (dir) => {
    await mkdir(join(dir, 'registry'));
    await mkdir(join(dir, 'store'));
    const fault = readOnly(dir);
    assertRegistryRecovered(await registryScenario(join(dir, 'registry'), fault), 'EROFS');
    try {
      assertStoreRecovered(await storeScenario(join(dir, 'store'), fault), 'EROFS');
    } finally {
      // A failed assertion inside must not leave the mount read-only for the unmount's sake.
      await fault.repaired().catch(() => undefined);
    }
  });
});

test('a directory without write permission (chmod 0500, as a non-root user): EACCES is reported, and writes resume once it is writable', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-state-eacces-'));
  try {
    await chmod(dir, 0o755);
    const observe = async (scenario: string): Promise<unknown> => {
      const stateDir = join(dir, scenario);
      await mkdir(stateDir, { mode: 0o700 });
      await chown(stateDir, NOBODY, NOBODY);
      const script = fileURLToPath(new URL('./state-write-unprivileged.ts', import.meta.url));
      const { stdout } = await run(process.execPath, ['--import', 'tsx', script, stateDir, scenario], {
        uid: NOBODY,
        gid: NOBODY,
        env: { ...process.env, HOME: stateDir },
      });
      return JSON.parse(stdout);
    };
    assertRegistryRecovered((await observe('registry')) as RegistryObservation, 'EACCES');
    assertStoreRecovered((await observe('store')) as StoreObservation, 'EACCES');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
