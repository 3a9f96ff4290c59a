/**
 * An agent token, shaped like a join token: `BERTH-AGENT-1-<certificate fingerprint>-<secret>`.
 * The fingerprint (SHA-256 of the agent's self-signed certificate) lets the operator check it
 * talks to that very agent before it sends anything; the secret, which is the agent's own (never
 * shared between nodes), proves to the agent that the operator was given the token. A token for
 * an agent that serves plain HTTP on loopback (`--insecure-http`) is the secret alone.
 */
import { randomBytes } from 'node:crypto';
import { BerthError } from '../core/errors.js';

export interface AgentToken {
  /** Lower-case hex SHA-256 of the agent's certificate; null for a bare secret. */
  fingerprint: string | null;
  secret: string;
}

const PREFIX = 'BERTH-AGENT-1-';
const TOKEN_PATTERN = /^BERTH-AGENT-1-([0-9a-f]{64})-(\S+)$/;
/** A secret travels in an HTTP header: visible ASCII, no spaces. */
const SECRET_PATTERN = /^[\x21-\x7e]+$/;

export function newAgentSecret(): string {
  return randomBytes(24).toString('hex');
}

/** Refuses a secret that cannot travel as `Authorization: Bearer <secret>`. */
export function checkAgentSecret(secret: string, what: string): string {
  if (!SECRET_PATTERN.test(secret)) {
    throw new BerthError(
      'ERR_AGENT_UNAUTHORIZED',
      `${what} must be visible ASCII characters without spaces, and not empty`,
    );
  }
  return secret;
}

export function formatAgentToken(token: AgentToken): string {
  return token.fingerprint === null ? token.secret : `${PREFIX}${token.fingerprint}-${token.secret}`;
}

/** A full token, or a bare secret (fingerprint null): only a plain-HTTP agent's token is one. */
export function parseAgentToken(text: string): AgentToken {
  const trimmed = text.trim();
  const match = TOKEN_PATTERN.exec(trimmed);
  if (match) return { fingerprint: match[1]!, secret: match[2]! };
  if (trimmed.startsWith(PREFIX)) {
    throw new BerthError(
      'ERR_AGENT_UNAUTHORIZED',
      `malformed agent token: expected ${PREFIX}<64 hex certificate fingerprint>-<secret>, as \`berth agent\` prints it`,
    );
  }
  return { fingerprint: null, secret: checkAgentSecret(trimmed, 'an agent token') };
}
