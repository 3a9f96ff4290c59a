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

describe('the operator driving an agent over HTTPS with the token it printed', () => {
  let repo: TestRepo;
  let dir: string;
  let agent: BerthProcess | undefined;
  let url: string;
  let token: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-remote-'));
    repo = await createTestRepo({
      'app.yaml': manifestFile(
        namespaceManifest(ns),
        webService({ namespace: ns, replicas: 2, update: { parallelism: 2, monitor: '500ms' } }),
      ),
    });
    // No token given: the agent makes its own secret and certificate, and prints the token.
    agent = await startBerth(
      'agent',
      ['--listen', '127.0.0.1:0', '--node', node, '--state-dir', join(dir, 'agent')],
      { env: { BERTH_AGENT_TOKEN: '' } },
    );
    assert.ok(agent.url && agent.agentToken, agent.output());
    assert.match(agent.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    url = agent.url;
    token = agent.agentToken;
  });

  after(async () => {
    await agent?.stop();
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('apply through the agent runs the replicas on its node', async () => {
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
        token,
      ],
      { env: { BERTH_AGENT_TOKEN: '' } },
    );
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, new RegExp(`on ${node}`));
    assert.deepEqual(await bodies(ns, 'web'), ['v1', 'v1']);
  });

  test('a wrong secret, or a token without the fingerprint, is refused and changes nothing', async () => {
    const before = await replicasOf(ns, 'web');
    const applyWith = (agentToken: string) =>
      runBerth(
        [
          'apply',
          '--repo',
          repo.dir,
          '--state-dir',
          join(dir, 'state'),
          '--agent',
          url,
          '--agent-token',
          agentToken,
        ],
        { env: { BERTH_AGENT_TOKEN: '' } },
      );
    const forged = await applyWith(token.replace(/-[^-]+$/, '-forged'));
    assert.equal(forged.code, 1);
    assert.match(forged.stderr, /^berth: .*missing or wrong agent token/im);
    const bare = await applyWith('forged');
    assert.equal(bare.code, 1);
    assert.match(
      bare.stderr,
      /^berth: the agent at https:\/\/\S+ serves https: its token must be the one `berth agent` printed/im,
    );
    assert.deepEqual(await replicasOf(ns, 'web'), before);
  });
});
