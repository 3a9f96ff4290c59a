import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type {
  NodeAgent,
  NodeSnapshot,
  ObservedReplica,
  ReplicaRequest,
  ReplicaWaitResult,
} from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import { loadManifests } from '../manifests/load.js';
import type { LoadResult } from '../manifests/types.js';
import { OperatorMetrics } from './metrics.js';
import { Operator } from './operator.js';
import { reconcile, type ReconcileDeps } from './reconcile.js';
import type { RevisionSource } from './revision-source.js';
import { StateStore } from './state-store.js';
import { targetRevision } from './target-revision.js';

/** A git branch in memory: each revision is a set of manifest files. */
class FakeSource implements RevisionSource {
  readonly description = 'fake';
  readonly branch = 'main';
  private readonly revisions = new Map<string, Record<string, string>>();
  private headRevision = '';

  commit(revision: string, files: Record<string, string>): string {
    this.revisions.set(revision, files);
    this.headRevision = revision;
    return revision;
  }

  head = (): Promise<string> => Promise.resolve(this.headRevision);
  resolve = (ref: string): Promise<string> => Promise.resolve(ref);
  load = (revision: string): Promise<LoadResult> => {
    const files = Object.entries(this.revisions.get(revision) ?? {}).map(([path, text]) => ({
      path,
      content: new TextEncoder().encode(text),
    }));
    return Promise.resolve(loadManifests(files, { revision }));
  };
  commitInfo = (): Promise<null> => Promise.resolve(null);
}

/** A node whose replicas are records; images named `...:bad` never become healthy. */
class FakeAgent implements NodeAgent {
  readonly replicas = new Map<string, ObservedReplica>();
  down = false;
  constructor(readonly name: string) {}

  snapshot(): Promise<NodeSnapshot> {
    if (this.down) return Promise.reject(new BerthError('ERR_AGENT_UNREACHABLE', `${this.name} is down`));
    return Promise.resolve({
      name: this.name,
      address: '127.0.0.1',
      labels: {},
      capacity: { nanoCpus: 8e9, memoryBytes: 8 * 1024 ** 3 },
      engineVersion: 'fake',
      status: 'ready',
      images: [],
      replicas: [...this.replicas.values()],
    });
  }

  ensureReplica(request: ReplicaRequest): Promise<ObservedReplica> {
    const healthy = !request.image.endsWith(':bad');
    const replica: ObservedReplica = {
      ...{ name: request.name, id: request.name, node: this.name, namespace: request.namespace },
      ...{
        service: request.service,
        slot: request.slot,
        specHash: request.specHash,
        revision: request.revision,
      },
      state: 'running',
      health: healthy ? 'healthy' : 'unhealthy',
      healthDetail: healthy ? null : 'probe failed',
      ...{ exitCode: null, restartCount: 0, createdAt: '', startedAt: '', ports: [] },
      specSummary: request.specSummary,
    };
    this.replicas.set(request.name, replica);
    return Promise.resolve(replica);
  }

  awaitReplica(name: string): Promise<ReplicaWaitResult> {
    const replica = this.replicas.get(name) ?? null;
    if (replica?.health === 'healthy') return Promise.resolve({ outcome: 'healthy', replica, reason: null });
    return Promise.resolve({ outcome: 'unhealthy', replica, reason: 'probe failed' });
  }

  watchReplica(name: string): Promise<ReplicaWaitResult> {
    return this.awaitReplica(name);
  }

  removeReplica(name: string): Promise<void> {
    this.replicas.delete(name);
    return Promise.resolve();
  }

  setMeshRoutes = (): Promise<void> => Promise.resolve();
  close = (): Promise<void> => Promise.resolve();
}

const ARMORED = `|
    -----BEGIN AGE ENCRYPTED FILE-----
    YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSAuLi4K
    -----END AGE ENCRYPTED FILE-----`;

