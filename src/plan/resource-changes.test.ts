import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DesiredState } from '../manifests/types.js';
import { computeResourceChanges } from './resource-changes.js';
import type { ServicePlan } from './types.js';

const empty: DesiredState = { revision: 'r0', services: [], configs: [], secrets: [], namespaces: [] };

function state(extra: Partial<DesiredState>): DesiredState {
  return { ...empty, ...extra };
}

test('new, changed and removed Namespaces, Configs and Secrets, each key named, Config text diffed', () => {
  const before = state({
    namespaces: [
      { kind: 'Namespace', name: 'shop', labels: { team: 'a' } },
      { kind: 'Namespace', name: 'old', labels: {} },
    ],
    configs: [
      { kind: 'Config', namespace: 'shop', name: 'site', data: { 'a.txt': 'one\ntwo\n', 'gone.txt': 'x' } },
    ],
    secrets: [{ kind: 'Secret', namespace: 'shop', name: 'db', data: { password: 'CIPHER-1' } }],
  });
  const after = state({
    namespaces: [{ kind: 'Namespace', name: 'shop', labels: { team: 'b' } }],
    configs: [
      { kind: 'Config', namespace: 'shop', name: 'site', data: { 'a.txt': 'one\nthree\n', 'new.txt': 'n' } },
      { kind: 'Config', namespace: 'shop', name: 'extra', data: { k: 'v' } },
    ],
    secrets: [
      { kind: 'Secret', namespace: 'shop', name: 'db', data: { password: 'CIPHER-2', user: 'CIPHER-3' } },
    ],
  });
  const changes = computeResourceChanges(before, after, []);
  assert.deepEqual(
    changes.map((c) => `${c.change} ${c.kind} ${c.namespace ?? ''}/${c.name}`),
    [
      'remove Namespace /old',
      'update Namespace /shop',
      'create Config shop/extra',
      'update Config shop/site',
      'update Secret shop/db',
    ],
  );
  const site = changes.find((c) => c.name === 'site')!;
  assert.deepEqual(
    site.keys.map((k) => `${k.change} ${k.key}`),
    ['changed a.txt', 'removed gone.txt', 'added new.txt'],
  );
  assert.equal(
    site.keys[0]!.diff,
    '--- a/shop/site/a.txt\n+++ b/shop/site/a.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+three\n',
  );
  const db = changes.find((c) => c.kind === 'Secret')!;
  assert.deepEqual(db.keys, [
    { key: 'password', change: 'changed' },
    { key: 'user', change: 'added' },
  ]);
  assert.doesNotMatch(JSON.stringify(changes), /CIPHER/);
  assert.deepEqual(changes[1]!.labels, [{ key: 'team', from: 'a', to: 'b' }]);
});

test('a resource rolls the updated services that mount or import it, and nothing unchanged is listed', () => {
  const config = { kind: 'Config' as const, namespace: 'shop', name: 'site', data: { k: '1' } };
  const base = state({ configs: [config] });
  const uses = {
    configs: [{ source: 'site', key: 'k', target: '/k', mode: 0o444 }],
    envFrom: [],
    secrets: [],
  };
  const after = state({
    configs: [{ ...config, data: { k: '2' } }],
    services: [
      { namespace: 'shop', name: 'web', ...uses },
      { namespace: 'shop', name: 'api', configs: [], envFrom: [{ config: 'site', prefix: '' }], secrets: [] },
      { namespace: 'other', name: 'web', ...uses },
    ] as unknown as DesiredState['services'],
  });
  const plans = ['shop/web', 'shop/api', 'other/web'].map((key) => {
    const [namespace, name] = key.split('/');
    return { namespace, name, change: key === 'other/web' ? 'unchanged' : 'update' } as ServicePlan;
  });
  const [site] = computeResourceChanges(base, after, plans);
  assert.deepEqual(site!.rolls, ['shop/api', 'shop/web']);
  assert.deepEqual(computeResourceChanges(base, base, plans), []);
});

test('a huge Config entry is not diffed line by line, and a long diff is cut', () => {
  const big = 'x\n'.repeat(200_000);
  const lines = Array.from({ length: 500 }, (_, i) => `line ${i}`).join('\n');
  const changes = computeResourceChanges(
    state({ configs: [{ kind: 'Config', namespace: 'a', name: 'c', data: { big, long: '' } }] }),
    state({
      configs: [{ kind: 'Config', namespace: 'a', name: 'c', data: { big: `${big}y`, long: lines } }],
    }),
    [],
  );
  const [bigKey, longKey] = changes[0]!.keys;
  assert.match(bigKey!.diff!, /not compared line by line: over 256 KiB/);
  assert.match(longKey!.diff!, /^@@ -0,0 \+1,500 @@$[\s\S]*… 302 more lines\n$/m);
});

test('a Notifier shows which fields changed and how, never more than the name of its URL Secret', () => {
  const team = {
    kind: 'Notifier',
    namespace: 'shop',
    name: 'team',
    type: 'slack',
    urlFrom: { secret: 'hooks', key: 'slack' },
    events: ['deployed', 'failed'],
  } as const;
  const before = state({ notifiers: [{ ...team, events: [...team.events] }] });
  const after = state({
    notifiers: [
      { ...team, type: 'discord', events: ['deployed', 'failed'] },
      { ...team, name: 'ops', events: ['node-down'] },
    ],
  });
  const changes = computeResourceChanges(before, after, []);
  assert.deepEqual(
    changes.map((c) => [
      `${c.change} ${c.kind} ${c.namespace}/${c.name}`,
      c.keys.map((k) => `${k.change} ${k.key}`),
    ]),
    [
      [
        'create Notifier shop/ops',
        ['added type: slack', 'added urlFrom: secret hooks key slack', 'added events: node-down'],
      ],
      ['update Notifier shop/team', ['changed type: slack -> discord']],
    ],
  );
  assert.deepEqual(computeResourceChanges(after, after, []), []);
});
