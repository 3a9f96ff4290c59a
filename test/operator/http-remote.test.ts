import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runBerth, targetArgs } from '../helpers/berth-cli.js';
import { startGitHttpServer, type GitHttpServer } from '../helpers/git-http-server.js';
import { createBareRemote, createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import { bodies, removeNamespace } from './cluster-probe.js';

const ns = `http${Date.now().toString(36)}`;
const node = `test-${ns}`;

describe('deploying from a repository served over http', () => {
  let repo: TestRepo;
  let dir: string;
  let server: GitHttpServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-http-'));
    repo = await createTestRepo({
      'deploy/app.yaml': manifestFile(
        namespaceManifest(ns),
        webService({ namespace: ns, replicas: 2, update: { parallelism: 2, monitor: '500ms' } }),
      ),
    });
    await createBareRemote(repo, dir, 'deploy.git');
    server = await startGitHttpServer({ root: dir });
  });

  after(async () => {
    await server.close();
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('plan and apply read the branch from the server; an unchanged remote costs one request', async () => {
    const args = targetArgs({
      repo: `${server.url}/deploy.git`,
      path: 'deploy',
      stateDir: join(dir, 'state'),
      node,
    });
    const plan = await runBerth(['plan', ...args]);
    assert.equal(plan.code, 2, plan.stdout + plan.stderr);
    assert.match(plan.stdout, new RegExp(`\\+ ${ns}/web: create`));
    const applied = await runBerth(['apply', ...args]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.deepEqual(await bodies(ns, 'web'), ['v1', 'v1']);

    const before = server.requests.length;
    const again = await runBerth(['plan', ...args]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.deepEqual(
      server.requests.slice(before).map((r) => `${r.method} ${r.url.split('?')[0]}`),
      ['GET /deploy.git/info/refs'],
    );
  });
});
