import assert from 'node:assert/strict';
import { test } from 'node:test';
import { alignColumns } from './columns.js';

test('columns are as wide as their widest cell, two spaces apart, with no trailing blanks', () => {
  assert.deepEqual(
    alignColumns([
      ['NAME', 'STATUS', 'LABELS'],
      ['bn1', 'ready', '-'],
      ['node-two', 'down', ''],
    ]),
    ['NAME      STATUS  LABELS', 'bn1       ready   -', 'node-two  down'],
  );
});
