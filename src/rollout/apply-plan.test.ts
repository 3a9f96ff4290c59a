import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
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
import type { DesiredState, ServiceSpec, UpdatePolicySpec } from '../manifests/types.js';
import { computePlan } from '../plan/compute-plan.js';
import { applyPlan } from './apply-plan.js';

/**
 * An in-memory node for fast tests of the rollout logic only (the same behaviour is proven on a
 * real engine in test/operator). Images decide how a replica behaves: `ok:*` becomes healthy,
 * `bad:*` never does, `flaky:*` becomes healthy and then fails inside the monitor window.
 */
class MemoryNode implements NodeAgent {
  readonly name = 'n1';
  readonly replicas = new Map<string, ObservedReplica>();
  /** Lowest number of healthy replicas seen at any moment. */
  minHealthy = Number.POSITIVE_INFINITY;
  readonly log: string[] = [];
  /**
   * Set by a test: decides, call by call, when the node is lost. `agent`: the call fails as the
   * agent's connection drops; `engine`: a watched replica dies with its engine, which then stops
   * answering. A lost node fails every later call.
   */
  loseOn: ((call: string) => 'agent' | 'engine' | null) | null = null;
  lost = false;

  /** Throws as a lost node's agent would; true when this call loses the engine under it. */
  private guard(call: string): boolean {
    if (this.lost) throw new BerthError('ERR_AGENT_UNREACHABLE', `node ${this.name} is not connected`);
    const loss = this.loseOn?.(call) ?? null;
    if (loss === null) return false;
    this.lost = true;
    if (loss === 'agent')
      throw new BerthError(
        'ERR_AGENT_UNREACHABLE',
        `node ${this.name} went away during a call: its connection closed`,
      );
    return true;
  }

  private track(): void {
    this.minHealthy = Math.min(
      this.minHealthy,
      [...this.replicas.values()].filter((r) => r.health === 'healthy').length,
    );
  }

  add(r: ObservedReplica): void {
    this.replicas.set(r.name, r);
  }

  snapshot(): Promise<NodeSnapshot> {
    if (this.lost)
      return Promise.reject(new BerthError('ERR_DOCKER_UNAVAILABLE', 'the engine does not answer'));
    return Promise.resolve({
      name: this.name,
      address: '127.0.0.1',
      labels: {},
      capacity: { nanoCpus: 4e9, memoryBytes: 2 ** 33 },
      engineVersion: 'memory',
      status: 'ready',
      images: [],
      replicas: [...this.replicas.values()],
    });
  }

  async ensureReplica(request: ReplicaRequest): Promise<ObservedReplica> {
    await tick();
    this.guard('ensureReplica');
    if (request.image.startsWith('missing:'))
      throw new BerthError(
        'ERR_IMAGE_NOT_FOUND',
        `image ${request.image} is not present on node ${this.name}`,
      );
    const replica: ObservedReplica = {
      name: request.name,
      id: request.name,
      node: this.name,
      namespace: request.namespace,
      service: request.service,
      slot: request.slot,
      specHash: request.specHash,
      revision: request.revision,
      state: 'running',
      health: 'starting',
      healthDetail: null,
      exitCode: null,
      restartCount: 0,
      createdAt: new Date().toISOString(),
      startedAt: new Date().toISOString(),
      ports: [],
      specSummary: request.specSummary,
    };
    this.replicas.set(request.name, replica);
    this.prepared.delete(request.name);
    this.log.push(`start ${request.slot} ${request.image}`);
    return replica;
  }

  /** Containers created but not started (prepareReplica), by name; and every slot ever prepared. */
  readonly prepared = new Set<string>();
  readonly prepares: string[] = [];

  async prepareReplica(request: ReplicaRequest): Promise<void> {
    await tick();
    this.guard('prepareReplica');
    if (request.image.startsWith('missing:')) throw new BerthError('ERR_IMAGE_NOT_FOUND', 'no such image');
    this.prepares.push(request.slot);
    if (!this.replicas.has(request.name)) this.prepared.add(request.name);
  }

