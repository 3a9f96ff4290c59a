import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadManifests } from './load.js';
import type { ManifestProblem } from './types.js';

const file = (path: string, text: string) => ({ path, content: new TextEncoder().encode(text) });
const armor = '|\n    -----BEGIN AGE ENCRYPTED FILE-----\n    YWdl\n    -----END AGE ENCRYPTED FILE-----\n';
const hooks = `apiVersion: berth/v1
kind: Secret
metadata: { name: hooks, namespace: shop }
data:
  slack: ${armor}`;
const shop = 'apiVersion: berth/v1\nkind: Namespace\nmetadata: { name: shop }\n';

function notifier(spec: string): string {
  return `apiVersion: berth/v1\nkind: Notifier\nmetadata: { name: team, namespace: shop }\nspec:\n${spec}`;
}

function problems(text: string): string[] {
  const result = loadManifests(
    [file('ns.yaml', shop), file('hooks.yaml', hooks), file('notifier.yaml', text)],
    { revision: 'r' },
  );
  assert.equal(result.ok, false);
  return (result as { problems: ManifestProblem[] }).problems.map(
    (p) => `${p.file}:${p.line}:${p.col}: ${p.message}`,
  );
}

test('a Notifier is loaded with every event when it names none', () => {
  const result = loadManifests(
    [
      file('ns.yaml', shop),
      file('hooks.yaml', hooks),
      file('notifier.yaml', notifier('  type: slack\n  urlFrom: { secret: hooks, key: slack }\n')),
    ],
    { revision: 'r' },
  );
  assert.ok(result.ok, JSON.stringify(result));
  assert.deepEqual(result.desired.notifiers, [
    {
      kind: 'Notifier',
      name: 'team',
      namespace: 'shop',
      type: 'slack',
      urlFrom: { secret: 'hooks', key: 'slack' },
      events: ['deployed', 'rolled-back', 'failed', 'invalid', 'node-down', 'job-failed'],
    },
  ]);
});

test('the URL Secret must exist in the same namespace, with the key, said at file:line', () => {
  assert.deepEqual(problems(notifier('  type: slack\n  urlFrom: { secret: hook, key: slack }\n')), [
    'notifier.yaml:6:22: spec.urlFrom.secret: Secret "hook" not found in namespace "shop" (did you mean "hooks"?)',
  ]);
  assert.deepEqual(problems(notifier('  type: slack\n  urlFrom:\n    secret: hooks\n    key: slak\n')), [
    'notifier.yaml:8:10: spec.urlFrom.key: Secret "hooks" has no key "slak" (did you mean "slack"?)',
  ]);
});

test('an unknown type or event is refused by the schema', () => {
  const found = problems(
    notifier('  type: email\n  urlFrom: { secret: hooks, key: slack }\n  events: [deployed, exploded]\n'),
  );
  assert.equal(found.length, 2, found.join('\n'));
  assert.match(found[0]!, /^notifier\.yaml:5:9: spec\.type: .*webhook.*slack.*discord.*msteams/);
  assert.match(found[1]!, /^notifier\.yaml:7:22: spec\.events\[1\]: .*deployed/);
});
