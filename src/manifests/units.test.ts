import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { readSchema } from './schema.js';
import { cpusToNanoCpus, formatMemorySize, parseDuration, parseFileMode, parseMemorySize } from './units.js';

const definitions = readSchema('common.schema.json')['definitions'] as Record<string, { pattern: string }>;
const schemaAccepts = (definition: string, text: string): boolean =>
  new RegExp(definitions[definition]!.pattern, 'u').test(text);

void describe('parseDuration', () => {
  const cases: [string, number | null][] = [
    ['0', 0],
    ['500ms', 500],
    ['1s', 1000],
    ['1m30s', 90_000],
    ['2h', 7_200_000],
    ['1h2m3s4ms', 3_723_004],
    ['1.5s', 1500],
    ['0s', 0],
    ['10', null],
    ['', null],
    ['5 seconds', null],
    ['-1s', null],
    ['1d', null],
    ['s', null],
    ['1.s', null],
  ];
  for (const [text, expected] of cases) {
    void test(`${JSON.stringify(text)} -> ${expected}`, () => {
      assert.equal(parseDuration(text), expected);
      assert.equal(schemaAccepts('duration', text), expected !== null, 'schema pattern and parser disagree');
    });
  }
});

void describe('parseMemorySize', () => {
  const cases: [string | number, number | null][] = [
    ['64Mi', 64 * 1024 * 1024],
    ['1Gi', 1024 ** 3],
    ['512M', 512_000_000],
    ['1G', 1_000_000_000],
    ['2k', 2000],
    ['2K', 2000],
    ['16Ki', 16_384],
    ['1.5Gi', 1.5 * 1024 ** 3],
    ['1048576', 1_048_576],
    [1048576, 1_048_576],
    [0, 0],
    ['64mb', null],
    ['512m', null],
    ['1.5', null],
    ['Mi', null],
    ['', null],
    [-1, null],
    [1.5, null],
  ];
  for (const [value, expected] of cases) {
    void test(`${JSON.stringify(value)} -> ${expected}`, () => {
      assert.equal(parseMemorySize(value), expected);
      if (typeof value === 'string') {
        assert.equal(schemaAccepts('memory', value), expected !== null, 'schema pattern and parser disagree');
      }
    });
  }
});

void test('cpusToNanoCpus counts as docker run --cpus does', () => {
  assert.equal(cpusToNanoCpus(0.5), 500_000_000);
  assert.equal(cpusToNanoCpus(1), 1_000_000_000);
  assert.equal(cpusToNanoCpus(0.1), 100_000_000);
  assert.equal(cpusToNanoCpus(0.3333333333), 333_333_333);
  assert.equal(cpusToNanoCpus(0), 0);
});

void test('parseFileMode reads strings as octal and takes numbers as they are', () => {
  assert.equal(parseFileMode('0444'), 0o444);
  assert.equal(parseFileMode('440'), 0o440);
  assert.equal(parseFileMode(0o400), 0o400);
  assert.equal(parseFileMode('0888'), null);
  assert.equal(parseFileMode('01777'), null);
  assert.equal(parseFileMode(512), null);
  for (const text of ['0444', '440', '0777'])
    assert.ok(new RegExp(definitions['fileMode']!.pattern).test(text));
  for (const text of ['0888', '44', 'rw-r--r--'])
    assert.ok(!new RegExp(definitions['fileMode']!.pattern).test(text));
});

void test('formatMemorySize uses the largest unit that divides the size exactly', () => {
  assert.equal(formatMemorySize(64 * 1024 * 1024), '64Mi');
  assert.equal(formatMemorySize(6 * 1024 * 1024), '6Mi');
  assert.equal(formatMemorySize(1024 ** 3), '1Gi');
  assert.equal(formatMemorySize(1536), '1536 bytes');
  assert.equal(formatMemorySize(512_000_000), '512M');
  assert.equal(formatMemorySize(2000), '2k');
  assert.equal(formatMemorySize(4 * 1024 ** 4), '4Ti');
});
