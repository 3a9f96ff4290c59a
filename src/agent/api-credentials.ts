/**
 * What `berth agent --listen` keeps in its state dir, `<state-dir>/api/`, made at the first start
 * and reused after (so the token the agent printed stays valid across restarts):
 *
 *   agent.pem  the private key followed by the self-signed certificate of the HTTPS API (one
 *              file, one atomic write: never a new key beside an old certificate)
 *   secret     the API secret, when none is given with --token or BERTH_AGENT_TOKEN
 *
 * Both are 0600. Removing agent.pem (or secret) makes a new one at the next start, and with it a
 * new token: the old one stops working.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { readFileIfExists, writeFileAtomic } from '../core/atomic-file.js';
import { BerthError } from '../core/errors.js';
import {
  certificateFingerprint,
  createSelfSignedCertificate,
  formatKeyAndCertificate,
  parseKeyAndCertificate,
} from '../core/self-signed-certificate.js';
import { checkAgentSecret, newAgentSecret } from './agent-token.js';

export interface AgentTlsIdentity {
  privateKeyPem: string;
  certificatePem: string;
  /** SHA-256 of the certificate, lower-case hex: what the agent's token pins. */
  fingerprint: string;
}

/** Pinned, not chained: expiry is not checked by the operator, so the certificate may live long. */
const AGENT_CERTIFICATE_DAYS = 20 * 365;

export function agentApiPaths(stateDir: string): { identity: string; secret: string } {
  const dir = join(stateDir, 'api');
  return { identity: join(dir, 'agent.pem'), secret: join(dir, 'secret') };
}

/** The stored key and certificate, or new ones (stored) when there are none. */
export async function loadOrCreateTlsIdentity(
  stateDir: string,
  nodeName: string,
): Promise<AgentTlsIdentity & { created: boolean }> {
  const path = agentApiPaths(stateDir).identity;
  const stored = await readFileIfExists(path);
  if (stored !== null) return { ...readIdentity(path, stored), created: false };
  const made = createSelfSignedCertificate({
    commonName: `berth agent ${nodeName}`,
    days: AGENT_CERTIFICATE_DAYS,
  });
  const pair = { privateKeyPem: made.privateKeyPem, certificatePem: made.certificatePem };
  await writeFileAtomic(path, formatKeyAndCertificate(pair), 0o600);
  return { ...pair, fingerprint: certificateFingerprint(pair.certificatePem), created: true };
}

/**
 * A broken file is refused, not replaced: a new certificate would silently invalidate the token
 * every operator holds.
 */
function readIdentity(path: string, text: string): AgentTlsIdentity {
  const refuse = (why: string): never => {
    throw new BerthError(
      'ERR_STATE',
      `${path} ${why}; remove it to make a new key and certificate (the agent then prints a new token)`,
    );
  };
  const pair = parseKeyAndCertificate(text) ?? refuse('does not hold a private key and a certificate');
  let matches = false;
  try {
    matches = new X509Certificate(pair.certificatePem).checkPrivateKey(createPrivateKey(pair.privateKeyPem));
  } catch (error) {
    refuse(`cannot be read (${error instanceof Error ? error.message : String(error)})`);
  }
  if (!matches) refuse('holds a private key that does not belong to its certificate');
  return { ...pair, fingerprint: certificateFingerprint(pair.certificatePem) };
}

/** The secret given (--token, BERTH_AGENT_TOKEN), else the stored one, else a new one (stored). */
export async function loadOrCreateApiSecret(
  stateDir: string,
  given: string | undefined,
): Promise<{ secret: string; source: 'given' | 'stored' | 'created' }> {
  if (given !== undefined && given !== '') {
    return {
      secret: checkAgentSecret(given, 'the agent token (--token, BERTH_AGENT_TOKEN)'),
      source: 'given',
    };
  }
  const path = agentApiPaths(stateDir).secret;
  const stored = (await readFileIfExists(path))?.trim();
  if (stored !== undefined && stored !== '') {
    return { secret: checkAgentSecret(stored, `the secret in ${path}`), source: 'stored' };
  }
  const secret = newAgentSecret();
  await writeFileAtomic(path, `${secret}\n`, 0o600);
  return { secret, source: 'created' };
}
