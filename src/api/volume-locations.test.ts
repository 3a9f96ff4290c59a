import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { silentLogger } from '../core/log.js';
import { observeCluster } from './observe-cluster.js';
import type { NodeAgent, NodeSnapshot, ObservedVolume } from './types.js';
import { keepVolumeLocationsIn, VOLUME_LOCATIONS_FILE, volumeLocations } from './volume-locations.js';

const volume: ObservedVolume = {
  name: 'berth.shop.db.data.1',
  namespace: 'shop',
  service: 'db',
  volume: 'data',
  slot: '1',
  driver: 'local',
  sizeBytes: 4096,
};

function node(name: string, volumes: ObservedVolume[]): NodeSnapshot {
  return {
    name,
    address: '127.0.0.1',
    labels: {},
    capacity: { nanoCpus: 1e9, memoryBytes: 1e9 },
    engineVersion: '27',
    status: 'ready',
    images: [],
    replicas: [],
    volumes,
  };
}

/** An agent that answers with `snapshot`, or fails as an unreachable node does when it is null. */
function agent(name: string, snapshot: NodeSnapshot | null): NodeAgent {
  return {
    name,
    snapshot: () => (snapshot ? Promise.resolve(snapshot) : Promise.reject(new Error('connection refused'))),
  } as unknown as NodeAgent;
}

const agents = (...list: NodeAgent[]): Map<string, NodeAgent> => new Map(list.map((a) => [a.name, a]));

describe('where volumes are, across operator restarts', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-volume-locations-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a node down when the operator restarts is reported with the volumes it had', async () => {
    keepVolumeLocationsIn(dir);
    await observeCluster(
      agents(agent('n1', node('n1', [])), agent('n2', node('n2', [volume]))),
      silentLogger(),
    );
    // A new process: nothing in memory, n2 does not answer.
    keepVolumeLocationsIn(dir);
    const observed = await observeCluster(
      agents(agent('n1', node('n1', [])), agent('n2', null)),
      silentLogger(),
    );
    const n2 = observed.nodes.find((n) => n.name === 'n2');
    assert.equal(n2?.status, 'down');
    assert.deepEqual(n2?.volumes, [{ ...volume, sizeBytes: null }]);
  });

  test('the record follows what a node reports, and sizes do not rewrite it', async () => {
    keepVolumeLocationsIn(dir);
    const path = join(dir, VOLUME_LOCATIONS_FILE);
    await observeCluster(agents(agent('n2', node('n2', [volume]))), silentLogger());
    const first = await readFile(path, 'utf8');
    await writeFile(path, first.replace('"n2"', '"marker"'));
    await observeCluster(agents(agent('n2', node('n2', [{ ...volume, sizeBytes: 8192 }]))), silentLogger());
    assert.match(await readFile(path, 'utf8'), /"marker"/, 'unchanged locations are not written again');
    await observeCluster(agents(agent('n2', node('n2', []))), silentLogger());
    assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), { nodes: {} }, 'the volume was removed');
  });

  test('a volume a replica was sent with counts from then, before its node ever reports it', async () => {
    keepVolumeLocationsIn(dir);
    volumeLocations().placed('n2', {
      namespace: 'shop',
      service: 'db',
      slot: '1',
      volumes: [
        {
          source: volume.name,
          volume: 'data',
          target: '/data',
          readOnly: false,
          driver: 'local',
          driverOptions: {},
        },
      ],
    });
    await volumeLocations().save(silentLogger());
    keepVolumeLocationsIn(dir);
    const observed = await observeCluster(agents(agent('n2', null)), silentLogger());
    assert.deepEqual(observed.nodes[0]?.volumes, [{ ...volume, sizeBytes: null }]);
  });

  test('a node removed from the cluster leaves the record', async () => {
    keepVolumeLocationsIn(dir);
    await observeCluster(
      agents(agent('n2', node('n2', [volume])), agent('n3', node('n3', []))),
      silentLogger(),
    );
    volumeLocations().forget('n2');
    await volumeLocations().save(silentLogger());
    keepVolumeLocationsIn(dir);
    assert.equal(volumeLocations().lastOf('n2'), undefined);
    assert.deepEqual(JSON.parse(await readFile(join(dir, VOLUME_LOCATIONS_FILE), 'utf8')), { nodes: {} });
  });

  test('a missing or unreadable record starts empty', async () => {
    await writeFile(join(dir, VOLUME_LOCATIONS_FILE), '{not json');
    keepVolumeLocationsIn(dir);
    const observed = await observeCluster(agents(agent('n2', null)), silentLogger());
    assert.deepEqual(observed.nodes[0]?.volumes, []);
  });
});
