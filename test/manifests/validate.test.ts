import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { registerValidateCommand } from '../../src/cli/validate.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const corpus = join(repoRoot, 'test', 'fixtures', 'manifests', 'broken');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `berth validate ...args` in this process, through commander, capturing its output. */
async function validate(...args: string[]): Promise<Run> {
  const run: Run = { code: null, stdout: '', stderr: '' };
  const program = new Command('berth').exitOverride();
  registerValidateCommand(program, {
    stdout: (text) => void (run.stdout += text),
    stderr: (text) => void (run.stderr += text),
    setExitCode: (code) => void (run.code = code),
  });
  await program.parseAsync(['node', 'berth', 'validate', ...args]);
  return run;
}

const lines = (text: string): string[] => text.trimEnd().split('\n');

/** Each case of the broken corpus and the exact lines it must print, with paths relative to the case. */
const brokenCases: Record<string, string[]> = {
  'malformed-yaml': [
    'web.yaml:8:3: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
  ],
  'duplicate-key': ['web.yaml:8:3: duplicate key "replicas" (keys must be unique in a mapping)'],
  'alias-bomb': [
    'lol.yaml:6:10: YAML aliases expand too much (more than 100 alias expansions); refused as a possible "billion laughs" attack',
  ],
  'wrong-type': [
    'web.yaml:7:13: spec.replicas: must be integer, got "three"',
    'web.yaml:8:9: spec.init: must be boolean, got "yes"',
  ],
  'unknown-field': [
    'web.yaml:7:3: spec: unknown field "replica" (did you mean "replicas"?)',
    'web.yaml:10:5: spec.healthcheck: unknown field "intervall" (did you mean "interval"?)',
  ],
  'missing-required': [
    'web.yaml:3:1: metadata: missing required field "name"',
    'web.yaml:5:1: spec: missing required field "image"',
    'web.yaml:8:7: spec.ports[0]: missing required field "target"',
  ],
  'bad-duration': [
    'web.yaml:7:20: spec.stopGracePeriod: must be a duration such as "500ms", "10s", "1m30s" or "2h", got 10',
    'web.yaml:10:15: spec.healthcheck.interval: must be a duration such as "500ms", "10s", "1m30s" or "2h", got "5 seconds"',
  ],
  'bad-memory': [
    'web.yaml:8:34: spec.resources.limits.memory: must be a memory size such as "64Mi", "1Gi", "512M" or a number of bytes, got "64mb"',
    'web.yaml:9:29: spec.resources.reservations.memory: must be a memory size such as "64Mi", "1Gi", "512M" or a number of bytes, got -1',
  ],
  'bad-constraint': [
    'web.yaml:10:9: spec.placement.constraints[1]: must be a constraint such as "node.labels.zone == a", "node.name != node1" or "node.hostname == host1" (== or != only), got "node.labels.zone ~= b"',
    'web.yaml:11:9: spec.placement.constraints[2]: must be a constraint such as "node.labels.zone == a", "node.name != node1" or "node.hostname == host1" (== or != only), got "engine.labels.os == linux"',
    'web.yaml:12:3: spec.healthcheck: must have only one of "http", "tcp" or "exec", got "http" and "tcp"',
  ],
  'dangling-config': [
    'web.yaml:8:17: spec.configs[0].source: Config "web-contents" not found in namespace "default" (did you mean "web-content"?)',
    'web.yaml:10:15: spec.envFrom[0].config: Config "settings" not found in namespace "default"',
  ],
  'dangling-secret-key': [
    'app.yaml:8:26: spec.secrets[0].key: Secret "db" has no key "passwd" (did you mean "password"?)',
  ],
  'duplicate-name': [
    'b.yaml:18:9: metadata.name: duplicate Service "web" in namespace "default" (first defined at a.yaml:4:9)',
  ],
  'mount-traversal': [
    'web.yaml:8:55: spec.configs[0].target: must not contain ".." segments, got "/www/../etc/passwd"',
  ],
  'relative-target': [
    'web.yaml:7:15: spec.workingDir: must be an absolute path (starting with "/"), got "app"',
    'web.yaml:11:15: spec.configs[0].target: must be an absolute path (starting with "/"), got "www/index.html"',
    'web.yaml:14:15: spec.configs[1].target: must be a normalised path: no "//", no "." segments, no trailing "/", got "/www//index.html"',
  ],
  'duplicate-target': [
    'web.yaml:9:48: spec.configs[1].target: target "/www/index.html" is already mounted by spec.configs[0]',
  ],
  'duplicate-published-port': [
    'web.yaml:8:34: spec.ports[0].published: port 80/tcp is already published by Service default/api (api.yaml:8:34); published ports are unique across the cluster',
    'web.yaml:9:17: spec.ports[1].target: container port 8080/tcp is already listed at spec.ports[0]',
  ],
  'replicas-and-global': [
    'agent.yaml:8:13: spec.replicas: cannot be set with mode: global (a global service runs one replica on every eligible node)',
  ],
  'plaintext-secret': [
    'db.yaml:6:13: data.password: must be encrypted: an age payload in ASCII armor (-----BEGIN AGE ENCRYPTED FILE-----), the output of `age -r <recipient> -a`; plaintext secrets are refused',
  ],
  'unknown-kind': [
    'job.yaml:2:7: kind: unknown kind "Deployment" (expected one of Service, Job, CronJob, Config, Secret, Namespace, Notifier)',
    'job.yaml:7:7: kind: unknown kind "Servce" (did you mean "Service"?)',
  ],
  'wrong-api-version': ['web.yaml:1:13: apiVersion: must be "berth/v1", got "apps/v1"'],
  // Valid manifests that the operator's preflight refuses (the mesh serves TCP only): refused here
  // too, at the field, so what validate accepts plan and apply accept.
  'published-udp-port': [
    'dns.yaml:8:34: spec.ports[1].published: 53/udp cannot be published: the routing mesh serves TCP only; remove `published` — each replica still publishes its target port on an ephemeral port of its node',
    'dns.yaml:9:51: spec.ports[2].appProtocol: http needs protocol tcp (HTTP/1.1 runs over TCP)',
  ],
  'missing-namespace': [
    'web.yaml:5:14: metadata.namespace: namespace "shopp" does not exist; add a Namespace manifest named "shopp" (did you mean "shop"?)',
  ],
  'several-problems': [
    'config/broken.yml:4:1: invalid YAML: Flow map in block collection must be sufficiently indented and end with a }',
    'config/site.yaml:6:9: data.port: must be a string (quote numbers and booleans), got 8080',
    'services/web.yaml:8:28: spec.configs[0].key: Config "site" has no key "index.htm" (did you mean "index.html"?)',
    'services/worker.yaml:4:9: metadata.name: must be a DNS label (RFC 1123): lowercase letters, digits and "-", starting and ending with a letter or digit, got "Worker"',
    'services/worker.yaml:7:13: spec.replicas: must be >= 0, got -1',
    'services/worker.yaml:8:20: spec.stopGracePeriod: must be a duration such as "500ms", "10s", "1m30s" or "2h", got "soon"',
  ],
};

