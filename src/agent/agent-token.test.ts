import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BerthError } from '../core/errors.js';
import { formatAgentToken, newAgentSecret, parseAgentToken } from './agent-token.js';

const fingerprint = 'ab'.repeat(32);

describe('agent tokens', () => {
  test('a full token carries the certificate fingerprint and the secret, and round-trips', () => {
    const secret = newAgentSecret();
    const text = formatAgentToken({ fingerprint, secret });
    assert.equal(text, `BERTH-AGENT-1-${fingerprint}-${secret}`);
    assert.deepEqual(parseAgentToken(`  ${text}\n`), { fingerprint, secret });
  });

  test('a given secret may hold dashes', () => {
    assert.deepEqual(parseAgentToken(`BERTH-AGENT-1-${fingerprint}-my-own-secret`), {
      fingerprint,
      secret: 'my-own-secret',
    });
  });

  test('anything else is a bare secret (plain-HTTP agents on loopback)', () => {
    assert.deepEqual(parseAgentToken('cli-test-token'), { fingerprint: null, secret: 'cli-test-token' });
    assert.equal(formatAgentToken({ fingerprint: null, secret: 's3cret' }), 's3cret');
  });

  test('a malformed full token or an unsendable secret is refused', () => {
    for (const bad of [
      `BERTH-AGENT-1-${fingerprint.slice(2)}-secret`,
      `BERTH-AGENT-1-${fingerprint}-`,
      `BERTH-AGENT-1-${fingerprint.toUpperCase()}-secret`,
      '',
      'two words',
      'caf\u00e9',
    ]) {
      assert.throws(
        () => parseAgentToken(bad),
        (e: unknown) => e instanceof BerthError && e.code === 'ERR_AGENT_UNAUTHORIZED',
        bad,
      );
    }
  });

  test('secrets are new each time, 48 hex digits', () => {
    const a = newAgentSecret();
    assert.match(a, /^[0-9a-f]{48}$/);
    assert.notEqual(a, newAgentSecret());
  });
});
