/**
 * Hostile or huge YAML: 20,000 keys, 1 MiB of flow mappings, deep nesting, an alias bomb. Each is
 * parsed in linear time or refused with a problem naming the file, and loading them off the event
 * loop (as the operator does) never stalls it: the event-loop delay measured during the loads is
 * an outcome of the design (the work is on a worker thread), not of the machine being fast.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, describe, test } from 'node:test';

import { MAX_MANIFEST_FILE_BYTES } from '../../src/manifests/defaults.js';
import { OffThreadManifestLoader } from '../../src/manifests/load-off-thread.js';
import type { ManifestFile } from '../../src/manifests/load.js';
import { builtIsCurrent } from '../helpers/berth-cli.js';
import { MAX_YAML_NESTING_DEPTH, parseManifestFile } from '../../src/manifests/parse.js';

const encode = (text: string) => new TextEncoder().encode(text);
const MiB = 1024 * 1024;

/** A Config whose data holds `count` keys: valid, and large. */
function manyKeys(count: number): string {
  const lines = ['apiVersion: berth/v1', 'kind: Config', 'metadata: { name: many }', 'data:'];
  for (let index = 0; index < count; index++) lines.push(`  key${index}: value${index}`);
  return `${lines.join('\n')}\n`;
}

/** Flow mappings up to `bytes` (just under the per-file limit). */
function flowMappings(bytes: number): string {
  const head = 'apiVersion: berth/v1\nkind: Config\nmetadata: { name: flow }\ndata: {';
  const parts: string[] = [head];
  let length = head.length;
  for (let index = 0; length < bytes - 64; index++) {
    const part = `k${index}: "{a: [1, 2]}", `;
    parts.push(part);
    length += part.length;
  }
  parts.push('last: x}\n');
  return parts.join('');
}

const billionLaughs = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  ...'bcdefghi'.split('').map((name, index) => {
    const previous = 'abcdefghi'[index]!;
    return `${name}: &${name} [${Array(9).fill(`*${previous}`).join(',')}]`;
  }),
].join('\n');

const hostile: Record<string, string> = {
  'keys.yaml': manyKeys(20_000),
  'flow.yaml': flowMappings(MAX_MANIFEST_FILE_BYTES),
  'deep-flow.yaml': `${'['.repeat(10_000)}${']'.repeat(10_000)}\n`,
  'deep-block.yaml': `${'- '.repeat(5_000)}x\n`,
  'laughs.yaml': `${billionLaughs}\n`,
  'huge.yaml': `a: "${'x'.repeat(MAX_MANIFEST_FILE_BYTES)}"\n`,
};

function problemsOf(path: string): string[] {
  const content = encode(hostile[path]!);
  return parseManifestFile({ path, content }, MAX_MANIFEST_FILE_BYTES).problems.map(
    (problem) => `${problem.file}:${problem.line}:${problem.col}: ${problem.message}`,
  );
}

void describe('hostile YAML', () => {
  const loader = new OffThreadManifestLoader();
  after(() => loader.close());

  void test('20,000 keys and 1 MiB of flow mappings parse (duplicate keys are found in linear time)', () => {
    assert.deepEqual(problemsOf('keys.yaml'), []);
    assert.deepEqual(problemsOf('flow.yaml'), []);
    const duplicated = `${manyKeys(20_000)}  key7: again\n`;
    const parsed = parseManifestFile(
      { path: 'dup.yaml', content: encode(duplicated) },
      MAX_MANIFEST_FILE_BYTES,
    );
    assert.deepEqual(
      parsed.problems.map((problem) => [problem.file, problem.line, problem.message]),
      [['dup.yaml', 20_005, 'duplicate key "key7" (keys must be unique in a mapping)']],
    );
  });

  void test('deep nesting, alias bombs and oversized files are refused, naming the file', () => {
    assert.deepEqual(problemsOf('deep-flow.yaml'), [
      `deep-flow.yaml:1:1: nested more than ${MAX_YAML_NESTING_DEPTH} levels deep ([ and { brackets); refused`,
    ]);
    assert.match(
      problemsOf('deep-block.yaml').join('\n'),
      /^deep-block\.yaml:1:\d+: nested more than 64 levels deep; refused$/,
    );
    assert.match(problemsOf('laughs.yaml').join('\n'), /^laughs\.yaml:\d+:\d+: YAML aliases expand too much/);
    assert.deepEqual(problemsOf('huge.yaml'), [
      `huge.yaml:1:1: ${MAX_MANIFEST_FILE_BYTES + 6} bytes, over the 1 MiB limit of a manifest file`,
    ]);
  });

  void test('loading them all off the event loop never stalls it', async (t) => {
    const files: ManifestFile[] = Object.entries(hostile).map(([path, text]) => ({
      path,
      content: encode(text),
    }));
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const started = performance.now();
    const result = await loader.load(files, { revision: 'hostile' });
    const elapsed = performance.now() - started;
    delay.disable();
    t.diagnostic(
      `loaded ${(files.reduce((sum, file) => sum + file.content.byteLength, 0) / MiB).toFixed(1)} MiB in ${elapsed.toFixed(0)} ms; event loop delay max ${(delay.max / 1e6).toFixed(0)} ms`,
    );
    assert.equal(result.ok, false);
    const refusedFiles = new Set(!result.ok ? result.problems.map((problem) => problem.file) : []);
    for (const file of ['deep-flow.yaml', 'deep-block.yaml', 'laughs.yaml', 'huge.yaml']) {
      assert.ok(refusedFiles.has(file), `${file} is refused`);
    }
    assert.ok(delay.max / 1e6 < 250, `event loop stalled ${(delay.max / 1e6).toFixed(0)} ms`);
  });

  void test('a loader started ahead (warm) loads as a cold one does; left unused, it keeps no process alive', async () => {
    const files: ManifestFile[] = [{ path: 'many.yaml', content: encode(manyKeys(10)) }];
    const warmed = new OffThreadManifestLoader();
    try {
      warmed.warm();
      assert.deepEqual(
        await warmed.load(files, { revision: 'r' }),
        await loader.load(files, { revision: 'r' }),
      );
    } finally {
      await warmed.close();
    }
    // A one-shot command that warms the loader and then has nothing to load exits by itself, long
    // before the warm thread's idle stop (10 min here). berth as built: from source, tsx's own
    // loader thread keeps the process until the worker stops.
    assert.ok(builtIsCurrent(), 'dist/ is older than src/: run `npm run build`');
    const module = new URL('../../dist/manifests/load-off-thread.js', import.meta.url).href;
    const child = spawn(
      process.execPath,
      [
        '-e',
        `import(${JSON.stringify(module)}).then((m) => new m.OffThreadManifestLoader(60_000, 600_000).warm());`,
      ],
      { stdio: 'ignore' },
    );
    // A bound on a hang, not a timing: the process exits on its own long before.
    const hang = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
    clearTimeout(hang);
    assert.deepEqual([code, signal], [0, null]);
  });
});
