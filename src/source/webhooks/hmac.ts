import { createHmac, timingSafeEqual } from 'node:crypto';

/** Constant-time check of a hex HMAC-SHA256 of the exact body bytes (Gitea, Forgejo). */
export function hmacSha256HexMatches(secret: string, body: Buffer, signatureHex: string): boolean {
  const expected = Buffer.from(createHmac('sha256', secret).update(body).digest('hex'), 'utf8');
  const given = Buffer.from(signatureHex.trim().toLowerCase(), 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * Constant-time equality of two secrets (GitLab sends the token itself). Both sides are hashed
 * first so the comparison takes the same time whatever their lengths.
 */
export function secretsEqual(a: string, b: string): boolean {
  const key = 'berth-token-compare';
  const x = createHmac('sha256', key).update(a).digest();
  const y = createHmac('sha256', key).update(b).digest();
  return timingSafeEqual(x, y);
}
