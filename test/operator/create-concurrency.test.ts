/**
 * `berth run --create-concurrency N`: services with no order between them roll in parallel, but
 * a node creates and starts at most N replicas at once. Measured on the engine's own record: a
 * replica's create is in flight from its container's creation time to its start time, so at no
 * instant may more than N of those intervals overlap.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Docker from 'dockerode';
import { eventually, runBerth, SCHEDULE_NEVER, startBerth, targetArgs } from '../helpers/berth-cli.js';
import type { BerthProcess } from '../helpers/berth-cli.js';
import { requireTestImages } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, sleeperService } from '../helpers/manifests.js';
import { removeNamespace } from './cluster-probe.js';

const ns = `cc${Date.now().toString(36)}`;
const node = `test-${ns}`;
const SERVICES = 20;
const LIMIT = 2;
const docker = new Docker();

/** The most intervals that hold one instant in common. */
function mostOverlapping(intervals: { from: number; to: number }[]): number {
  // Ends sort before starts at the same instant: touching intervals do not overlap.
  const edges = intervals
    .flatMap(({ from, to }) => [
      { at: from, step: 1 },
      { at: to, step: -1 },
    ])
    .sort((a, b) => a.at - b.at || a.step - b.step);
  let open = 0;
  let most = 0;
  for (const edge of edges) {
    open += edge.step;
    most = Math.max(most, open);
  }
  return most;
}

/** Docker's timestamps carry nanoseconds; microseconds are enough to order them. */
const micros = (stamp: string): number => {
  const [whole, fraction = '0'] = stamp.replace(/Z$/, '').split('.');
  return Date.parse(`${whole}Z`) * 1000 + Number(fraction.padEnd(6, '0').slice(0, 6));
};

describe('the per-node create concurrency of a rollout (berth run, real engine)', () => {
  let repo: TestRepo;
  let stateDir: string;
  let operator: BerthProcess | null = null;

  before(async () => {
    await requireTestImages();
    const services = Array.from({ length: SERVICES }, (_, i) =>
      sleeperService({ name: `s${i}`, namespace: ns }),
    );
    repo = await createTestRepo({ 'deploy/all.yaml': manifestFile(namespaceManifest(ns), ...services) });
    stateDir = await mkdtemp(join(tmpdir(), 'berth-create-concurrency-'));
  });
  after(async () => {
    await operator?.stop('SIGKILL');
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test(`${SERVICES} independent services converge, never more than ${LIMIT} creates in flight`, async () => {
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node }),
      ...SCHEDULE_NEVER,
      ...['--create-concurrency', String(LIMIT)],
    ]);
    const containers = await eventually(
      `${SERVICES} services running`,
      async () => {
        const list = await docker.listContainers({ filters: { label: [`berth.namespace=${ns}`] } });
        return list.length === SERVICES ? list : null;
      },
      240_000,
      500,
    );
    const inspected = await Promise.all(containers.map((c) => docker.getContainer(c.Id).inspect()));
    const intervals = inspected.map((c) => ({ from: micros(c.Created), to: micros(c.State.StartedAt) }));
    assert.ok(
      intervals.every(({ from, to }) => from <= to),
      'every container started after it was created',
    );
    assert.ok(mostOverlapping(intervals) <= LIMIT, `more than ${LIMIT} creates in flight at once`);
    const services = new Set(inspected.map((c) => c.Config.Labels['berth.service']));
    assert.equal(services.size, SERVICES);
  });

  test('a create concurrency that is no whole number from 1 up is refused', async () => {
    const result = await runBerth([
      'run',
      ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node }),
      ...['--create-concurrency', '0'],
    ]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /--create-concurrency "0" is not a whole number from 1 to 256/);
  });
});
