/**
 * A revision holding a highly compressible blob (300 MB of zeros packs to some 300 KB) is refused
 * by its size before it is inflated: the reading process stays far below the blob's size, and the
 * revision loads as invalid with a problem naming the file and its size. Local (loose and packed
 * objects) and remote (smart HTTP) sources alike.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

import { MAX_MANIFEST_FILE_BYTES } from '../../src/manifests/defaults.js';
import { MAX_MANIFEST_REVISION_BYTES } from '../../src/manifests/manifest-files.js';
import { DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_TOTAL_BYTES } from '../../src/source/git-object-store.js';
import { startGitHttpServer, type GitHttpServer } from '../helpers/git-http-server.js';
import { createBareRemote, createTestRepo, type TestRepo } from '../helpers/git-repo.js';

const execFileAsync = promisify(execFile);
const BLOB_BYTES = 300 * 1024 * 1024;
const MiB = 1024 * 1024;
const srcDir = fileURLToPath(new URL('../../src/', import.meta.url));

const web = `apiVersion: berth/v1
kind: Service
metadata: { name: web }
spec: { image: "busybox:1" }
`;

interface ChildReport {
  problems: string[];
  files: string[];
  /** VmHWM: the child's peak resident memory. */
  peakBytes: number;
}

/**
 * Opens the source and loads `path` at the branch head in a child process of its own, so its
 * peak RSS (VmHWM) measures this load alone.
 */
async function loadInChild(repo: string, cacheDir: string, path: string): Promise<ChildReport> {
  const module = (name: string) => JSON.stringify(pathToFileURL(join(srcDir, name)).href);
  const script = `
    import { readFileSync } from 'node:fs';
    import { openGitSource } from ${module('source/git-source.ts')};
    import { loadManifests } from ${module('manifests/load.ts')};
    import { silentLogger } from ${module('core/log.ts')};
    const [repo, cacheDir, path] = JSON.parse(process.argv[1]);
    const source = await openGitSource({ repo, cacheDir, log: silentLogger() });
    const head = await source.headOf('main');
    const files = await source.readFiles(head, path);
    const result = loadManifests(files, { revision: head });
    await source.close();
    const hwm = /VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    process.stdout.write(JSON.stringify({
      problems: result.ok ? [] : result.problems.map((p) => p.file + ':' + p.line + ':' + p.col + ': ' + p.message),
      files: files.map((file) => file.path),
      peakBytes: Number(hwm[1]) * 1024,
    }));
  `;
  const { stdout } = await execFileAsync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '--eval', script, JSON.stringify([repo, cacheDir, path])],
    { maxBuffer: MiB, timeout: 120_000 },
  );
  return JSON.parse(stdout) as ChildReport;
}

void describe('a revision with a 300 MB blob of zeros', () => {
  let repo: TestRepo;
  let served: string;
  let cacheDir: string;
  let server: GitHttpServer;

  before(async () => {
    repo = await createTestRepo({ 'deploy/web.yaml': web, 'other/notes.yaml': 'a: 1\n' });
    // Sparse files: zeros cost no disk until git compresses them.
    for (const path of ['deploy/big.yaml', 'other/huge.yaml']) {
      await writeFile(join(repo.dir, path), '');
      await truncate(join(repo.dir, path), BLOB_BYTES);
    }
    await repo.commit({}, 'add 300 MB of zeros, inside and outside the manifest path');
    served = await mkdtemp(join(tmpdir(), 'berth-served-'));
    await createBareRemote(repo, served, 'app.git');
    cacheDir = await mkdtemp(join(tmpdir(), 'berth-cache-'));
    server = await startGitHttpServer({ root: served });
  });

  after(async () => {
    await server?.close();
    await repo?.cleanup();
    if (served) await rm(served, { recursive: true, force: true });
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });

  const expected = [`big.yaml:1:1: ${BLOB_BYTES} bytes, over the 1 MiB limit of a manifest file`];

  void test('local, loose objects: refused by the size in the object header', async (t) => {
    const report = await loadInChild(repo.dir, cacheDir, 'deploy');
    assert.deepEqual(report.problems, expected);
    assert.deepEqual(report.files, ['big.yaml', 'web.yaml']);
    t.diagnostic(`peak RSS ${(report.peakBytes / MiB).toFixed(0)} MiB`);
    assert.ok(report.peakBytes < 200 * MiB, `peak RSS ${report.peakBytes} bytes`);
  });

  void test('local, packed objects: refused by the size in the pack entry header', async (t) => {
    await repo.git('gc', '--quiet');
    const report = await loadInChild(repo.dir, cacheDir, 'deploy');
    assert.deepEqual(report.problems, expected);
    t.diagnostic(`peak RSS ${(report.peakBytes / MiB).toFixed(0)} MiB`);
    assert.ok(report.peakBytes < 200 * MiB, `peak RSS ${report.peakBytes} bytes`);
  });

  void test('remote over HTTP: fetched, indexed and refused without inflating the blob whole', async (t) => {
    const report = await loadInChild(`${server.url}/app.git`, cacheDir, 'deploy');
    assert.deepEqual(report.problems, expected);
    t.diagnostic(`peak RSS ${(report.peakBytes / MiB).toFixed(0)} MiB`);
    assert.ok(report.peakBytes < 200 * MiB, `peak RSS ${report.peakBytes} bytes`);
  });
});

void test('a git source refuses files at the same sizes as the manifest loader', () => {
  assert.equal(DEFAULT_MAX_FILE_BYTES, MAX_MANIFEST_FILE_BYTES);
  assert.equal(DEFAULT_MAX_TOTAL_BYTES, MAX_MANIFEST_REVISION_BYTES);
});