  async awaitReplica(name: string): Promise<ReplicaWaitResult> {
    await tick();
    this.guard('awaitReplica');
    const r = this.replicas.get(name);
    if (!r) return { outcome: 'missing', replica: null, reason: 'gone' };
    const image = imageOf(r);
    if (image.startsWith('bad:')) {
      r.health = 'unhealthy';
      this.track();
      return { outcome: 'unhealthy', replica: r, reason: 'probe failed' };
    }
    r.health = 'healthy';
    this.track();
    return { outcome: 'healthy', replica: r, reason: null };
  }

  async watchReplica(name: string): Promise<ReplicaWaitResult> {
    await tick();
    const r = this.replicas.get(name);
    if (this.guard('watchReplica'))
      return { outcome: 'exited', replica: r ?? null, reason: 'exited with 137' };
    if (r && imageOf(r).startsWith('flaky:')) {
      r.state = 'exited';
      r.health = 'unhealthy';
      this.track();
      return { outcome: 'exited', replica: r, reason: 'exited with 1' };
    }
    return { outcome: 'healthy', replica: r ?? null, reason: null };
  }

  async listVolumes(): Promise<ObservedVolume[]> {
    return [];
  }

  async removeVolume(): Promise<void> {}
  async awaitChange(): Promise<{ mark: string }> {
    return { mark: 'memory' };
  }

  async removeReplica(name: string): Promise<void> {
    await tick();
    this.guard('removeReplica');
    const r = this.replicas.get(name);
    if (r) this.log.push(`remove ${r.slot} ${imageOf(r)}`);
    this.replicas.delete(name);
    this.prepared.delete(name);
    this.track();
  }

  async setMeshRoutes(): Promise<void> {
    await tick();
  }

  logs(): never {
    throw new Error('no logs in this test');
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

const imageOf = (r: ObservedReplica): string => (r.specSummary as { image?: string } | null)?.image ?? '';

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 1));

function policy(overrides: Partial<UpdatePolicySpec> = {}): UpdatePolicySpec {
  return {
    parallelism: 1,
    delayMs: 0,
    order: 'start-first',
    monitorMs: 10,
    failureAction: 'rollback',
    maxFailureRatio: 0,
    progressDeadlineMs: 60_000,
    ...overrides,
  };
}

function service(image: string, replicas: number, update: UpdatePolicySpec): ServiceSpec {
  return {
    kind: 'Service',
    name: 'web',
    namespace: 'default',
    labels: {},
    image,
    command: null,
    args: null,
    env: {},
    envFrom: [],
    mode: 'replicated',
    replicas,
    ports: [],
    configs: [],
    secrets: [],
    healthcheck: null,
    resources: { limits: { nanoCpus: 0, memoryBytes: 0 }, reservations: { nanoCpus: 0, memoryBytes: 0 } },
    placement: { constraints: [], spread: null, maxPerNode: 0 },
    update,
    rollback: update,
    restart: { condition: 'any', maxAttempts: 0 },
    stopGracePeriodMs: 1000,
    user: null,
    readOnlyRootFilesystem: false,
    capabilities: { drop: [], add: [] },
    workingDir: null,
    init: false,
    volumes: [],
    tmpfs: [],
    volumeReclaim: 'retain',
  };
}

const state = (spec: ServiceSpec, revision: string): DesiredState => ({
  revision,
  services: [spec],
  configs: [],
  secrets: [],
  namespaces: [],
});

/**
 * Deploys `ok:v1` on a fresh memory node, then rolls it to `image` with `update`; `loseOn` (if
 * given) decides when the node is lost during that second rollout.
 */
