import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BerthError } from '../core/errors.js';
import { loadManifests, readManifestFilesFromDir } from './load.js';
import { schemaValidatorFor } from './schema.js';
import type { LoadResult, ManifestProblem } from './types.js';

const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
const file = (path: string, text: string): { path: string; content: Uint8Array } => ({
  path,
  content: encode(text),
});

function problemsOf(result: LoadResult): string[] {
  assert.equal(result.ok, false, 'expected problems');
  return (result as { problems: ManifestProblem[] }).problems.map(
    (p) => `${p.file}:${p.line}:${p.col}: ${p.message}`,
  );
}

const web = `apiVersion: berth/v1
kind: Service
metadata: { name: web }
spec:
  image: busybox:1.36
  configs: [{ source: site, key: index.html, target: /www/index.html }]
`;
const site = `apiVersion: berth/v1
kind: Config
metadata: { name: site }
data: { index.html: hello }
`;

void describe('loadManifests', () => {
  void test('reads .yaml and .yml, ignores other and hidden files, empty and comment-only documents', () => {
    const result = loadManifests(
      [
        file('b/site.yml', `# just a comment\n---\n${site}---\n`),
        file('a/web.yaml', web),
        file('README.md', 'apiVersion: nope'),
        file('.gitlab-ci.yml', 'stages: [test]'),
        file('.github/workflows/ci.yaml', 'on: push'),
        file('empty.yaml', ''),
      ],
      { revision: 'abc123' },
    );
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.desired.revision, 'abc123');
    assert.deepEqual(
      result.desired.services.map((s) => s.name),
      ['web'],
    );
    assert.deepEqual(result.desired.configs, [
      { kind: 'Config', name: 'site', namespace: 'default', data: { 'index.html': 'hello' } },
    ]);
  });

  void test('refuses oversized, binary and non-UTF-8 files with one problem each, and goes on with the rest', () => {
    const result = loadManifests(
      [
        file('big.yaml', `${site}# ${'x'.repeat(200)}\n`),
        { path: 'binary.yaml', content: new Uint8Array([0x61, 0x3a, 0x00, 0x62]) },
        { path: 'latin1.yaml', content: new Uint8Array([0x61, 0x3a, 0x20, 0xe9, 0x0a]) },
        file('web.yaml', web),
      ],
      { revision: 'r', maxFileBytes: 200 },
    );
    assert.deepEqual(problemsOf(result), [
      `big.yaml:1:1: ${Buffer.byteLength(`${site}# ${'x'.repeat(200)}\n`)} bytes, over the 200 bytes limit of a manifest file`,
      'binary.yaml:1:1: not a text file (contains NUL bytes); manifests are UTF-8 YAML',
      'latin1.yaml:1:1: not valid UTF-8; manifests are UTF-8 YAML',
      'web.yaml:6:23: spec.configs[0].source: Config "site" not found in namespace "default"',
    ]);
  });

  void test('reports every problem of every file, sorted by file, line and column', () => {
    const result = loadManifests(
      [
        file('z.yaml', `apiVersion: berth/v1\nkind: Namespace\nmetadata: { name: Shop, extra: 1 }\n`),
        file(
          'a.yaml',
          `apiVersion: berth/v1\nkind: Config\nmetadata: { name: c }\ndata: { k: 1 }\n---\napiVersion: v1\nkind: Pod\n`,
        ),
      ],
      { revision: 'r' },
    );
    assert.deepEqual(problemsOf(result), [
      'a.yaml:4:12: data.k: must be a string (quote numbers and booleans), got 1',
      'a.yaml:6:13: apiVersion: must be "berth/v1", got "v1"',
      'z.yaml:3:19: metadata.name: must be a DNS label (RFC 1123): lowercase letters, digits and "-", starting and ending with a letter or digit, got "Shop"',
      'z.yaml:3:25: metadata: unknown field "extra"',
    ]);
  });

  void test('a reference to a manifest with problems of its own is not also reported as dangling', () => {
    const brokenSite = `apiVersion: berth/v1\nkind: Config\nmetadata: { name: site, colour: red }\ndata: { index.html: hello }\n`;
    assert.deepEqual(
      problemsOf(loadManifests([file('web.yaml', web), file('site.yaml', brokenSite)], { revision: 'r' })),
      ['site.yaml:3:25: metadata: unknown field "colour"'],
    );
  });

  void test('never quotes a secret value back, whatever is wrong with it', () => {
    const secret = `apiVersion: berth/v1\nkind: Secret\nmetadata: { name: db }\ndata:\n  password: s3cret-plain\n  pin: 123456\n`;
    const flat = `apiVersion: berth/v1\nkind: Secret\nmetadata: { name: flat }\ndata: s3cret-as-a-string\n`;
    const problems = problemsOf(
      loadManifests([file('db.yaml', secret), file('flat.yaml', flat)], { revision: 'r' }),
    );
    assert.equal(problems.length, 3);
    assert.equal(problems[2], 'flat.yaml:4:7: data: must be object');
    for (const problem of problems) {
      assert.ok(!problem.includes('s3cret') && !problem.includes('123456'), problem);
    }
    assert.match(problems[0]!, /must be encrypted: an age payload in ASCII armor/);
    assert.match(problems[1]!, /must be encrypted: an age payload in ASCII armor/);
  });

  void test('a document that is not a mapping, or lacks apiVersion and kind, says what a manifest is', () => {
    assert.deepEqual(
      problemsOf(
        loadManifests([file('list.yaml', '- a\n- b\n---\nmetadata: { name: x }\n')], { revision: 'r' }),
      ),
      [
        'list.yaml:1:1: a manifest must be a mapping with apiVersion, kind and metadata, got a list',
        'list.yaml:4:1: missing required field "apiVersion" (expected "berth/v1")',
        'list.yaml:4:1: missing required field "kind" (one of Service, Job, CronJob, Config, Secret, Namespace, Notifier)',
      ],
    );
  });

  void test('an alias bomb is refused, not expanded', () => {
    let bomb =
      'apiVersion: berth/v1\nkind: Config\nmetadata: { name: lol }\ndata:\n  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
    let previous = 'a';
    for (const name of ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm']) {
      bomb += `  ${name}: &${name} [${Array(9).fill(`*${previous}`).join(',')}]\n`;
      previous = name;
    }
    const problems = problemsOf(loadManifests([file('lol.yaml', bomb)], { revision: 'r' }));
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^lol\.yaml:6:\d+: YAML aliases expand too much/);
  });

  void test('a few ordinary aliases are fine', () => {
    const config = `apiVersion: berth/v1\nkind: Config\nmetadata: { name: c }\ndata:\n  a: &text hello\n  b: *text\n`;
    const result = loadManifests([file('c.yaml', config)], { revision: 'r' });
    assert.ok(result.ok, JSON.stringify(result));
    assert.deepEqual(result.desired.configs[0]!.data, { a: 'hello', b: 'hello' });
  });
});

