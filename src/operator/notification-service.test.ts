import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { BerthError } from '../core/errors.js';
import type { DesiredState, NotifierSpec, SecretSpec } from '../manifests/types.js';
import { DeliveryError } from '../notify/post-notification.js';
import type { SecretReader } from '../secrets/secret-reader.js';
import { NotificationService, REPEAT_WINDOW_MS, notificationOf } from './notification-service.js';
import type { ReconcileResult } from './reconcile-types.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const URL_TEXT = 'http://127.0.0.1:9/hooks/T000/SECRET-TOKEN-PATH';

const hooks: SecretSpec = { kind: 'Secret', name: 'hooks', namespace: 'default', data: { url: 'ARMOR' } };
function notifier(name: string, extra: Partial<NotifierSpec> = {}): NotifierSpec {
  return {
    kind: 'Notifier',
    name,
    namespace: 'default',
    type: 'webhook',
    urlFrom: { secret: 'hooks', key: 'url' },
    events: ['deployed', 'rolled-back', 'failed', 'invalid', 'node-down', 'job-failed'],
    ...extra,
  };
}
function desired(notifiers: NotifierSpec[], secrets: SecretSpec[] = [hooks]): DesiredState {
  return { revision: A, services: [], configs: [], secrets, namespaces: [], notifiers };
}
const readSecret: SecretReader = () => Promise.resolve(new TextEncoder().encode(`${URL_TEXT}\n`));

function result(
  outcome: ReconcileResult['outcome'],
  head: string,
  extra: Partial<ReconcileResult> = {},
): ReconcileResult {
  return {
    reconcileId: 'x',
    headRevision: head,
    targetRevision: head,
    outcome,
    reason: null,
    error: null,
    plan: null,
    rollout: null,
    rollback: null,
    ...extra,
  };
}

/** A service with a fake clock, a recording post and a log kept as text. */
function harness(options: { fail?: (n: number) => Error | null; maxQueue?: number } = {}) {
  const sent: { url: string; body: Record<string, unknown> }[] = [];
  // Real time plus what a test skips: back-off waits pass, the repeat window is jumped over.
  let skipped = Date.parse('2025-01-01T00:00:00Z') - Date.now();
  let attempts = 0;
  let log = '';
  let settle: () => void = () => undefined;
  const service = new NotificationService({
    readSecret,
    cluster: 'prod',
    now: () => Date.now() + skipped,
    log: pino(
      { level: 'debug' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          log += chunk.toString();
          settle();
          done();
        },
      }),
    ),
    retry: { firstMs: 1, maxMs: 4, attempts: 4 },
    ...(options.maxQueue === undefined ? {} : { maxQueue: options.maxQueue }),
    post: (url, body) => {
      const failure = options.fail?.(attempts++) ?? null;
      if (failure) return Promise.reject(failure);
      sent.push({ url: url.href, body: body as Record<string, unknown> });
      settle();
      return Promise.resolve();
    },
  });
  const until = (done: () => boolean) =>
    new Promise<void>((resolve) => {
      settle = () => done() && resolve();
      settle();
    });
  return {
    service,
    sent,
    log: () => log,
    until,
    advance: (ms: number) => (skipped += ms),
    attempts: () => attempts,
  };
}

test('a deploy is told once to each Notifier that wants it, however often the operator reconciles', async () => {
  const h = harness();
  const quiet = notifier('quiet', { events: ['failed'] });
  h.service.reconciled(
    result('succeeded', A, { desired: desired([notifier('one'), notifier('two'), quiet]) }),
  );
  h.service.reconciled(result('succeeded', A));
  h.service.reconciled(result('unchanged', A));
  await h.until(() => h.sent.length >= 2);
  await h.service.close();
  assert.deepEqual(
    h.sent.map((s) => s.body),
    [1, 2].map(() => ({ event: 'deployed', revision: A, cluster: 'prod', at: h.sent[0]!.body['at'] })),
  );
  assert.equal(h.sent[0]!.url, URL_TEXT);
});

test('a failed head is said once, not at every reconcile after it, even past the repeat window', async () => {
  const h = harness();
  const failure = new BerthError('ERR_ROLLOUT_UNHEALTHY', 'shop/web: exited 1');
  h.service.reconciled(result('succeeded', A, { desired: desired([notifier('one')]) }));
  h.service.reconciled(result('rolled back', B, { targetRevision: A, error: failure }));
  h.advance(REPEAT_WINDOW_MS + 1);
  // The next reconciles read the verdict back from the state: the same head, failed.
  h.service.reconciled(result('failed', B, { targetRevision: A, error: failure }));
  h.service.reconciled(result('failed', B, { targetRevision: A, error: failure }));
  await h.until(() => h.sent.length >= 2);
  await h.service.close();
  assert.deepEqual(
    h.sent.map((s) => `${String(s.body['event'])} ${String(s.body['revision'])[0]}`),
    ['deployed a', 'rolled-back b'],
  );
});

