/**
 * Notifiers declared in git, against stand-in receivers on loopback that record what berth posts:
 * a generic webhook and a Slack incoming webhook, each URL (a token in its path) in an age-encrypted
 * Secret, and a third Notifier whose receiver is down. A good commit is told once as `deployed`, a
 * crashing one as `rolled-back`; a receiver answering 500 gets its event once, after a retry; the
 * rollouts go on while a receiver is down; the URLs appear nowhere in the operator's output or
 * state dir.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ageEncrypt, createAgeIdentity } from '../helpers/age.js';
import {
  eventually,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { filesContaining } from '../helpers/files-containing.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, secretManifest, webService } from '../helpers/manifests.js';
import { bodies, removeNamespace } from './cluster-probe.js';

interface Receiver {
  url(token: string): string;
  /** Bodies answered 2xx, in order. */
  received: Record<string, unknown>[];
  /** Every request: path and the status answered. */
  requests: { path: string; status: number }[];
  failNext(count: number): void;
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const received: Record<string, unknown>[] = [];
  const requests: { path: string; status: number }[] = [];
  let failures = 0;
  const server: Server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const ok = request.method === 'POST' && request.headers['content-type'] === 'application/json';
      const status = !ok ? 400 : failures > 0 ? 500 : 200;
      if (status === 500) failures -= 1;
      requests.push({ path: request.url ?? '', status });
      if (status === 200) received.push(JSON.parse(body) as Record<string, unknown>);
      response.writeHead(status, { 'Content-Type': 'text/plain' }).end(status === 200 ? 'ok' : 'no');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: (token) => `http://127.0.0.1:${port}/hooks/${token}`,
    received,
    requests,
    failNext: (count) => (failures = count),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const HOOK_TOKEN = `T0-hook-${Math.random().toString(36).slice(2, 12)}`;
const SLACK_TOKEN = `T0-slack-${Math.random().toString(36).slice(2, 12)}`;
const DOWN_TOKEN = `T0-down-${Math.random().toString(36).slice(2, 12)}`;

function notifier(name: string, ns: string, type: string, key: string): string {
  return `apiVersion: berth/v1
kind: Notifier
metadata: { name: ${name}, namespace: ${ns} }
spec:
  type: ${type}
  urlFrom: { secret: hooks, key: ${key} }
  events: [deployed, rolled-back, failed, invalid, job-failed]
`;
}

