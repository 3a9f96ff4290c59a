import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BerthError } from '../core/errors.js';

/**
 * A join token, as Swarm's `SWMTKN-1-<CA digest>-<secret>`: `BERTH-1-<CA fingerprint>-<secret>`.
 * The fingerprint (SHA-256 of the CA certificate) lets a joining agent verify it talks to the
 * real operator before it sends anything; the secret proves to the operator that the agent was
 * given the token. Rotating the token changes the secret only: joined nodes keep their
 * certificates.
 */
export interface JoinToken {
  caFingerprint: string;
  secret: string;
}

const TOKEN_PATTERN = /^BERTH-1-([0-9a-f]{64})-([0-9a-f]{48})$/;

export function newTokenSecret(): string {
  return randomBytes(24).toString('hex');
}

export function formatJoinToken(token: JoinToken): string {
  return `BERTH-1-${token.caFingerprint}-${token.secret}`;
}

export function parseJoinToken(text: string): JoinToken {
  const match = TOKEN_PATTERN.exec(text.trim());
  if (!match) {
    throw new BerthError(
      'ERR_AGENT_UNAUTHORIZED',
      'malformed join token: expected BERTH-1-<64 hex CA fingerprint>-<48 hex secret>, as `berth token` prints it',
    );
  }
  return { caFingerprint: match[1]!, secret: match[2]! };
}

/** Constant-time comparison of two secrets (hashed first so their lengths always match). */
export function secretMatches(expected: string, presented: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();
  return timingSafeEqual(digest(expected), digest(presented));
}