async function rollTo(
  image: string,
  replicas: number,
  update: UpdatePolicySpec,
  loseOn: MemoryNode['loseOn'] = null,
) {
  const node = new MemoryNode();
  const agents = new Map([[node.name, node]]);
  const v1 = state(service('ok:v1', replicas, update), 'r1');
  await applyPlan(computePlan(v1, { nodes: [await node.snapshot()] }), {
    agents,
    readSecret: null,
    log: silentLogger(),
  });
  node.minHealthy = Number.POSITIVE_INFINITY;
  node.log.length = 0;
  node.prepares.length = 0;
  const v2 = state(service(image, replicas, update), 'r2');
  const plan = computePlan(v2, { nodes: [await node.snapshot()] });
  node.loseOn = loseOn;
  const result = await applyPlan(plan, { agents, readSecret: null, log: silentLogger(), nodeSettleMs: 20 });
  const images = [...node.replicas.values()].map((r) => imageOf(r)).sort();
  return { node, result, images };
}

describe('applyPlan', () => {
  test('start-first never drops below the desired healthy replicas', async () => {
    const { node, result, images } = await rollTo('ok:v2', 4, policy({ parallelism: 2 }));
    assert.equal(result.outcome, 'succeeded');
    assert.deepEqual(images, ['ok:v2', 'ok:v2', 'ok:v2', 'ok:v2']);
    assert.equal(node.minHealthy, 4);
  });

  test('stop-first removes the old replica of a slot before starting the new one', async () => {
    const { node, result, images } = await rollTo('ok:v2', 2, policy({ order: 'stop-first' }));
    assert.equal(result.outcome, 'succeeded');
    assert.deepEqual(images, ['ok:v2', 'ok:v2']);
    assert.deepEqual(node.log, ['remove 1 ok:v1', 'start 1 ok:v2', 'remove 2 ok:v1', 'start 2 ok:v2']);
  });

  test('an unhealthy batch stops the rollout; untouched slots and the failed slot keep their old replica', async () => {
    const { result, images, node } = await rollTo('bad:v2', 3, policy());
    assert.equal(result.outcome, 'failed');
    assert.deepEqual(result.failure?.action, 'rollback');
    assert.match(result.failure?.reason ?? '', /probe failed/);
    assert.deepEqual(node.log, ['start 1 bad:v2']);
    assert.deepEqual(images, ['bad:v2', 'ok:v1', 'ok:v1', 'ok:v1']);
  });

  test('start-first creates the next batch ahead while the current one is checked; its start takes them', async () => {
    const { node, result } = await rollTo('ok:v2', 6, policy({ parallelism: 2 }));
    assert.equal(result.outcome, 'succeeded');
    assert.deepEqual(node.prepares, ['3', '4', '5', '6']);
    assert.deepEqual([...node.prepared], []);
  });

  test('the next batch is created ahead while the current one is still starting, not only once it runs', async () => {
    const node = new MemoryNode();
    const agents = new Map([[node.name, node]]);
    await applyPlan(
      computePlan(state(service('ok:v1', 2, policy()), 'r1'), { nodes: [await node.snapshot()] }),
      {
        agents,
        readSecret: null,
        log: silentLogger(),
      },
    );
    node.prepares.length = 0;
    // The start of slot 1 returns only once slot 2 is being created ahead: waiting for the start
    // to return before creating ahead would never get there.
    let preparing: () => void = () => {};
    const secondPrepared = new Promise<void>((resolve) => (preparing = resolve));
    const ensure = node.ensureReplica.bind(node);
    const prepare = node.prepareReplica.bind(node);
    node.prepareReplica = (request) => {
      if (request.slot === '2') preparing();
      return prepare(request);
    };
    node.ensureReplica = async (request) => {
      if (request.slot === '1') await secondPrepared;
      return ensure(request);
    };
    const plan = computePlan(state(service('ok:v2', 2, policy()), 'r2'), { nodes: [await node.snapshot()] });
    const result = await applyPlan(plan, { agents, readSecret: null, log: silentLogger() });
    assert.equal(result.outcome, 'succeeded');
    assert.deepEqual(node.prepares, ['2']);
  });

  test('a failed batch removes the containers created ahead for the next one', async () => {
    const { node, result } = await rollTo('bad:v2', 3, policy());
    assert.equal(result.outcome, 'failed');
    assert.deepEqual(node.prepares, ['2']);
    assert.deepEqual([...node.prepared], []);
  });

  test('stop-first creates nothing ahead: the old replica goes first', async () => {
    const { node } = await rollTo('ok:v2', 3, policy({ order: 'stop-first' }));
    assert.deepEqual(node.prepares, []);
  });

  test('an image that does not exist fails the rollout: the revision`s own fault, not its node`s', async () => {
    const { result } = await rollTo('missing:v2', 2, policy());
    assert.deepEqual([result.outcome, result.interruption], ['failed', null]);
    assert.match(result.failure?.reason ?? '', /image missing:v2 is not present/);
  });

  test('a failure inside the monitor window fails the rollout', async () => {
    const { result } = await rollTo('flaky:v2', 2, policy());
    assert.equal(result.outcome, 'failed');
    assert.match(result.failure?.reason ?? '', /monitor window/);
  });

  test('failures within maxFailureRatio let the rollout finish', async () => {
    const { result, images } = await rollTo(
      'bad:v2',
      2,
      policy({ maxFailureRatio: 1, failureAction: 'pause' }),
    );
    assert.equal(result.outcome, 'succeeded');
    assert.deepEqual(images, ['bad:v2', 'bad:v2', 'ok:v1', 'ok:v1']);
  });
});

