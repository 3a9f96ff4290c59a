import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  eventually,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { startForgeApi, type ForgeApi, type ForgeKind } from '../helpers/forge-api.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import { bodies, removeNamespace } from './cluster-probe.js';

const TOKEN = 'forge-token-5d1c9e';

function manifests(ns: string, image: string): Record<string, string> {
  return {
    'deploy/all.yaml': manifestFile(
      namespaceManifest(ns),
      webService({ namespace: ns, image, replicas: 1, update: { monitor: '1s' }, stopGracePeriod: '1s' }),
    ),
  };
}

/** One operator following `repo`, reporting to `apiUrl` as `kind`; everything it made is removed after. */
async function setUp(t: { after: (fn: () => Promise<void>) => void }, kind: ForgeKind, apiUrl: string) {
  const ns = `cs${kind}${Date.now().toString(36)}`;
  const repo: TestRepo = await createTestRepo(manifests(ns, 'berth-test/web:v1'));
  const stateDir = await mkdtemp(join(tmpdir(), 'berth-status-'));
  let operator: BerthProcess | null = null;
  t.after(async () => {
    await operator?.stop('SIGKILL');
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });
  operator = await startBerth(
    'run',
    [
      ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node: `test-${ns}` }),
      ...SCHEDULE_NEVER,
      ...['--commit-status', kind, '--git-api-url', apiUrl, '--git-api-repo', 'team/deploy'],
      ...['--cluster-name', 'ci'],
    ],
    { env: { ...process.env, BERTH_GIT_API_TOKEN: TOKEN }, keep: Infinity },
  );
  return { ns, repo, operator: operator };
}

const short = (sha: string): string => sha.slice(0, 7);

describe('commit statuses on the git host, against stand-in APIs', () => {
  const apis: ForgeApi[] = [];
  after(async () => {
    for (const api of apis) await api.close();
  });

  test('GitHub: pending then success for a good commit, pending then failure for a crashing one, retried after 500s', async (t) => {
    const api = await startForgeApi('github', TOKEN);
    apis.push(api);
    const { ns, repo, operator } = await setUp(t, 'github', api.url);
    const good = await repo.head();
    await eventually(`success for ${short(good)}`, async () =>
      api.statuses().includes(`${short(good)} success berth/ci`),
    );
    assert.deepEqual(api.statuses(), [`${short(good)} pending berth/ci`, `${short(good)} success berth/ci`]);

    const bad = await repo.commit(manifests(ns, 'berth-test/crash:v1'), 'web crashes');
    await eventually(`failure for ${short(bad)}`, async () =>
      api.statuses().includes(`${short(bad)} failure berth/ci`),
    );
    assert.deepEqual(api.statuses().slice(2), [
      `${short(bad)} pending berth/ci`,
      `${short(bad)} failure berth/ci`,
    ]);
    const failure = api.requests.findLast((r) => r.invalid === null)!.body as { description: string };
    assert.match(failure.description, /^rolled back: /);
    assert.deepEqual(await bodies(ns, 'web'), ['v1'], 'the last good revision still serves');

    // The git host has an outage: the rollout goes on, the status arrives once it is back.
    api.failNext(2);
    const fixed = await repo.commit(manifests(ns, 'berth-test/web:v2'), 'web v2');
    await eventually('v2 serves', async () => (await bodies(ns, 'web')).join() === 'v2');
    await eventually(
      `success for ${short(fixed)}`,
      async () => api.statuses().includes(`${short(fixed)} success berth/ci`),
      60_000,
    );
    assert.equal(api.requests.filter((r) => r.invalid === 'answered 500 on purpose').length, 2);
    assert.deepEqual(
      api.requests.filter((r) => r.invalid !== null && !r.invalid.includes('on purpose')),
      [],
    );
    assert.doesNotMatch(operator.output(), new RegExp(TOKEN));
  });

  for (const kind of ['gitlab', 'gitea'] as const) {
    test(`${kind}: its route, token header and body schema`, async (t) => {
      const api = await startForgeApi(kind, TOKEN);
      apis.push(api);
      const { repo } = await setUp(t, kind, api.url);
      const good = await repo.head();
      await eventually(`success for ${short(good)}`, async () =>
        api.statuses().includes(`${short(good)} success berth/ci`),
      );
      assert.deepEqual(
        api.requests.filter((r) => r.invalid !== null),
        [],
      );
      assert.deepEqual(api.statuses(), [
        `${short(good)} pending berth/ci`,
        `${short(good)} success berth/ci`,
      ]);
    });
  }

  test('with the git host down, rollouts go on; a refused token is said once, never shown', async (t) => {
    // A closed port: nothing listens there.
    const closed = await startForgeApi('github', TOKEN);
    const url = closed.url;
    await closed.close();
    const { ns, operator } = await setUp(t, 'github', url);
    await eventually('v1 serves', async () => (await bodies(ns, 'web')).join() === 'v1');
    await eventually('the operator says it will retry', async () =>
      /could not post a commit status; will retry/.test(operator.stderr()),
    );

    const api = await startForgeApi('github', 'another-token');
    apis.push(api);
    const refused = await setUp(t, 'github', api.url);
    await eventually('v1 serves', async () => (await bodies(refused.ns, 'web')).join() === 'v1');
    await eventually('the refusal is said', async () =>
      /refuses the token for commit statuses/.test(refused.operator.stderr()),
    );
    assert.equal(refused.operator.stderr().match(/refuses the token/g)?.length, 1);
    assert.doesNotMatch(refused.operator.output(), new RegExp(TOKEN));
  });
});
