import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { silentLogger } from '../../core/log.js';
import { OperatorMetrics } from '../../operator/metrics.js';
import {
  giteaDelivery,
  githubDelivery,
  gitlabDelivery,
  postDelivery,
  webhookFixture,
} from '../../../test/helpers/webhook-deliveries.js';
import { webhookRoutes } from './webhook-routes.js';

const secret = "It's a Secret to Everybody";

async function serve(options: { secret: string | null; bodyLimit?: number }): Promise<{
  app: FastifyInstance;
  base: string;
  metrics: OperatorMetrics;
}> {
  const app = Fastify({ logger: false });
  const metrics = new OperatorMetrics();
  await app.register(webhookRoutes, {
    secret: options.secret,
    branch: 'main',
    log: silentLogger(),
    metrics,
    onPush: () => undefined,
    ...(options.bodyLimit === undefined ? {} : { bodyLimit: options.bodyLimit }),
  });
  // A route outside the plugin keeps fastify's own JSON parsing: the raw-body parser is scoped.
  app.post('/echo', async (request) => request.body);
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, base, metrics };
}

describe('push webhooks over a real HTTP server', () => {
  let server: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    server = await serve({ secret });
  });
  after(async () => {
    await server.app.close();
  });

  test('GitHub: a signed push to the tracked branch starts a reconcile', async () => {
    const answer = await postDelivery(
      `${server.base}/webhooks/github`,
      githubDelivery(secret, webhookFixture('github-push.json')),
    );
    assert.equal(answer.status, 202);
    assert.equal(answer.body.result, 'triggered');
  });

  test('GitHub: a wrong, missing or re-signed-with-another-secret signature is 401', async () => {
    const body = webhookFixture('github-push.json');
    const wrong = githubDelivery('not the secret', body);
    assert.equal((await postDelivery(`${server.base}/webhooks/github`, wrong)).status, 401);
    const unsigned = githubDelivery(secret, body);
    delete unsigned.headers['x-hub-signature-256'];
    assert.equal((await postDelivery(`${server.base}/webhooks/github`, unsigned)).status, 401);
    // The signature of the original body over a body changed by one byte.
    const tampered = githubDelivery(secret, body);
    tampered.body = body.replace('refs/heads/main', 'refs/heads/mair');
    const answer = await postDelivery(`${server.base}/webhooks/github`, tampered);
    assert.equal(answer.status, 401);
    assert.equal(answer.body.result, 'unauthorized');
  });

  test('GitHub: the signature holds over the raw bytes, whitespace and non-ASCII included', async () => {
    const body = `  ${webhookFixture('github-push.json')}\n\n`;
    assert.match(body, /café ☕/);
    const answer = await postDelivery(`${server.base}/webhooks/github`, githubDelivery(secret, body));
    assert.equal(answer.status, 202, answer.body.message);
  });

  test('a replayed delivery id is refused with 401', async () => {
    const delivery = githubDelivery(secret, webhookFixture('github-push.json'));
    assert.equal((await postDelivery(`${server.base}/webhooks/github`, delivery)).status, 202);
    const again = await postDelivery(`${server.base}/webhooks/github`, delivery);
    assert.equal(again.status, 401);
    assert.equal(again.body.result, 'replayed');
  });

  test('pings, other events and pushes to other branches are acknowledged and ignored', async () => {
    const ping = await postDelivery(
      `${server.base}/webhooks/github`,
      githubDelivery(secret, webhookFixture('github-ping.json'), { event: 'ping' }),
    );
    assert.deepEqual([ping.status, ping.body.result], [200, 'ignored']);
    const other = await postDelivery(
      `${server.base}/webhooks/github`,
      githubDelivery(secret, webhookFixture('github-push.json', 'refs/heads/feature')),
    );
    assert.deepEqual([other.status, other.body.result], [200, 'ignored']);
    assert.match(other.body.message ?? '', /refs\/heads\/feature ignored/);
    const tag = await postDelivery(
      `${server.base}/webhooks/gitlab`,
      gitlabDelivery(secret, webhookFixture('gitlab-push.json', 'refs/tags/v1')),
    );
    assert.deepEqual([tag.status, tag.body.result], [200, 'ignored']);
    const issue = await postDelivery(
      `${server.base}/webhooks/gitea`,
      giteaDelivery(secret, '{"action":"opened"}', { event: 'issues' }),
    );
    assert.deepEqual([issue.status, issue.body.result], [200, 'ignored']);
  });

  test('GitLab: the token is compared; a wrong token is 401', async () => {
    const body = webhookFixture('gitlab-push.json');
    const ok = await postDelivery(`${server.base}/webhooks/gitlab`, gitlabDelivery(secret, body));
    assert.equal(ok.status, 202);
    const wrong = await postDelivery(`${server.base}/webhooks/gitlab`, gitlabDelivery(`${secret}x`, body));
    assert.equal(wrong.status, 401);
  });

  test('Gitea and Forgejo: the hex HMAC of the body is checked', async () => {
    const body = webhookFixture('gitea-push.json');
    const gitea = await postDelivery(`${server.base}/webhooks/gitea`, giteaDelivery(secret, body));
    assert.equal(gitea.status, 202);
    const forgejo = await postDelivery(
      `${server.base}/webhooks/gitea`,
      giteaDelivery(secret, body, { forgejo: true }),
    );
    assert.equal(forgejo.status, 202);
    // A bad Forgejo signature is not rescued by a good Gitea one.
    const mixed = giteaDelivery(secret, body, { forgejo: true });
    mixed.headers['x-forgejo-signature'] = giteaDelivery('other', body).headers['x-gitea-signature']!;
    assert.equal((await postDelivery(`${server.base}/webhooks/gitea`, mixed)).status, 401);
  });

  test('GitHub form-encoded deliveries are verified over the form body', async () => {
    const body = `payload=${encodeURIComponent(webhookFixture('github-push.json'))}`;
    const delivery = githubDelivery(secret, body);
    delivery.headers['content-type'] = 'application/x-www-form-urlencoded';
    assert.equal((await postDelivery(`${server.base}/webhooks/github`, delivery)).status, 202);
  });

  test('routes outside the plugin still parse JSON', async () => {
    const response = await fetch(`${server.base}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    assert.deepEqual(await response.json(), { a: 1 });
  });

  test('deliveries are counted by provider and result', async () => {
    const text = await server.metrics.registry.metrics();
    assert.match(text, /berth_webhook_deliveries_total\{provider="github",result="triggered"\} [1-9]/);
    assert.match(text, /berth_webhook_deliveries_total\{provider="github",result="unauthorized"\} 3/);
    assert.match(text, /berth_webhook_deliveries_total\{provider="github",result="replayed"\} 1/);
    assert.match(text, /berth_webhook_deliveries_total\{provider="gitea",result="ignored"\} 1/);
  });
});

describe('webhook limits and configuration', () => {
  test('a body over the limit is refused with 413 before it is verified', async () => {
    const server = await serve({ secret, bodyLimit: 4096 });
    try {
      const big = JSON.stringify({ ref: 'refs/heads/main', padding: 'x'.repeat(8192) });
      const answer = await postDelivery(`${server.base}/webhooks/github`, githubDelivery(secret, big));
      assert.equal(answer.status, 413);
      assert.match(
        await server.metrics.registry.metrics(),
        /berth_webhook_deliveries_total\{provider="github",result="too-large"\} 1/,
      );
    } finally {
      await server.app.close();
    }
  });

  test('without a secret the endpoints answer 503 and say how to enable them', async () => {
    const server = await serve({ secret: null });
    try {
      const answer = await postDelivery(
        `${server.base}/webhooks/github`,
        githubDelivery('anything', webhookFixture('github-push.json')),
      );
      assert.equal(answer.status, 503);
      assert.match(answer.body.message ?? '', /BERTH_WEBHOOK_SECRET/);
    } finally {
      await server.app.close();
    }
  });
});