void describe('berth validate', () => {
  void test('the sample repository is valid', async () => {
    const run = await validate(join(repoRoot, 'sample-repo'));
    assert.equal(run.code, 0, run.stdout);
    assert.equal(
      run.stdout,
      `${join(repoRoot, 'sample-repo')}: 5 manifests valid (2 services, 1 config, 1 secret, 1 namespace)\n`,
    );
  });

  for (const [name, expected] of Object.entries(brokenCases)) {
    void test(`broken/${name}`, async () => {
      const dir = relative(process.cwd(), join(corpus, name));
      const run = await validate(dir);
      assert.equal(run.code, 1);
      assert.deepEqual(lines(run.stdout), [
        ...expected.map((line) => `${dir}/${line}`),
        `${expected.length} problem${expected.length === 1 ? '' : 's'}`,
      ]);
      assert.equal(run.stderr, '');
    });
  }

  void test('every case of the broken corpus is asserted', async () => {
    const { readdir } = await import('node:fs/promises');
    assert.deepEqual((await readdir(corpus)).sort(), Object.keys(brokenCases).sort());
  });

  void describe('files made on the fly', () => {
    let scratch = '';
    after(async () => {
      if (scratch !== '') await rm(scratch, { recursive: true, force: true });
    });
    const scratchDir = async (): Promise<string> => {
      scratch ||= await mkdtemp(join(tmpdir(), 'berth-validate-'));
      return scratch;
    };

    void test('an oversized file (over 1 MiB) is refused', async () => {
      const dir = await scratchDir();
      const big = join(dir, 'big.yaml');
      const text = `apiVersion: berth/v1\nkind: Config\nmetadata: { name: big }\ndata:\n  a: "${'x'.repeat(1024 * 1024)}"\n`;
      await writeFile(big, text);
      const run = await validate(big);
      assert.equal(run.code, 1);
      assert.deepEqual(lines(run.stdout), [
        `${big}:1:1: ${Buffer.byteLength(text)} bytes, over the 1 MiB limit of a manifest file`,
        '1 problem',
      ]);
    });

    void test('a binary file is refused', async () => {
      const dir = await scratchDir();
      const binary = join(dir, 'image.yaml');
      await writeFile(binary, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00]));
      const run = await validate(binary);
      assert.equal(run.code, 1);
      assert.deepEqual(lines(run.stdout), [
        `${binary}:1:1: not a text file (contains NUL bytes); manifests are UTF-8 YAML`,
        '1 problem',
      ]);
    });
  });

  void test('a single file is validated on its own', async () => {
    const run = await validate(join(repoRoot, 'sample-repo', 'web.yaml'));
    assert.equal(run.code, 0);
    assert.equal(
      run.stdout,
      `${join(repoRoot, 'sample-repo', 'web.yaml')}: 2 manifests valid (1 service, 1 config)\n`,
    );
  });

  void test('a path that does not exist, or is not a manifest, is a problem', async () => {
    const missing = await validate(join(corpus, 'no-such-dir'));
    assert.equal(missing.code, 1);
    assert.deepEqual(lines(missing.stdout), [
      `${join(corpus, 'no-such-dir')}: no such file or directory`,
      '1 problem',
    ]);
    const readme = await validate(join(corpus, 'several-problems', 'README.md'));
    assert.equal(readme.code, 1);
    assert.match(
      readme.stdout,
      /README\.md: not a manifest file \(manifests end in \.yaml or \.yml\)\n1 problem\n$/,
    );
  });

  void test('--format json', async () => {
    const valid = await validate(join(repoRoot, 'sample-repo'), '--format', 'json');
    assert.equal(valid.code, 0);
    assert.deepEqual(JSON.parse(valid.stdout), {
      valid: true,
      problems: [],
      counts: { manifests: 5, services: 2, configs: 1, secrets: 1, namespaces: 1 },
    });
    const dir = join(corpus, 'dangling-secret-key');
    const invalid = await validate(dir, '--format', 'json');
    assert.equal(invalid.code, 1);
    assert.deepEqual(JSON.parse(invalid.stdout), {
      valid: false,
      problems: [
        {
          file: join(dir, 'app.yaml'),
          line: 8,
          col: 26,
          message: 'spec.secrets[0].key: Secret "db" has no key "passwd" (did you mean "password"?)',
        },
      ],
      counts: null,
    });
  });
});

