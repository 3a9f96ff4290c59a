import assert from 'node:assert/strict';
import { test } from 'node:test';
import { composeDuration, composeMemory, parseShortPort, splitShellWords } from './compose-values.js';
import { parseDotEnv } from './dotenv.js';
import { interpolate } from './interpolate.js';

const vars: Record<string, string> = { SET: 'value', EMPTY: '', B: 'bee' };
const lookup = (name: string): string | undefined => vars[name];

test('interpolation follows docker compose', () => {
  const cases: [string, string][] = [
    ['plain', 'plain'],
    ['$SET and ${SET}', 'value and value'],
    ['${UNSET:-default}', 'default'],
    ['${EMPTY:-default}', 'default'],
    ['${EMPTY-default}', ''],
    ['${UNSET-default}', 'default'],
    ['${SET:-default}', 'value'],
    ['${SET:+alt}', 'alt'],
    ['${EMPTY:+alt}', ''],
    ['${EMPTY+alt}', 'alt'],
    ['${UNSET:-${B}}', 'bee'],
    ['$$SET and $${SET}', '$SET and ${SET}'],
    ['cost: 5$', 'cost: 5$'],
  ];
  for (const [text, expected] of cases) {
    const result = interpolate(text, lookup);
    assert.ok(result.ok, text);
    assert.equal(result.value, expected, text);
  }
  const unset = interpolate('$UNSET-${ALSO}', lookup);
  assert.deepEqual(unset.ok && unset.unset, ['UNSET', 'ALSO']);
});

test('required variables refuse, with the message written', () => {
  assert.deepEqual(interpolate('${UNSET:?set it please}', lookup), {
    ok: false,
    error: 'required variable UNSET is missing a value: set it please',
  });
  assert.equal(interpolate('${EMPTY:?}', lookup).ok, false);
  assert.equal(interpolate('${EMPTY?}', lookup).ok, true);
  assert.equal(interpolate('${SET', lookup).ok, false);
  assert.equal(interpolate('${1BAD}', lookup).ok, false);
});

test('.env files: quotes, comments, export, earlier variables', () => {
  const env = parseDotEnv(
    [
      '# comment',
      'export A=1',
      'B="two\\nlines"',
      "C='${A} literal'",
      'D=${A}-x # trailing comment',
      'E="multi',
      'line"',
      'F',
      'not a line',
    ].join('\n'),
    (name) => (name === 'F' ? 'from-outside' : undefined),
  );
  assert.deepEqual(Object.fromEntries(env.values), {
    A: '1',
    B: 'two\nlines',
    C: '${A} literal',
    D: '1-x',
    E: 'multi\nline',
    F: 'from-outside',
  });
  assert.deepEqual(env.problems, [{ line: 9, message: 'not a KEY=VALUE line' }]);
});

test('compose values in berth units', () => {
  assert.equal(composeDuration('1m30s'), '1m30s');
  assert.equal(composeDuration('1500us'), '2ms');
  assert.equal(composeDuration('10 seconds'), null);
  assert.equal(composeMemory('512m'), '512Mi');
  assert.equal(composeMemory('1G'), '1Gi');
  assert.equal(composeMemory('64M'), '64Mi');
  assert.equal(composeMemory('1000'), 1000);
  assert.equal(composeMemory('lots'), null);
  assert.deepEqual(splitShellWords(`gunicorn -b 0.0.0.0:8000 "app:create_app()" 'a b' c\\ d`), [
    'gunicorn',
    '-b',
    '0.0.0.0:8000',
    'app:create_app()',
    'a b',
    'c d',
  ]);
  assert.equal(splitShellWords('"open'), null);
  assert.deepEqual(parseShortPort('8080'), [{ target: 8080, protocol: 'tcp' }]);
  assert.deepEqual(parseShortPort('127.0.0.1:80:8080/udp'), [
    { target: 8080, published: 80, protocol: 'udp', hostIp: '127.0.0.1' },
  ]);
  assert.deepEqual(parseShortPort('8000-8001:9000-9001'), [
    { target: 9000, published: 8000, protocol: 'tcp' },
    { target: 9001, published: 8001, protocol: 'tcp' },
  ]);
  assert.match(parseShortPort('80:8080/sctp') as string, /sctp/);
});
