import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type {
  NodeAgent,
  NodeSnapshot,
  ObservedReplica,
  ObservedVolume,
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

/**
 * A node whose replicas are records; images named `...:bad` never become healthy, `...:flaky`
 * ones do and then fail their monitor window. `loseOn` decides which call loses the node (its
 * agent goes away during that call); a lost node is down from then on.
 */
class FakeAgent implements NodeAgent {
  readonly replicas = new Map<string, ObservedReplica>();
  private readonly images = new Map<string, string>();
  down = false;
  loseOn: ((call: string) => boolean) | null = null;
  constructor(readonly name: string) {}

  private guard(call: string): void {
    if (this.down) throw new BerthError('ERR_AGENT_UNREACHABLE', `node ${this.name} is not connected`);
    if (!this.loseOn?.(call)) return;
    this.down = true;
    throw new BerthError(
      'ERR_AGENT_UNREACHABLE',
      `node ${this.name} went away during a call: its connection closed`,
    );
  }

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

  async ensureReplica(request: ReplicaRequest): Promise<ObservedReplica> {
    this.guard('ensureReplica');
    this.images.set(request.name, request.image);
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
    return replica;
  }

  async prepareReplica(): Promise<void> {
    this.guard('prepareReplica');
  }

  async awaitReplica(name: string): Promise<ReplicaWaitResult> {
    this.guard('awaitReplica');
    const replica = this.replicas.get(name) ?? null;
    if (replica?.health === 'healthy') return { outcome: 'healthy', replica, reason: null };
    return { outcome: 'unhealthy', replica, reason: 'probe failed' };
  }

  async watchReplica(name: string): Promise<ReplicaWaitResult> {
    this.guard('watchReplica');
    if (this.images.get(name)?.endsWith(':flaky')) {
      return { outcome: 'unhealthy', replica: this.replicas.get(name) ?? null, reason: 'probe failed' };
    }
    return this.awaitReplica(name);
  }

  async listVolumes(): Promise<ObservedVolume[]> {
    return [];
  }

  async removeVolume(): Promise<void> {}

  async awaitChange(): Promise<{ mark: string }> {
    this.guard('awaitChange');
    return { mark: 'fake' };
  }

  async removeReplica(name: string): Promise<void> {
    this.guard('removeReplica');
    this.replicas.delete(name);
  }

  setMeshRoutes = (): Promise<void> => Promise.resolve();
  logs = (): never => {
    throw new Error('no logs in this test');
  };
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
      berthPorts: [{ port: 9000, use: "this operator's API port (berth run --listen)" }],
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
    [
      'a published port berth listens on',
      web('web:v2', '  ports: [{ target: 80, published: 9000 }]\n'),
      'ERR_NOT_SUPPORTED',
    ],
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

/** `web` with its own replicas and update/rollback policies (YAML flow maps). */
function webService(
  image: string,
  replicas: number,
  update: string,
  rollback = '{ monitor: 0s }',
): Record<string, string> {
  return {
    'web.yaml': `apiVersion: berth/v1
kind: Service
metadata: { name: web }
spec:
  image: ${image}
  replicas: ${replicas}
  update: ${update}
  rollback: ${rollback}
`,
  };
}

/** Loses the node at its first call named `call`. */
const firstCall =
  (call: string) =>
  (name: string): boolean =>
    name === call;

describe('reconcile on fakes: a node lost is never blamed on the revision', () => {
  let dir = '';
  let source: FakeSource;
  let n1: FakeAgent;
  let n2: FakeAgent;
  let deps: ReconcileDeps;
  const all = (): ObservedReplica[] => [...n1.replicas.values(), ...n2.replicas.values()];
  const revisions = (agent: FakeAgent): string[] =>
    [...agent.replicas.values()].map((r) => r.revision).sort();
  const outcomes = async (): Promise<string[]> =>
    (await deps.store.readHistory()).map((e) => `${e.revision}:${e.outcome}`);
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-reconcile-'));
    source = new FakeSource();
    n1 = new FakeAgent('n1');
    n2 = new FakeAgent('n2');
    deps = {
      source,
      agents: () =>
        new Map([
          ['n1', n1],
          ['n2', n2],
        ]),
      store: new StateStore(dir),
      log: silentLogger(),
      readSecret: null,
    };
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('lost mid-rollout: interrupted, not failed, not rolled back, nothing removed; the next reconcile moves its replicas', async () => {
    source.commit('r1', webService('web:v1', 4, '{ monitor: 0s }'));
    assert.equal((await reconcile(deps)).outcome, 'succeeded');
    assert.deepEqual([revisions(n1).length, revisions(n2).length], [2, 2]);
    source.commit('r2', webService('web:v2', 4, '{ parallelism: 1, monitor: 0s }'));
    n2.loseOn = firstCall('awaitReplica');
    const result = await reconcile(deps);
    assert.deepEqual([result.outcome, result.rollback], ['interrupted', null]);
    assert.equal(result.error?.code, 'ERR_AGENT_UNREACHABLE');
    assert.equal(result.error?.disposition, 'transient');
    assert.match(
      result.reason ?? '',
      /^default\/web: node n2 lost during the rollout \(node n2 went away during a call/,
    );
    const state = await deps.store.read();
    assert.deepEqual([state.failed, state.lastGood?.revision], [{}, 'r1']);
    // Every replica the rollout started on the node that stayed is still there: nothing was undone.
    const started = result.rollout?.services[0]?.started.filter((r) => r.node === 'n1') ?? [];
    assert.ok(started.every((r) => n1.replicas.has(r.name)));
    assert.equal(revisions(n1).length, 2);
    const history = await deps.store.readHistory();
    assert.deepEqual(await outcomes(), ['r1:succeeded', 'r2:interrupted']);
    assert.match(
      history.at(-1)?.reason ?? '',
      /node n2 lost during the rollout .*; 2 replicas on it move to the other nodes/,
    );

    const next = await reconcile(deps);
    assert.deepEqual([next.outcome, next.error], ['succeeded', null]);
    assert.deepEqual(revisions(n1), ['r2', 'r2', 'r2', 'r2']);
    assert.equal((await deps.store.read()).lastGood?.revision, 'r2');
    assert.ok(!(await outcomes()).some((o) => /rolled back|rollback/.test(o)));
  });

  test('lost in the monitor window: interrupted, and the revision is not held as failed', async () => {
    source.commit('r1', webService('web:v1', 2, '{ monitor: 0s }'));
    await reconcile(deps);
    source.commit('r2', webService('web:v2', 2, '{ parallelism: 2, monitor: 1s }'));
    n2.loseOn = firstCall('watchReplica');
    const result = await reconcile(deps);
    assert.deepEqual([result.outcome, result.error?.disposition], ['interrupted', 'transient']);
    assert.deepEqual((await deps.store.read()).failed, {});
    assert.equal((await reconcile(deps)).outcome, 'succeeded');
    assert.deepEqual(revisions(n1), ['r2', 'r2']);
  });

  test('lost during a rollback: the failed revision stays failed, and the next reconcile finishes the way back', async () => {
    source.commit('r1', webService('web:v1', 2, '{ monitor: 0s }'));
    await reconcile(deps);
    source.commit(
      'r2',
      webService('web:flaky', 2, '{ parallelism: 2, monitor: 1s }', '{ parallelism: 1, monitor: 0s }'),
    );
    deps.onRollout = (start) => {
      if (start.kind === 'rollback') n2.loseOn = firstCall('ensureReplica');
    };
    const result = await reconcile(deps);
    assert.equal(result.outcome, 'failed');
    assert.equal(result.rollback?.outcome, 'interrupted');
    assert.deepEqual([result.error?.code, result.error?.disposition], ['ERR_AGENT_UNREACHABLE', 'transient']);
    assert.match(result.error?.message ?? '', /the rollback to r1 was interrupted \(node n2/);
    const state = await deps.store.read();
    assert.equal(state.failed['r2']?.code, 'ERR_ROLLOUT_UNHEALTHY');
    assert.equal(state.lastGood?.revision, 'r1');
    assert.deepEqual(await outcomes(), ['r1:succeeded', 'r1:interrupted', 'r2:rollback interrupted']);

    delete deps.onRollout;
    const next = await reconcile(deps);
    assert.deepEqual(
      [next.targetRevision, next.rollout?.outcome, next.error?.code],
      ['r1', 'succeeded', 'ERR_ROLLOUT_UNHEALTHY'],
    );
    assert.deepEqual(revisions(n1), ['r1', 'r1']);
  });

  test('with no earlier good revision, a revision`s own failure removes only the replicas it started', async () => {
    source.commit('r0', webService('web:v1', 2, '{ monitor: 0s }'));
    await reconcile(deps);
    await deps.store.update((s) => void (s.lastGood = null));
    const before = all()
      .map((r) => r.name)
      .sort();
    source.commit('r1', webService('web:bad', 2, '{ parallelism: 2, monitor: 0s }'));
    const result = await reconcile(deps);
    assert.deepEqual([result.outcome, result.rollback], ['rolled back', null]);
    assert.equal(result.rollout?.services[0]?.started.length, 2);
    assert.deepEqual(
      all()
        .map((r) => r.name)
        .sort(),
      before,
    );
  });

  test('with no earlier good revision, a node lost removes nothing', async () => {
    source.commit('r0', webService('web:v1', 2, '{ monitor: 0s }'));
    await reconcile(deps);
    await deps.store.update((s) => void (s.lastGood = null));
    const onN2 = [...n2.replicas.keys()];
    source.commit('r1', webService('web:v2', 2, '{ parallelism: 2, monitor: 0s }'));
    n2.loseOn = firstCall('awaitReplica');
    const result = await reconcile(deps);
    assert.equal(result.outcome, 'interrupted');
    const started = result.rollout?.services[0]?.started ?? [];
    assert.ok(started.length > 0);
    assert.ok(started.every((r) => (r.node === 'n1' ? n1 : n2).replicas.has(r.name)));
    assert.ok(onN2.every((name) => n2.replicas.has(name)));
    assert.deepEqual((await deps.store.read()).failed, {});
  });
});