void describe('berth validate as a process', () => {
  const entry = join(repoRoot, 'test', 'manifests', 'berth-validate-entry.ts');
  const run = async (...args: string[]): Promise<Run> => {
    try {
      const { stdout, stderr } = await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', entry, 'validate', ...args],
        {
          cwd: repoRoot,
        },
      );
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };

  void test('exits 0 with the summary for the sample repository (PATH as given)', async () => {
    const result = await run('sample-repo');
    assert.deepEqual(result, {
      code: 0,
      stdout: 'sample-repo: 5 manifests valid (2 services, 1 config, 1 secret, 1 namespace)\n',
      stderr: '',
    });
  });

  void test("exits 1 for manifests that only the operator's preflight refused before", async () => {
    const result = await run('test/fixtures/manifests/broken/published-udp-port');
    assert.equal(result.code, 1, result.stdout);
    assert.match(
      result.stdout,
      /^test\/fixtures\/manifests\/broken\/published-udp-port\/dns\.yaml:8:34: spec\.ports\[1\]\.published: 53\/udp cannot be published/,
    );
    assert.match(result.stdout, /\n2 problems\n$/);
  });

  void test('exits 1 with the problems on stdout and nothing on stderr', async () => {
    const result = await run('test/fixtures/manifests/broken/wrong-api-version');
    assert.deepEqual(result, {
      code: 1,
      stdout:
        'test/fixtures/manifests/broken/wrong-api-version/web.yaml:1:13: apiVersion: must be "berth/v1", got "apps/v1"\n1 problem\n',
      stderr: '',
    });
  });
});
