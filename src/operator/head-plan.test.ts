import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ObservedState } from '../api/types.js';
import { loadManifests } from '../manifests/load.js';
import type { LoadResult } from '../manifests/types.js';
import { headPlan, type HeadPlanArgs } from './head-plan.js';
import type { OperatorState } from './state-store.js';

const HEAD = 'b'.repeat(40);
const GOOD = 'a'.repeat(40);
const WEB = `
apiVersion: berth/v1
kind: Service
metadata: { name: web }
spec: { image: web:v2, replicas: 2 }
`;

function load(yaml: string): LoadResult {
  return loadManifests([{ path: 'all.yaml', content: new TextEncoder().encode(yaml) }], { revision: HEAD });
}

const emptyCluster: ObservedState = {
  nodes: [
    {
      ...{ name: 'n1', address: '127.0.0.1', labels: {}, engineVersion: '27.0.0', status: 'ready' },
      ...{ capacity: { nanoCpus: 2e9, memoryBytes: 4e9 }, images: ['web:v2'], replicas: [] },
    },
  ],
};

function args(loaded: LoadResult, state: Partial<OperatorState>): HeadPlanArgs {
  return {
    source: { head: async () => HEAD, load: async () => loaded },
    store: { read: async () => ({ lastGood: { revision: GOOD, at: 't0' }, failed: {}, ...state }) },
    operator: { lastResult: null, conditions: [] },
    observe: async () => emptyCluster,
  };
}

test("the head's plan against the live cluster, and why a failed head is not deployed", async () => {
  const failed = { [HEAD]: { at: '2026-01-01T00:00:00.000Z', reason: 'web: never healthy' } };
  const plan = await headPlan(args(load(WEB), { failed }));
  assert.equal(plan.revision, HEAD);
  assert.equal(plan.deployed, GOOD);
  assert.equal(plan.hasChanges, true);
  assert.match(plan.text, /^Plan for bbbbbbbbbbbb: 1 to create/);
  assert.match(plan.text, /\+ default\/web: create/);
  assert.deepEqual(plan.failed, { at: '2026-01-01T00:00:00.000Z', reason: 'web: never healthy' });
  assert.equal(plan.why.length, 1);
  assert.match(plan.why[0]!, /bbbbbbbbbbbb failed at .* not tried again .*: web: never healthy/);
});

test('a head whose manifests do not load: its problems instead of a plan', async () => {
  const plan = await headPlan(
    args(load('kind: Service\nmetadata: { name: web }\nspec: { replicas: -1 }\n'), {}),
  );
  assert.equal(plan.hasChanges, null);
  assert.match(plan.text, /^bbbbbbbbbbbb cannot be applied:/);
  assert.match(plan.why.join('\n'), /last good revision is aaaaaaaaaaaa/);
});