void test('berth.schema.json picks the schema by kind', () => {
  const validate = schemaValidatorFor('berth.schema.json');
  assert.ok(validate({ apiVersion: 'berth/v1', kind: 'Namespace', metadata: { name: 'shop' } }));
  assert.ok(validate({ apiVersion: 'berth/v1', kind: 'Config', metadata: { name: 'c' }, data: { a: 'b' } }));
  assert.ok(
    !validate({ apiVersion: 'berth/v1', kind: 'Namespace', metadata: { name: 'shop', namespace: 'x' } }),
  );
  assert.ok(!validate({ apiVersion: 'berth/v1', kind: 'Service', metadata: { name: 'web' }, spec: {} }));
  assert.ok(!validate({ apiVersion: 'berth/v1', kind: 'Job', metadata: { name: 'web' } }));
  assert.ok(!validate({ apiVersion: 'v1', kind: 'Config', metadata: { name: 'c' }, data: {} }));
});

void describe('readManifestFilesFromDir', () => {
  const directories: string[] = [];
  after(async () => {
    for (const directory of directories) await rm(directory, { recursive: true, force: true });
  });
  const scratch = async (): Promise<{ root: string; outside: string }> => {
    const base = await mkdtemp(join(tmpdir(), 'berth-manifests-'));
    directories.push(base);
    const root = join(base, 'repo');
    const outside = join(base, 'outside');
    await mkdir(join(root, 'apps', 'web'), { recursive: true });
    await mkdir(outside);
    return { root, outside };
  };

  void test('walks the tree: yaml files only, sorted, skipping .git, node_modules and hidden entries; follows links inside', async () => {
    const { root } = await scratch();
    await writeFile(join(root, 'apps', 'web', 'web.yaml'), web);
    await writeFile(join(root, 'site.yml'), site);
    await writeFile(join(root, 'notes.txt'), 'hello');
    await writeFile(join(root, '.hidden.yaml'), 'x: 1');
    for (const skipped of ['.git', 'node_modules', '.github']) {
      await mkdir(join(root, skipped));
      await writeFile(join(root, skipped, 'x.yaml'), 'x: 1');
    }
    await mkdir(join(root, '.templates'));
    await writeFile(join(root, '.templates', 'extra.yaml'), site);
    await symlink(join(root, '.templates'), join(root, 'templates'));
    await symlink(join(root, 'site.yml'), join(root, 'apps', 'site-link.yaml'));
    // A directory reached twice is read once (its manifests would otherwise clash with themselves).
    await symlink(join(root, 'apps'), join(root, 'more-apps'));
    await symlink(root, join(root, 'apps', 'loop'));
    const files = await readManifestFilesFromDir(root);
    assert.deepEqual(
      files.map((f) => f.path),
      ['apps/site-link.yaml', 'apps/web/web.yaml', 'site.yml', 'templates/extra.yaml'],
    );
    assert.equal(new TextDecoder().decode(files[0]!.content), site);
    assert.equal(new TextDecoder().decode(files[3]!.content), site);
  });

  void test('refuses symbolic links that lead outside the root', async () => {
    const { root, outside } = await scratch();
    await writeFile(join(outside, 'secret.yaml'), site);
    await writeFile(join(root, 'site.yml'), site);
    await symlink(join(outside, 'secret.yaml'), join(root, 'stolen.yaml'));
    await symlink(outside, join(root, 'elsewhere'));
    await symlink(join(outside, 'missing.yaml'), join(root, 'dangling.yaml'));
    const problems: ManifestProblem[] = [];
    const files = await readManifestFilesFromDir(root, { onProblem: (problem) => problems.push(problem) });
    assert.deepEqual(
      files.map((f) => f.path),
      ['site.yml'],
    );
    assert.deepEqual(
      problems.map((p) => `${p.file}: ${p.message}`),
      [
        'dangling.yaml: symbolic link to a file that does not exist',
        'elsewhere: symbolic link leads outside the manifest directory; refused',
        'stolen.yaml: symbolic link leads outside the manifest directory; refused',
      ],
    );
    await assert.rejects(readManifestFilesFromDir(root), (error: unknown) => {
      assert.ok(error instanceof BerthError);
      assert.equal(error.code, 'ERR_MANIFEST_INVALID');
      assert.match(error.message, /stolen\.yaml: symbolic link leads outside/);
      return true;
    });
  });

  void test('reads no more of an oversized file than it takes to refuse it', async () => {
    const { root } = await scratch();
    await writeFile(join(root, 'big.yaml'), `${site}#${'x'.repeat(10_000)}\n`);
    const files = await readManifestFilesFromDir(root, { maxFileBytes: 100 });
    assert.equal(files[0]!.content.byteLength, 0);
    assert.deepEqual(problemsOf(loadManifests(files, { revision: 'r', maxFileBytes: 100 })), [
      `big.yaml:1:1: ${Buffer.byteLength(`${site}#${'x'.repeat(10_000)}\n`)} bytes, over the 100 bytes limit of a manifest file`,
    ]);
  });
});
