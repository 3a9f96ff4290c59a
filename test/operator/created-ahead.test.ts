/**
 * Containers created ahead of their batch (the next batch of a start-first rollout) and left
 * behind by an operator that died before it could start or remove them: the next reconcile
 * recognises them (state `created`, never started) and removes them, on a real engine.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createDockerRuntime } from '../../src/agent/docker-runtime.js';
import { createLocalAgent } from '../../src/agent/local-agent.js';
import type { NodeAgent } from '../../src/api/types.js';
import { BerthError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { createGitRevisionSource } from '../../src/operator/git-revision-source.js';
import { reconcile, type ReconcileDeps } from '../../src/operator/reconcile.js';
import { StateStore } from '../../src/operator/state-store.js';
import { openGitSource } from '../../src/source/git-source.js';
import { removeContainersByLabel, testDocker, uniqueTestId } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';

const ns = uniqueTestId('ahead');
const node = `test-${ns}`;

function manifests(image: string): Record<string, string> {
  return {
    'app.yaml': manifestFile(
      namespaceManifest(ns),
      webService({
        namespace: ns,
        image,
        replicas: 2,
        update: { parallelism: 1, order: 'start-first', monitor: '0s' },
      }),
    ),
  };
}

/** Containers of the namespace by state, as the engine reports them. */
async function states(): Promise<{ name: string; state: string; image: string }[]> {
  const listed = await testDocker().listContainers({
    all: true,
    filters: { label: [`berth.namespace=${ns}`] },
  });
  return listed
    .map((c) => ({
      name: c.Names[0]?.slice(1) ?? '',
      state: c.State,
      image: c.Image,
    }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

describe('containers created ahead and left by an operator that died', () => {
  let dir: string;
  let repo: TestRepo;
  let agent: NodeAgent;
  let deps: (agents: NodeAgent) => ReconcileDeps;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-ahead-'));
    repo = await createTestRepo(manifests('berth-test/web:v1'));
    const log = silentLogger();
    agent = createLocalAgent({
      runtime: createDockerRuntime(),
      nodeName: node,
      stateDir: join(dir, 'agent'),
      log,
    });
    const git = await openGitSource({ repo: repo.dir, cacheDir: join(dir, 'git-cache'), log });
    const source = createGitRevisionSource({ git, repo: repo.dir, branch: 'main', path: '.' });
    const store = new StateStore(join(dir, 'state'));
    deps = (agents) => ({ source, agents: () => new Map([[node, agents]]), store, log, readSecret: null });
  });

  after(async () => {
    await removeContainersByLabel('berth.namespace', ns);
    await agent?.close();
    await repo?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('are removed by the next reconcile; the replicas that serve stay', async () => {
    const v1 = await reconcile(deps(agent));
    assert.equal(v1.outcome, 'succeeded', v1.reason ?? '');

    // The operator "dies" as the second batch starts: the container created ahead for it is
    // neither started nor removed (its removal never reaches the node).
    const ahead = new Set<string>();
    const dying: NodeAgent = {
      ...agent,
      async prepareReplica(request) {
        // Noted first: its start may be asked for before the creation is done.
        ahead.add(request.name);
        await agent.prepareReplica(request);
      },
      ensureReplica: (request) =>
        ahead.has(request.name)
          ? Promise.reject(new BerthError('ERR_AGENT_UNREACHABLE', 'the operator died'))
          : agent.ensureReplica(request),
      removeReplica: (name) => (ahead.has(name) ? Promise.resolve() : agent.removeReplica(name)),
    };
    await repo.commit(manifests('berth-test/web:v2'), 'web v2');
    await reconcile(deps(dying));
    const left = (await states()).filter((c) => c.state === 'created');
    assert.deepEqual(
      left.map((c) => c.name),
      [...ahead],
      'the container created ahead is left behind',
    );

    // The revert comes next; the reconcile that applies it is the next operator's.
    await repo.commit(manifests('berth-test/web:v1'), 'revert web v2');
    const next = await reconcile(deps(agent));
    assert.equal(next.outcome, 'succeeded', next.reason ?? '');
    const now = await states();
    assert.deepEqual(
      now.map((c) => [c.state, c.image]),
      [
        ['running', 'berth-test/web:v1'],
        ['running', 'berth-test/web:v1'],
      ],
      JSON.stringify(now),
    );
    assert.ok(
      now.every((c) => !ahead.has(c.name)),
      JSON.stringify(now),
    );
  });
});
