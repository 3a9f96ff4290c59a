import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '../core/log.js';
import { markUsedAndPrune } from './cache-folders.js';

test('opening a cache keeps it and the most recently used others, and removes the rest', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'berth-cache-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const folder = (i: number): string => join(root, i.toString(16).padStart(16, '0'));
  for (let i = 1; i <= 5; i++) {
    await mkdir(folder(i), { recursive: true });
    await writeFile(join(folder(i), 'berth-last-used'), '');
    const at = new Date(Date.UTC(2026, 0, i));
    await utimes(join(folder(i), 'berth-last-used'), at, at);
  }
  // Not a cache folder: never touched.
  await mkdir(join(root, 'notes'));
  const opened = folder(0xabc);
  await mkdir(opened, { recursive: true });

  await markUsedAndPrune(opened, 4, silentLogger());

  assert.deepEqual(
    (await readdir(root)).sort(),
    [folder(3), folder(4), folder(5), opened, join(root, 'notes')]
      .map((p) => p.slice(root.length + 1))
      .sort(),
  );
  // Under the limit nothing more goes.
  await markUsedAndPrune(folder(3), 4, silentLogger());
  assert.equal((await readdir(root)).length, 5);
});
