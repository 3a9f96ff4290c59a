import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runBerth, startBerth, type BerthProcess } from '../helpers/berth-cli.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import { bodies, removeNamespace, replicasOf } from './cluster-probe.js';

const ns = `remote${Date.now().toString(36)}`;
const node = `agent-${ns}`;
const token = `token-${Math.random().toString(36).slice(2)}`;

describe('the operator driving an agent over HTTP with a token', () => {
  let repo: TestRepo;
  let dir: string;
  let agent: BerthProcess | undefined;
  let url: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-remote-'));
    repo = await createTestRepo({
      'app.yaml': manifestFile(
        namespaceManifest(ns),
        webService({ namespace: ns, replicas: 2, update: { parallelism: 2, monitor: '500ms' } }),
      ),
    });
    agent = await startBerth(
      'agent',
      ['--listen', '127.0.0.1:0', '--node', node, '--state-dir', join(dir, 'agent')],
      { env: { BERTH_AGENT_TOKEN: token } },
    );
    assert.ok(agent.url, agent.output());
    url = agent.url;
  });

  after(async () => {
    await agent?.stop();
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('apply through the agent runs the replicas on its node', async () => {
    const result = await runBerth(
      ['apply', '--repo', repo.dir, '--state-dir', join(dir, 'state'), '--agent', url],
      {
        env: { BERTH_AGENT_TOKEN: token },
      },
    );
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, new RegExp(`on ${node}`));
    assert.deepEqual(await bodies(ns, 'web'), ['v1', 'v1']);
  });

  test('a wrong token is refused and changes nothing', async () => {
    const before = await replicasOf(ns, 'web');
    const result = await runBerth(
      [
        'apply',
        '--repo',
        repo.dir,
        '--state-dir',
        join(dir, 'state'),
        '--agent',
        url,
        '--agent-token',
        'forged',
      ],
      { env: { BERTH_AGENT_TOKEN: '' } },
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^berth: .*(unauthori[sz]ed|token)/im);
    assert.deepEqual(await replicasOf(ns, 'web'), before);
  });
});