function web(image: string, extra = ''): Record<string, string> {
  return {
    'web.yaml': `apiVersion: berth/v1
kind: Service
metadata: { name: web }
spec:
  image: ${image}
  replicas: 2
  update: { monitor: 0s }
  rollback: { monitor: 0s }
${extra}`,
  };
}

const withSecret = (image: string): Record<string, string> => ({
  ...web(image, '  secrets: [{ source: db, key: password }]\n'),
  'db.yaml': `apiVersion: berth/v1\nkind: Secret\nmetadata: { name: db }\ndata:\n  password: ${ARMORED}\n`,
});

describe('reconcile, step by step on fakes', () => {
  let dir = '';
  let source: FakeSource;
  let agent: FakeAgent;
  let deps: ReconcileDeps;
  const images = (): string[] => [...agent.replicas.values()].map((r) => `${r.revision}:${r.health}`).sort();

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-reconcile-'));
    source = new FakeSource();
    agent = new FakeAgent('n1');
    deps = {
      source,
      agents: () => new Map([['n1', agent]]),
      store: new StateStore(dir),
      log: silentLogger(),
      readSecret: null,
    };
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('the head rolls out, becomes the last good revision, and a second reconcile changes nothing', async () => {
    source.commit('r1', web('web:v1'));
    const first = await reconcile(deps);
    assert.deepEqual([first.outcome, first.targetRevision, first.error], ['succeeded', 'r1', null]);
    assert.deepEqual(images(), ['r1:healthy', 'r1:healthy']);
    assert.equal((await deps.store.read()).lastGood?.revision, 'r1');
    const second = await reconcile(deps);
    assert.deepEqual([second.outcome, second.rollout], ['unchanged', null]);
    assert.deepEqual(
      (await deps.store.readHistory()).map((e) => [e.revision, e.outcome]),
      [['r1', 'succeeded']],
    );
  });

  for (const [what, files, code] of [
    ['invalid manifests', web('web:v2', '  replicas: three\n'), 'ERR_MANIFEST_INVALID'],
    [
      'a published UDP port',
      web('web:v2', '  ports: [{ target: 53, published: 53, protocol: udp }]\n'),
      'ERR_NOT_SUPPORTED',
    ],
    ['a secret without a key', withSecret('web:v2'), 'ERR_SECRET_UNREADABLE'],
  ] as const) {
    test(`a head refused by preflight (${what}) is recorded as failed; the last good revision stays`, async () => {
      source.commit('r1', web('web:v1'));
      await reconcile(deps);
      source.commit('r2', files);
      const result = await reconcile(deps);
      assert.deepEqual([result.outcome, result.targetRevision, result.error?.code], ['failed', 'r1', code]);
      assert.deepEqual(images(), ['r1:healthy', 'r1:healthy']);
      const state = await deps.store.read();
      assert.equal(state.failed['r2']?.code, code);
      assert.equal(state.lastGood?.revision, 'r1');
      // Not retried: the next reconcile reads the record and does not load the head again.
      const again = await reconcile(deps);
      assert.deepEqual([again.outcome, again.targetRevision, again.error?.code], ['failed', 'r1', code]);
    });
  }

  test('a rollout that fails its checks is rolled back to the last good revision and not retried', async () => {
    source.commit('r1', web('web:v1'));
    await reconcile(deps);
    source.commit('r2', web('web:bad'));
    const result = await reconcile(deps);
    assert.equal(result.outcome, 'rolled back');
    assert.equal(result.error?.code, 'ERR_ROLLOUT_UNHEALTHY');
    assert.equal(result.error?.disposition, 'terminal');
    assert.deepEqual(images(), ['r1:healthy', 'r1:healthy']);
    const again = await reconcile(deps);
    assert.deepEqual([again.outcome, again.targetRevision, again.rollout], ['failed', 'r1', null]);
  });
});