/** Loses the node at the `n`th call named `call` (1-based), the way `how` says. */
function atCall(call: string, n: number, how: 'agent' | 'engine'): MemoryNode['loseOn'] {
  let seen = 0;
  return (name) => (name === call && ++seen === n ? how : null);
}

describe('applyPlan when the node is lost: interrupted, never failed', () => {
  for (const [what, loseOn] of [
    ['its agent goes away mid-batch, while a new replica is awaited', atCall('awaitReplica', 2, 'agent')],
    ['its agent goes away as a new replica is sent', atCall('ensureReplica', 3, 'agent')],
    ['its agent goes away in the monitor window', atCall('watchReplica', 2, 'agent')],
    [
      'its engine stops in the monitor window (the replica dies, then nothing answers)',
      atCall('watchReplica', 1, 'engine'),
    ],
    ['its agent goes away as an old replica is removed (stop-first)', atCall('removeReplica', 2, 'agent')],
  ] as const) {
    test(what, async () => {
      const order = what.includes('stop-first') ? 'stop-first' : 'start-first';
      const { result } = await rollTo('ok:v2', 3, policy({ order, monitorMs: 10 }), loseOn);
      assert.equal(result.outcome, 'interrupted');
      assert.equal(result.failure, null);
      assert.equal(result.interruption?.node, 'n1');
      assert.equal(result.interruption?.service, 'default/web');
      assert.equal(result.services[0]?.outcome, 'interrupted');
      assert.match(result.services[0]?.reason ?? '', /went away during a call|does not answer|not connected/);
    });
  }

  test('a revision failure beside a lost node is still the revision`s: it decides the outcome', async () => {
    const { result } = await rollTo('bad:v2', 2, policy({ parallelism: 2 }), (call) =>
      call === 'removeReplica' ? 'agent' : null,
    );
    assert.equal(result.outcome, 'failed');
    assert.match(result.failure?.reason ?? '', /probe failed/);
  });

  test('the operator stopping interrupts the rollout; nothing is blamed on the revision', async () => {
    const node = new MemoryNode();
    const stop = new AbortController();
    stop.abort();
    const v1 = state(service('ok:v1', 2, policy()), 'r1');
    const result = await applyPlan(computePlan(v1, { nodes: [await node.snapshot()] }), {
      agents: new Map([[node.name, node]]),
      readSecret: null,
      log: silentLogger(),
      signal: stop.signal,
    });
    assert.deepEqual(
      [result.outcome, result.failure, result.interruption?.node],
      ['interrupted', null, null],
    );
    assert.match(result.interruption?.reason ?? '', /operator is stopping/);
  });
});
