import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadManifests } from '../manifests/load.js';
import type { DesiredState } from '../manifests/types.js';
import { computeOfflinePlan, observedStateOf } from './offline-plan.js';
import { renderPlanJson } from './render-plan.js';

function desiredOf(revision: string, yaml: string): DesiredState {
  const loaded = loadManifests([{ path: 'all.yaml', content: new TextEncoder().encode(yaml) }], { revision });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  return loaded.desired;
}

const service = (o: { image?: string; replicas?: number; zone?: string; mode?: string } = {}) => `
apiVersion: berth/v1
kind: Service
metadata: { name: web }
spec:
  image: ${o.image ?? 'web:v1'}
  ${o.mode === 'global' ? 'mode: global' : `replicas: ${o.replicas ?? 3}`}
  placement: { constraints: ["node.labels.zone == ${o.zone ?? 'a'}"], maxPerNode: 1 }
`;

describe('offline plans (a revision against another, from git alone)', () => {
  test('a revision against itself changes nothing, whatever its placement constraints', () => {
    for (const yaml of [service(), service({ mode: 'global' }), service({ replicas: 0 })]) {
      const base = desiredOf('r1', yaml);
      const plan = computeOfflinePlan(desiredOf('r2', yaml), base);
      assert.equal(plan.hasChanges, false, yaml);
      assert.deepEqual(
        plan.services.map((s) => s.pending),
        [[]],
      );
    }
  });

  test('the synthetic cluster runs every replica of the base revision, labelled like a rollout leaves it', () => {
    const observed = observedStateOf(desiredOf('r1', service({ replicas: 2 })));
    const replicas = observed.nodes.flatMap((n) => n.replicas);
    assert.deepEqual(
      replicas.map((r) => [r.slot, r.revision, r.state]),
      [
        ['1', 'r1', 'running'],
        ['2', 'r1', 'running'],
      ],
    );
    assert.equal(replicas[0]!.specSummary?.['image'], 'web:v1');
  });

  test('scaling shows as a replicas field change; an image change as an image field change', () => {
    const plan = computeOfflinePlan(
      desiredOf('r2', service({ image: 'web:v2', replicas: 5, zone: 'b' })),
      desiredOf('r1', service({ replicas: 3 })),
    );
    const web = plan.services[0]!;
    assert.equal(web.change, 'update');
    assert.deepEqual(web.fieldChanges, [
      { path: 'image', from: 'web:v1', to: 'web:v2' },
      { path: 'replicas', from: 3, to: 5 },
    ]);
    const scaledDown = computeOfflinePlan(
      desiredOf('r2', service({ replicas: 1 })),
      desiredOf('r1', service()),
    );
    assert.equal(scaledDown.services[0]!.change, 'scale');
    assert.deepEqual(scaledDown.services[0]!.fieldChanges, [{ path: 'replicas', from: 3, to: 1 }]);
  });

  test('json never carries a secret digest, only that it changed', () => {
    const json = renderPlanJson({
      revision: 'r2',
      against: 'r1',
      problems: [],
      plan: {
        revision: 'r2',
        hasChanges: true,
        secretCiphertexts: {},
        services: [
          {
            namespace: 'default',
            name: 'web',
            change: 'update',
            specHash: 'h',
            desiredReplicas: 1,
            currentReplicas: 0,
            fieldChanges: [{ path: 'secrets[0].digest', from: 'aaaa1111', to: 'bbbb2222' }],
            keep: [],
            batches: [],
            policy: {
              parallelism: 1,
              delayMs: 0,
              order: 'start-first',
              monitorMs: 0,
              failureAction: 'rollback',
              maxFailureRatio: 0,
              progressDeadlineMs: 1,
            },
            stopGracePeriodMs: 1000,
            pending: [],
          },
        ],
      },
    });
    assert.doesNotMatch(json, /aaaa1111|bbbb2222/);
    assert.match(json, /"\(secret, changed\)"/);
  });
});
