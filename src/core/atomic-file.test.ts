import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readFileIfExists, writeFileAtomic, writeLanded } from './atomic-file.js';

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-atomic-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('writeFileAtomic creates missing directories, replaces the content, keeps the mode, and leaves only the file', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'cluster', 'nodes.json');
    await writeFileAtomic(path, 'one\n', 0o644);
    await writeFileAtomic(path, Buffer.from('two\n'), 0o644);
    assert.equal(await readFile(path, 'utf8'), 'two\n');
    assert.equal((await stat(path)).mode & 0o777, 0o644);
    assert.deepEqual(await readdir(join(dir, 'cluster')), ['nodes.json']);
    assert.equal(await readFileIfExists(join(dir, 'absent')), null);
  });
});

test('concurrent writes of one file each land whole: the file holds one of them', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'state.json');
    const contents = Array.from({ length: 20 }, (_, i) => `${String(i).repeat(5000)}\n`);
    await Promise.all(contents.map((content) => writeFileAtomic(path, content)));
    assert.ok(contents.includes(await readFile(path, 'utf8')));
    assert.deepEqual(await readdir(dir), ['state.json']);
  });
});

test('a failed write rejects with ERR_STATE_WRITE naming the file and the cause, and the next write is unaffected', async () => {
  await withDir(async (dir) => {
    // A file where the directory should be: the write cannot even start.
    await writeFile(join(dir, 'cluster'), '');
    const path = join(dir, 'cluster', 'token.json');
    const error = await writeFileAtomic(path, '{}').then(
      () => assert.fail('the write succeeded'),
      (e: unknown) => e as Error & { code: string; data: unknown },
    );
    assert.equal(error.code, 'ERR_STATE_WRITE');
    assert.deepEqual(error.data, { path, cause: 'EEXIST', replaced: false });
    assert.match(
      error.message,
      new RegExp(`^cannot write ${path} \\(EEXIST.*\\); it keeps its previous content$`),
    );
    assert.equal(writeLanded(error), false);
    assert.deepEqual(await readdir(dir), ['cluster']);
    await rm(join(dir, 'cluster'));
    await writeFileAtomic(path, '{}');
    assert.equal(await readFile(path, 'utf8'), '{}');
  });
});
