import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BerthError } from '../core/errors.js';
import { formatJoinToken, newTokenSecret, parseJoinToken, secretMatches } from './join-token.js';

describe('join tokens', () => {
  const caFingerprint = 'ab'.repeat(32);

  test('format and parse round-trip: the CA fingerprint and the secret', () => {
    const secret = newTokenSecret();
    const text = formatJoinToken({ caFingerprint, secret });
    assert.match(text, /^BERTH-1-[0-9a-f]{64}-[0-9a-f]{48}$/);
    assert.deepEqual(parseJoinToken(`  ${text}\n`), { caFingerprint, secret });
  });

  test('secrets are fresh every time', () => {
    assert.notEqual(newTokenSecret(), newTokenSecret());
  });

  for (const bad of [
    '',
    'SWMTKN-1-abc-def',
    `BERTH-1-${'ab'.repeat(32)}`,
    `BERTH-2-${'ab'.repeat(32)}-${'0'.repeat(48)}`,
    `BERTH-1-${'zz'.repeat(32)}-${'0'.repeat(48)}`,
  ]) {
    test(`a malformed token is refused with what a token looks like: ${JSON.stringify(bad.slice(0, 20))}`, () => {
      assert.throws(
        () => parseJoinToken(bad),
        (error: unknown) =>
          error instanceof BerthError &&
          error.code === 'ERR_AGENT_UNAUTHORIZED' &&
          /malformed join token: expected BERTH-1-/.test(error.message),
      );
    });
  }

  test('secret comparison', () => {
    const secret = newTokenSecret();
    assert.equal(secretMatches(secret, secret), true);
    assert.equal(secretMatches(secret, `${secret}0`), false);
    assert.equal(secretMatches(secret, ''), false);
  });
});