describe('reconcile on fakes: nothing to converge on', () => {
  let dir = '';
  let source: FakeSource;
  let agent: FakeAgent;
  let deps: ReconcileDeps;
  const images = (): string[] => [...agent.replicas.values()].map((r) => `${r.revision}:${r.health}`).sort();
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-reconcile-'));
    source = new FakeSource();
    agent = new FakeAgent('n1');
    deps = {
      source,
      agents: () => new Map([['n1', agent]]),
      store: new StateStore(dir),
      log: silentLogger(),
      readSecret: null,
    };
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('with no good revision yet, a refused head leaves nothing to converge on', async () => {
    source.commit('r1', web('web:v1', '  replicas: three\n'));
    const result = await reconcile(deps);
    assert.deepEqual(
      [result.outcome, result.targetRevision, result.error?.code],
      ['failed', null, 'ERR_MANIFEST_INVALID'],
    );
    assert.deepEqual(images(), []);
  });

  test('the deployed revision whose secret no longer decrypts is not marked failed', async () => {
    source.commit('r1', withSecret('web:v1'));
    await deps.store.update((s) => {
      s.lastGood = { revision: 'r1', at: new Date(0).toISOString() };
    });
    const result = await reconcile(deps);
    assert.deepEqual(
      [result.outcome, result.targetRevision, result.error?.code],
      ['failed', null, 'ERR_SECRET_UNREADABLE'],
    );
    assert.deepEqual((await deps.store.read()).failed, {});
  });

  test('no node answering is an error to retry, not a plan that places everything nowhere', async () => {
    source.commit('r1', web('web:v1'));
    agent.down = true;
    await assert.rejects(reconcile(deps), (error: BerthError) => {
      assert.equal(error.code, 'ERR_AGENT_UNREACHABLE');
      assert.equal(error.disposition, 'transient');
      return true;
    });
    assert.equal((await deps.store.read()).lastGood, null);
  });
});

describe('the operator acts on what a reconcile reports', () => {
  test('stalled by a bad commit, woken by the next; an unreachable node is retried, and stop() cancels the retry', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-operator-'));
    const source = new FakeSource();
    const agent = new FakeAgent('n1');
    const store = new StateStore(dir);
    const metrics = new OperatorMetrics();
    const operator = new Operator({
      ...{ source, store, metrics, log: silentLogger(), readSecret: null },
      agents: () => new Map([['n1', agent]]),
      schedule: null,
      watchRepo: null,
    });
    const holding = (): string =>
      operator.conditions
        .filter((c) => c.status === 'True')
        .map((c) => `${c.type}/${c.reason}`)
        .join();
    try {
      source.commit('r1', web('web:v1'));
      await operator.trigger('test');
      assert.equal(holding(), 'Ready/ReconciliationSucceeded');

      source.commit('r2', web('web:v2', '  replicas: three\n'));
      await operator.trigger('watch');
      assert.equal(holding(), 'Stalled/RevisionInvalid');
      const recorded = await store.readConditions();
      assert.deepEqual(recorded?.conditions, operator.conditions);
      assert.match(await metrics.registry.metrics(), /berth_condition\{type="Stalled",status="True"\} 1/);

      source.commit('r3', web('web:v3'));
      await operator.trigger('webhook:github');
      assert.equal(holding(), 'Ready/ReconciliationSucceeded');

      agent.down = true;
      source.commit('r4', web('web:v4'));
      assert.equal(await operator.trigger('api'), null);
      assert.equal(holding(), 'Reconciling/AgentUnreachable');
      assert.match(operator.conditions[0]!.message, /retrying in 1s \(attempt 1\)$/);
    } finally {
      await operator.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the one fallback rule', () => {
  const cases: [head: string, headFailed: boolean, lastGood: string | null, target: string | null][] = [
    ['h', false, null, 'h'],
    ['h', false, 'g', 'h'],
    ['h', true, 'g', 'g'],
    ['h', true, null, null],
    ['h', true, 'h', null],
  ];
  for (const [head, failed, lastGood, target] of cases) {
    test(`head ${head}${failed ? ' failed' : ''}, last good ${lastGood ?? 'none'} -> ${target ?? 'nothing'}`, () => {
      assert.equal(targetRevision(head, failed, lastGood), target);
    });
  }
});
