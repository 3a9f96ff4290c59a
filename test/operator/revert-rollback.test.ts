import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runBerth, targetArgs } from '../helpers/berth-cli.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { configManifest, manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import { bodies, removeNamespace, replicasOf } from './cluster-probe.js';

const ns = `revert${Date.now().toString(36)}`;
const node = `test-${ns}`;

function manifests(image: string): Record<string, string> {
  return {
    'deploy/all.yaml': manifestFile(
      namespaceManifest(ns),
      configManifest({ name: 'notes', namespace: ns, data: { 'image.txt': `built from ${image}\n` } }),
      webService({
        namespace: ns,
        image,
        replicas: 2,
        update: { parallelism: 2, monitor: '0s' },
        configs: [{ source: 'notes', key: 'image.txt', target: '/etc/notes/image.txt' }],
      }),
    ),
  };
}

describe('rollback by reverting a commit, on a real Docker engine', () => {
  let repo: TestRepo;
  let stateDir: string;
  let v1Hash = '';
  const common = () => targetArgs({ repo: repo.dir, path: 'deploy', stateDir });
  const apply = () => runBerth(['apply', ...common(), '--node', node]);
  const servingOnly = async (body: string, revision: string) => {
    const replicas = await replicasOf(ns, 'web');
    assert.equal(replicas.length, 2, JSON.stringify(replicas));
    assert.deepEqual(
      replicas.map((r) => r.revision),
      [revision, revision],
    );
    assert.deepEqual(await bodies(ns, 'web'), [body, body]);
    return replicas;
  };

  before(async () => {
    repo = await createTestRepo(manifests('berth-test/web:v1'));
    stateDir = await mkdtemp(join(tmpdir(), 'berth-revert-'));
  });
  after(async () => {
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('v1 is deployed', async () => {
    const result = await apply();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const replicas = await servingOnly('v1', await repo.head());
    v1Hash = replicas[0]!.specHash;
  });

  test('the markdown plan of the next commit against the live cluster names the changed field', async () => {
    await repo.commit(manifests('berth-test/web:v2'), 'web v2');
    const plan = await runBerth(['plan', ...common(), '--node', node, '--format', 'markdown']);
    assert.equal(plan.code, 2, plan.stdout + plan.stderr);
    assert.match(plan.stdout, /against the live cluster/);
    assert.match(plan.stdout, /\| ~ \| `[a-z0-9]+\/web` \| update \| 0 → 2 \| 0 \| 2 \| 0 \|/);
    assert.match(plan.stdout, /\| `image` \| `berth-test\/web:v1` \| `berth-test\/web:v2` \|/);
    // The Config is compared with the revision the replicas run, read from git.
    assert.match(plan.stdout, new RegExp(`#### ~ Config ${ns}/notes: update \\(rolls ${ns}/web\\)`));
    assert.match(
      plan.stdout,
      /```diff\n--- a\/[a-z0-9]+\/notes\/image\.txt\n[^`]*\n-built from berth-test\/web:v1\n\+built from berth-test\/web:v2\n```/,
    );
    const result = await apply();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    await servingOnly('v2', await repo.head());
  });

  test('`git revert HEAD` of the deploy commit, applied, returns every replica to v1', async () => {
    await repo.git('revert', '--no-edit', 'HEAD');
    const revert = await repo.head();
    const result = await apply();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const replicas = await servingOnly('v1', revert);
    assert.deepEqual(
      replicas.map((r) => r.specHash),
      [v1Hash, v1Hash],
    );
  });

  test('`berth rollback` makes the revert commit itself; applied, every replica is back on v1', async () => {
    const lastGood = await repo.head();
    await repo.commit(manifests('berth-test/web:v2'), 'web v2 again');
    assert.equal((await apply()).code, 0);
    await servingOnly('v2', await repo.head());

    const rollback = await runBerth(['rollback', ...common()]);
    assert.equal(rollback.code, 0, rollback.stdout + rollback.stderr);
    const created = await repo.head();
    assert.equal(
      await repo.git('rev-parse', `${created}^{tree}`),
      await repo.git('rev-parse', `${lastGood}^{tree}`),
    );
    const result = await apply();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const replicas = await servingOnly('v1', created);
    assert.deepEqual(
      replicas.map((r) => r.specHash),
      [v1Hash, v1Hash],
    );
  });

  test('history records each deploy with its commit, author and message', async () => {
    const result = await runBerth(['history', `${ns}/web`, '--state-dir', stateDir, '--format', 'json']);
    assert.equal(result.code, 0, result.stderr);
    const entries = JSON.parse(result.stdout) as { message?: string; author?: string; outcome: string }[];
    assert.deepEqual(
      entries.map((e) => [e.message?.replace(/"[^"]*"/, '"…"'), e.outcome]),
      [
        ['initial commit', 'succeeded'],
        ['web v2', 'succeeded'],
        ['Revert "…"', 'succeeded'],
        ['web v2 again', 'succeeded'],
        [(entries[4]?.message ?? '').replace(/"[^"]*"/, '"…"'), 'succeeded'],
      ],
    );
    assert.match(entries[4]!.message!, /^Revert to [0-9a-f]{12} \(berth rollback\)$/);
    assert.ok(entries.every((e) => e.author === 'Berth Test <test@berth.invalid>'));
  });
});
