/**
 * berth's own pack indexer (used for every fetched pack, see pack-indexer.ts) against git's: git
 * accepts the index berth writes (ids, offsets, CRCs and checksums), for a pack with deltas and
 * with an object larger than what is held in memory.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { indexPack, MAX_INDEXED_OBJECT_BYTES } from '../../src/source/pack-indexer.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';

let repo: TestRepo;

before(async () => {
  const text = randomBytes(3000).toString('base64');
  repo = await createTestRepo({ 'a.yaml': `note: ${text}\n`, 'b.yaml': 'b: 1\n' });
  // Similar content in a second commit: git stores one of the two as a delta of the other.
  await repo.commit({ 'a.yaml': `note: ${text}\nmore: 1\n` }, 'edit a');
  await writeFile(join(repo.dir, 'zeros.yaml'), Buffer.alloc(MAX_INDEXED_OBJECT_BYTES + 1));
  await repo.commit({}, 'an object over the in-memory limit');
});

after(async () => {
  await repo?.cleanup();
});

void test('git verifies the index berth writes for a pack git made', async () => {
  await repo.git('gc', '--quiet');
  const packDir = join(repo.dir, '.git', 'objects', 'pack');
  const name = (await readdir(packDir)).find((file) => file.endsWith('.pack'));
  assert.ok(name !== undefined);
  const packPath = join(packDir, name);
  const gitIndex = await readFile(packPath.replace(/\.pack$/, '.idx'));
  const ours = await indexPack(await readFile(packPath), async () => undefined);
  assert.equal(ours.length, gitIndex.length);
  assert.ok(ours.equals(gitIndex), 'the same bytes as git index-pack');
  const verbose = await repo.git('verify-pack', '-v', packPath.replace(/\.pack$/, '.idx'));
  assert.match(verbose, /chain length = 1: \d+ objects?/);
});
