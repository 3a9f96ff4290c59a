import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  eventually,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import {
  giteaDelivery,
  githubDelivery,
  postDelivery,
  webhookFixture,
} from '../helpers/webhook-deliveries.js';
import { removeNamespace, replicasOf } from './cluster-probe.js';

const ns = `hook${Date.now().toString(36)}`;
const node = `test-${ns}`;
const secret = 'webhook-test-secret-0c6f';

function manifests(image: string, version: string): Record<string, string> {
  return {
    'deploy/all.yaml': manifestFile(
      namespaceManifest(ns),
      webService({
        namespace: ns,
        image,
        env: { VERSION: version },
        replicas: 2,
        update: { parallelism: 2, monitor: '0s' },
      }),
    ),
  };
}

async function onlyRevision(revision: string): Promise<boolean> {
  const replicas = await replicasOf(ns, 'web');
  return replicas.length === 2 && replicas.every((r) => r.revision === revision && r.state === 'running');
}

describe('push webhooks on a running operator', () => {
  let repo: TestRepo;
  let stateDir: string;
  let operator: BerthProcess | null = null;
  let base = '';

  before(async () => {
    repo = await createTestRepo(manifests('berth-test/web:v1', '1'));
    stateDir = await mkdtemp(join(tmpdir(), 'berth-hooks-'));
    const secretFile = join(stateDir, 'webhook-secret');
    await writeFile(secretFile, `${secret}\n`);
    // No watch and a schedule that never fires: after the start-up reconcile, only a webhook
    // can make this operator look at git again.
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node }),
      ...SCHEDULE_NEVER,
      ...['--no-watch', '--listen', '127.0.0.1:0'],
      ...['--webhook-secret-file', secretFile],
    ]);
    assert.ok(operator.url, operator.output());
    base = operator.url;
  });
  after(async () => {
    await operator?.stop('SIGKILL');
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('the start-up reconcile deploys the branch head', async () => {
    const head = await repo.head();
    await eventually('2 replicas of the first commit', () => onlyRevision(head));
  });

  let pushed: ReturnType<typeof githubDelivery>;
  let v2 = '';

  test('a push with a wrong signature is refused with 401 and changes nothing', async () => {
    const v1 = await repo.head();
    v2 = await repo.commit(manifests('berth-test/web:v2', '2'), 'web v2');
    const forged = githubDelivery('guessed-secret', webhookFixture('github-push.json'));
    const answer = await postDelivery(`${base}/webhooks/github`, forged);
    assert.equal(answer.status, 401);
    const unsigned = githubDelivery(secret, webhookFixture('github-push.json'));
    delete unsigned.headers['x-hub-signature-256'];
    assert.equal((await postDelivery(`${base}/webhooks/github`, unsigned)).status, 401);
    assert.ok(await onlyRevision(v1), 'still every replica on the first commit');
  });

  test('pings and pushes to other branches are acknowledged and ignored', async () => {
    const ping = await postDelivery(
      `${base}/webhooks/github`,
      githubDelivery(secret, webhookFixture('github-ping.json'), { event: 'ping' }),
    );
    assert.equal(ping.status, 200);
    const other = await postDelivery(
      `${base}/webhooks/github`,
      githubDelivery(secret, webhookFixture('github-push.json', 'refs/heads/feature')),
    );
    assert.equal(other.status, 200);
    assert.equal(other.body.result, 'ignored');
  });

  test('a signed GitHub push to the tracked branch starts a reconcile that rolls out the new commit', async () => {
    pushed = githubDelivery(secret, webhookFixture('github-push.json'));
    const answer = await postDelivery(`${base}/webhooks/github`, pushed);
    assert.equal(answer.status, 202, answer.body.message);
    await eventually('a replica of the pushed commit', async () =>
      (await replicasOf(ns, 'web')).some((r) => r.revision === v2),
    );
    await eventually('every replica on the pushed commit', () => onlyRevision(v2));
  });

  test('the same delivery replayed is refused with 401', async () => {
    const v3 = await repo.commit(manifests('berth-test/web:v1', '3'), 'web 3');
    const replay = await postDelivery(`${base}/webhooks/github`, pushed);
    assert.equal(replay.status, 401);
    assert.equal(replay.body.result, 'replayed');
    assert.ok(await onlyRevision(v2), 'the replay deployed nothing');

    // A fresh delivery (here from Gitea) deploys it.
    const gitea = await postDelivery(
      `${base}/webhooks/gitea`,
      giteaDelivery(secret, webhookFixture('gitea-push.json')),
    );
    assert.equal(gitea.status, 202);
    await eventually('every replica on the third commit', () => onlyRevision(v3));
  });

  test('deliveries show in /metrics by provider and result', async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    assert.match(text, /berth_webhook_deliveries_total\{provider="github",result="unauthorized"\} 2/);
    assert.match(text, /berth_webhook_deliveries_total\{provider="github",result="triggered"\} 1/);
    assert.match(text, /berth_webhook_deliveries_total\{provider="github",result="replayed"\} 1/);
    assert.match(text, /berth_webhook_deliveries_total\{provider="github",result="ignored"\} 2/);
    assert.match(text, /berth_webhook_deliveries_total\{provider="gitea",result="triggered"\} 1/);
  });
});