test('a node down is said again only after the repeat window', async () => {
  const h = harness();
  h.service.reconciled(result('unchanged', A, { desired: desired([notifier('one')]) }));
  h.service.nodeDown('n2', A);
  h.advance(REPEAT_WINDOW_MS - 1);
  h.service.nodeDown('n2', A);
  h.advance(2);
  h.service.nodeDown('n2', A);
  await h.until(() => h.sent.length >= 2);
  await h.service.close();
  assert.deepEqual(
    h.sent.map((s) => `${String(s.body['event'])} ${String(s.body['node'])}`),
    ['node-down n2', 'node-down n2'],
  );
});

test('network errors, 429 and 5xx are retried with back-off; a 4xx is not; attempts are bounded', async () => {
  const transient = new DeliveryError('POST to 127.0.0.1:9: 500 Internal Server Error', true);
  const h = harness({ fail: (n) => (n < 2 ? transient : null) });
  h.service.reconciled(result('succeeded', A, { desired: desired([notifier('one')]) }));
  await h.until(() => h.sent.length >= 1);
  assert.equal(h.attempts(), 3);

  const refused = harness({ fail: () => new DeliveryError('POST to 127.0.0.1:9: 404 Not Found', false) });
  refused.service.reconciled(result('succeeded', A, { desired: desired([notifier('one')]) }));
  await refused.until(() => refused.log().includes('not retried'));
  assert.equal(refused.attempts(), 1);

  const down = harness({ fail: () => transient });
  down.service.reconciled(result('succeeded', A, { desired: desired([notifier('one')]) }));
  await down.until(() => down.log().includes('given up after 4 attempts'));
  assert.equal(down.attempts(), 4);
  await Promise.all([h.service.close(), refused.service.close(), down.service.close()]);
  for (const log of [h.log(), refused.log(), down.log()]) assert.ok(!log.includes('SECRET-TOKEN-PATH'), log);
});

test('the queue is bounded: past it the oldest delivery is dropped and said', async () => {
  const h = harness({ maxQueue: 2 });
  const many = ['a', 'b', 'c', 'd'].map((name) => notifier(name));
  // Queued in one step: the worker has taken the first, two wait, the fourth pushes out the second.
  h.service.reconciled(result('succeeded', A, { desired: desired(many) }));
  await h.until(() => h.sent.length >= 3);
  await h.service.close();
  assert.equal(h.log().match(/the oldest is dropped/g)?.length, 1);
  assert.deepEqual(h.sent.length, 3);
});

test('a Notifier without a usable URL is said once, without the URL, and nothing is sent', async () => {
  const h = harness();
  const noSecret = desired([notifier('one')], []);
  h.service.reconciled(result('succeeded', A, { desired: noSecret }));
  h.service.reconciled(result('succeeded', B, { desired: noSecret }));
  await h.until(() => h.log().includes('no usable URL'));
  await h.service.close();
  assert.equal(h.sent.length, 0);
  assert.equal(h.log().match(/no usable URL/g)?.length, 1);
});

test('which results are news: deployed, rolled back, failed, invalid; not unchanged or interrupted', () => {
  const invalid = new BerthError('ERR_MANIFEST_INVALID', 'invalid manifests: web.yaml:3:1: ...');
  assert.equal(notificationOf(result('unchanged', A)), null);
  assert.deepEqual(notificationOf(result('succeeded', A)), { event: 'deployed', revision: A });
  assert.equal(
    notificationOf(result('interrupted', A, { error: new BerthError('ERR_AGENT_UNREACHABLE', 'x') })),
    null,
  );
  assert.deepEqual(notificationOf(result('failed', B, { targetRevision: A, error: invalid })), {
    event: 'invalid',
    revision: B,
    reason: invalid.message,
  });
  const rollout = { failure: { service: 'shop/web', reason: 'exited', action: 'rollback' } };
  assert.deepEqual(
    notificationOf(
      result('rolled back', B, {
        error: new BerthError('ERR_ROLLOUT_UNHEALTHY', 'shop/web: exited'),
        rollout: rollout as unknown as ReconcileResult['rollout'],
      }),
    ),
    { event: 'rolled-back', revision: B, namespace: 'shop', service: 'web', reason: 'shop/web: exited' },
  );
});