test('Notifiers: deployed and rolled-back told once each, retried after a 500, rollouts unaffected, URLs never shown', async (t) => {
  const ns = `nt${Date.now().toString(36)}`;
  const dir = await mkdtemp(join(tmpdir(), 'berth-notify-'));
  const stateDir = join(dir, 'state');
  const keyFile = join(dir, 'ops.key');
  const hook = await startReceiver();
  const slack = await startReceiver();
  const gone = await startReceiver();
  const downUrl = gone.url(DOWN_TOKEN);
  await gone.close();
  let repo: TestRepo | null = null;
  let operator: BerthProcess | null = null;
  t.after(async () => {
    await operator?.stop('SIGKILL');
    await removeNamespace(ns);
    await repo?.cleanup();
    await hook.close();
    await slack.close();
    await rm(dir, { recursive: true, force: true });
  });

  const recipient = await createAgeIdentity(keyFile);
  const secrets = secretManifest({
    name: 'hooks',
    namespace: ns,
    data: {
      hook: await ageEncrypt(recipient, hook.url(HOOK_TOKEN)),
      slack: await ageEncrypt(recipient, slack.url(SLACK_TOKEN)),
      down: await ageEncrypt(recipient, downUrl),
    },
  });
  const manifests = (image: string, ...extra: string[]): Record<string, string> => ({
    'deploy/all.yaml': manifestFile(
      ...extra,
      namespaceManifest(ns),
      secrets,
      notifier('ops', ns, 'webhook', 'hook'),
      notifier('chat', ns, 'slack', 'slack'),
      notifier('gone', ns, 'discord', 'down'),
      webService({ namespace: ns, image, replicas: 1, update: { monitor: '1s' }, stopGracePeriod: '1s' }),
    ),
  });
  repo = await createTestRepo(manifests('berth-test/web:v1'));
  // The webhook receiver is out at first: its deployed event comes after a retry.
  hook.failNext(1);
  operator = await startBerth(
    'run',
    [
      ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node: `test-${ns}` }),
      ...SCHEDULE_NEVER,
      ...['--cluster-name', 'ci'],
    ],
    {
      env: { ...process.env, BERTH_LOG_LEVEL: 'trace', BERTH_AGE_KEY_FILE: keyFile, BERTH_AGE_KEY: '' },
      keep: Infinity,
    },
  );
  const good = await repo.head();
  await eventually('v1 serves', async () => (await bodies(ns, 'web')).join() === 'v1');
  await eventually('the webhook gets deployed after a retry', async () => hook.received.length === 1);
  await eventually('slack gets deployed', async () => slack.received.length === 1);
  assert.deepEqual(
    hook.requests.map((r) => r.status),
    [500, 200],
  );
  assert.equal(hook.requests[0]!.path, `/hooks/${HOOK_TOKEN}`);
  const deployed = hook.received[0]!;
  assert.deepEqual(Object.keys(deployed), ['event', 'revision', 'cluster', 'at']);
  assert.deepEqual({ ...deployed, at: null }, { event: 'deployed', revision: good, cluster: 'ci', at: null });
  assert.ok(!Number.isNaN(Date.parse(String(deployed['at']))));
  const text = slack.received[0]!['text'];
  assert.equal(text, `ci: ${good.slice(0, 12)} deployed`);
  assert.equal((slack.received[0]!['blocks'] as unknown[]).length, 2);

  const bad = await repo.commit(manifests('berth-test/crash:v1'), 'web crashes');
  await eventually('the webhook gets rolled-back', async () => hook.received.length === 2);
  await eventually('slack gets rolled-back', async () => slack.received.length === 2);
  const rolledBack = hook.received[1]!;
  assert.equal(rolledBack['event'], 'rolled-back');
  assert.equal(rolledBack['revision'], bad);
  assert.equal(rolledBack['namespace'], ns);
  assert.equal(rolledBack['service'], 'web');
  assert.match(String(rolledBack['reason']), /web/);
  assert.match(
    String(slack.received[1]!['text']),
    new RegExp(`^ci: ${bad.slice(0, 12)} rolled back \\(${ns}/web\\)`),
  );
  assert.deepEqual(await bodies(ns, 'web'), ['v1'], 'the last good revision still serves');

  // The Notifier whose receiver is down did not hold up either rollout.
  await eventually('the down receiver was tried and the operator says so', async () =>
    /could not send a notification; will retry/.test(operator.stderr()),
  );
  assert.equal(hook.received.length, 2);
  assert.equal(slack.received.length, 2);

  // The URLs (tokens in their paths) appear nowhere the operator writes.
  const output = operator.output();
  for (const token of [HOOK_TOKEN, SLACK_TOKEN, DOWN_TOKEN])
    assert.ok(!output.includes(token), `${token} in the output`);
  assert.deepEqual(await filesContaining(stateDir, [HOOK_TOKEN, SLACK_TOKEN, DOWN_TOKEN]), []);

  // A Job that fails is told once, as job-failed, naming the Job and why.
  const failingJob = `apiVersion: berth/v1
kind: Job
metadata: { name: nightly, namespace: ${ns} }
spec:
  image: busybox:1.36
  command: ["sh", "-c", "echo nightly broke; exit 3"]
  backoffLimit: 0
  init: true
  stopGracePeriod: 1s
`;
  const withJob = await repo.commit(manifests('berth-test/web:v1', failingJob), 'a nightly Job that fails');
  const jobFailed = await eventually('the webhook gets job-failed', async () =>
    hook.received.find((event) => event['event'] === 'job-failed'),
  );
  assert.equal(jobFailed['namespace'], ns);
  assert.equal(jobFailed['service'], 'nightly');
  assert.equal(jobFailed['revision'], withJob);
  assert.match(String(jobFailed['reason']), /nightly broke|exit code 3/);
  assert.equal(hook.received.filter((event) => event['event'] === 'job-failed').length, 1);
});
