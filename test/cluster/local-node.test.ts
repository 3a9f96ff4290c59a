import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runBerth, startBerth, targetArgs, type BerthProcess } from '../helpers/berth-cli.js';
import { requireDocker } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { namespaceManifest } from '../helpers/manifests.js';

const ns = `ln${Date.now().toString(36)}`;

describe("the operator's own host as a node, and the cluster identity in the state dir", () => {
  let repo: TestRepo;
  let dir: string;
  let stateDir: string;
  let operator: BerthProcess | undefined;

  before(async () => {
    await requireDocker();
    dir = await mkdtemp(join(tmpdir(), 'berth-local-node-'));
    stateDir = join(dir, 'state');
    repo = await createTestRepo({
      'ns.yaml': namespaceManifest(ns),
    });
  });

  after(async () => {
    await operator?.stop();
    await repo.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('token and node commands before any operator say what to do', async () => {
    const token = await runBerth(['token', '--state-dir', stateDir]);
    assert.equal(token.code, 1);
    assert.match(token.stderr, /no cluster identity .*berth run --cluster-listen/);
    const nodes = await runBerth(['node', 'ls', '--state-dir', stateDir]);
    assert.equal(nodes.code, 1);
    assert.match(nodes.stderr, /berth run --cluster-listen/);
  });

  test('--no-local-node without --cluster-listen is refused: there would be no node', async () => {
    const result = await runBerth([
      'run',
      '--repo',
      repo.dir,
      '--state-dir',
      join(dir, 'other'),
      '--no-local-node',
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /--no-local-node needs --cluster-listen/);
  });

  test('berth run creates the CA and a token on first start and keeps its host as node local', async () => {
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, stateDir, node: `local-${ns}` }),
      ...['--cluster-listen', '127.0.0.1:0'],
    ]);
    const printed = operator.stdout();
    assert.match(
      printed,
      /To add a node to this cluster, run on it:\n\s+berth agent --join https:\/\/127\.0\.0\.1:\d+ --token BERTH-1-[0-9a-f]{64}-[0-9a-f]{48}/,
    );
    // Private keys are readable by the owner only.
    for (const key of ['ca.key', 'operator.key', 'admin.key', 'token.json']) {
      assert.equal((await stat(join(stateDir, 'cluster', key))).mode & 0o077, 0, key);
    }
    const token = await runBerth(['token', '--state-dir', stateDir]);
    assert.equal(token.code, 0, token.stderr);
    assert.ok(
      printed.includes(token.stdout.trim().split('\n').pop()!.trim()),
      'berth token prints the same command',
    );

    const list = await runBerth(['node', 'ls', '--state-dir', stateDir, '--format', 'json']);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      (JSON.parse(list.stdout) as { name: string; kind: string; status: string; availability: string }[]).map(
        (n) => [n.name, n.kind, n.status, n.availability],
      ),
      [[`local-${ns}`, 'local', 'ready', 'active']],
    );
    const drain = await runBerth(['node', 'drain', `local-${ns}`, '--state-dir', stateDir]);
    assert.equal(drain.code, 0, drain.stderr);
    const text = await runBerth(['node', 'ls', '--state-dir', stateDir]);
    assert.match(text.stdout, new RegExp(`local-${ns} \\(local\\)\\s+ready\\s+drain`));
    const unknown = await runBerth(['node', 'drain', 'no-such-node', '--state-dir', stateDir]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no node named no-such-node/);
  });

  test('berth apply refuses a cluster state dir: its joined nodes answer only the operator', async () => {
    assert.ok(operator, 'the operator of the test before');
    await operator.stop();
    const result = await runBerth(['apply', '--repo', repo.dir, '--state-dir', stateDir]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /belongs to a cluster operator/);
  });
});
