/**
 * A stateful compose stack end to end on a real engine: web-postgres of the corpus, with the
 * offline stand-in for its database given as an override file (compose.offline.yaml), converted
 * by `berth import compose`, validated, and its db deployed with `berth apply`. The db writes
 * into its named volume; what it wrote is still there after an update, after a failed update
 * that is rolled back, and after a new operator and agent (every `berth apply` is a process of
 * its own with its own embedded agent), on the one node.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isTmpfsMountPoint } from '../../src/agent/file-store.js';
import { runBerth } from '../helpers/berth-cli.js';
import { dockerExec, requireTestImages, testDocker, uniqueTestId } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { removeNamespace } from '../operator/cluster-probe.js';

const stack = fileURLToPath(new URL('../fixtures/compose/web-postgres/', import.meta.url));
const ageKeyFile = fileURLToPath(new URL('../fixtures/age/key.txt', import.meta.url));
const RECIPIENT = 'age1rkhnr78uupwcjsrfy4ewydj09cpy3tzlrswj2qgr8nvkt3wna5fq4qmctl';
/** The backend is converted and validated with the rest; only the stateful db is deployed here. */
const DEPLOYED = ['namespace.yaml', 'db.yaml', 'secret-db-password.yaml'];

describe('a compose stack with a database keeps its data (real engine)', () => {
  const ns = uniqueTestId('cvol');
  let work: string;
  let repo: TestRepo;
  let imports = 0;
  /** The first import's Secret: age encrypts anew each time, and the same secret stays one text. */
  let secret: string | null = null;

  /** Converts the stack with these variables; the deployed manifests, by repository path. */
  const convert = async (env: NodeJS.ProcessEnv): Promise<Record<string, string>> => {
    const out = join(work, `import-${++imports}`);
    const imported = await runBerth(
      [
        'import',
        'compose',
        'compose.yaml',
        'compose.offline.yaml',
        '--namespace',
        ns,
        '-r',
        RECIPIENT,
        '-o',
        out,
      ],
      { cwd: stack, env },
    );
    assert.equal(imported.code, 0, imported.stderr);
    const validated = await runBerth(['validate', out]);
    assert.equal(validated.code, 0, validated.stdout + validated.stderr);
    assert.ok((await readdir(out)).includes('backend.yaml'));
    const files: Record<string, string> = {};
    for (const file of DEPLOYED) files[`deploy/${file}`] = await readFile(join(out, file), 'utf8');
    secret ??= files['deploy/secret-db-password.yaml']!;
    files['deploy/secret-db-password.yaml'] = secret;
    return files;
  };
  const apply = () =>
    runBerth(
      [
        'apply',
        ...['--repo', repo.dir, '--path', 'deploy'],
        ...['--state-dir', join(work, 'state'), '--node', `test-${ns}`],
      ],
      { env: { BERTH_AGE_KEY_FILE: ageKeyFile, BERTH_AGE_KEY: '' } },
    );
  const db = async (): Promise<{ id: string; name: string }> => {
    const [container] = await testDocker().listContainers({
      filters: { label: [`berth.namespace=${ns}`, 'berth.service=db'] },
    });
    assert.ok(container, 'a running db replica');
    return { id: container.Id, name: (container.Names[0] ?? '').replace(/^\//, '') };
  };
  const written = async (): Promise<string[]> => {
    const read = await dockerExec((await db()).name, ['cat', '/var/lib/postgresql/data/log']);
    assert.equal(read.exitCode, 0, read.output);
    return read.output.trim().split('\n');
  };

  before(async () => {
    await requireTestImages();
    work = await mkdtemp(join(tmpdir(), 'berth-compose-volumes-'));
    repo = await createTestRepo(await convert({ DB_VERSION: 'v1' }));
  });

  after(async () => {
    await removeNamespace(ns);
    const { Volumes } = await testDocker().listVolumes({ filters: { label: [`berth.namespace=${ns}`] } });
    await Promise.all(
      (Volumes ?? []).map((v) =>
        testDocker()
          .getVolume(v.Name)
          .remove()
          .catch(() => undefined),
      ),
    );
    // The embedded agent keeps secret files on a tmpfs of its own under the state dir.
    const secrets = join(work, 'state', 'agent', 'secrets');
    if (await isTmpfsMountPoint(secrets).catch(() => false)) await promisify(execFile)('umount', [secrets]);
    await repo?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  test('the converted db runs with its secret and writes into its named volume', async () => {
    const applied = await apply();
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.deepEqual(await written(), ['v1']);
    const mounts = (
      await testDocker()
        .getContainer((await db()).id)
        .inspect()
    ).Mounts;
    assert.deepEqual(
      mounts.filter((m) => m.Type === 'volume').map((m) => [m.Name, m.Destination]),
      [[`berth.${ns}.db.db-data.1`, '/var/lib/postgresql/data']],
    );
  });

  test('an update keeps the data', async () => {
    await repo.commit(await convert({ DB_VERSION: 'v2' }), 'db v2');
    const applied = await apply();
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.deepEqual(await written(), ['v1', 'v2']);
  });

  test('a failed update is rolled back onto the same volume, data intact', async () => {
    await repo.commit(await convert({ DB_VERSION: 'v3', DB_FAIL: '1' }), 'db v3 crashes');
    const applied = await apply();
    assert.notEqual(applied.code, 0, 'the update fails');
    const log = await written();
    assert.deepEqual(log.slice(0, 3), ['v1', 'v2', 'v3'], log.join(','));
    assert.equal(log.at(-1), 'v2', 'the rollback started v2 again on the same volume');
  });

  test('a new operator and agent find the data and change nothing', async () => {
    const before = await db();
    await repo.commit(await convert({ DB_VERSION: 'v2' }), 'back to v2');
    const applied = await apply();
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.equal((await db()).id, before.id);
    assert.equal((await written()).at(-1), 'v2');
  });
});
