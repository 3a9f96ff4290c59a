import assert from 'node:assert/strict';
import { test } from 'node:test';

import { isAbbreviatedCommitId, isCommitId, shortRevision } from './revision.js';

void test('revision helpers', () => {
  const oid = '0123456789abcdef0123456789abcdef01234567';
  assert.equal(shortRevision(oid), '0123456789ab');
  assert.equal(isCommitId(oid), true);
  assert.equal(isCommitId(oid.toUpperCase()), false);
  assert.equal(isCommitId(oid.slice(1)), false);
  assert.equal(isAbbreviatedCommitId('abcd'), true);
  assert.equal(isAbbreviatedCommitId('ABCD12'), true);
  assert.equal(isAbbreviatedCommitId('abc'), false);
  assert.equal(isAbbreviatedCommitId('main'), false);
  assert.equal(isAbbreviatedCommitId(`${oid}0`), false);
});
