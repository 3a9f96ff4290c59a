/**
 * The agent's cluster credentials on disk, `<agent-state-dir>/cluster/`:
 *
 *   ca.crt     the cluster CA, pinned by the join token (written once, at join, before node.pem)
 *   node.pem   the node's private key followed by its certificate: ONE file, so key and
 *              certificate are replaced together by one atomic rename and a crash leaves either
 *              the old pair or the new pair, never a new key beside an old certificate
 *
 * Agents of earlier versions kept `node.key` and `node.crt`; they are still read (after
 * node.pem) and removed once node.pem is written.
 */
import { formatKeyAndCertificate, parseKeyAndCertificate } from '../core/self-signed-certificate.js';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readFileIfExists, writeFileAtomic } from '../core/atomic-file.js';
import { certificateFingerprint, normaliseSerial } from './certificates.js';

export interface NodeCredentials {
  caCertificatePem: string;
  certificatePem: string;
  privateKeyPem: string;
}

/** Where a stored key and certificate came from. */
export type StoredIdentitySource = 'node.pem' | 'node.key+node.crt';

/** What start-up needs to know about one stored key and certificate. */
export interface StoredIdentityFacts {
  source: StoredIdentitySource;
  /** SHA-256 of the stored CA certificate. */
  caFingerprint: string;
  /** Whether the stored CA signed the certificate (ca.crt and node.pem are two writes). */
  signedByCa: boolean;
  /** The certificate's CN. */
  name: string;
  /** The certificate's notAfter, in ms. */
  validToMs: number;
  /** Whether the private key belongs to the certificate. */
  keyMatches: boolean;
}

export type StartupIdentity = { use: StoredIdentitySource } | { join: true; reasons: string[] };

interface WantedIdentity {
  caFingerprint: string;
  node: string;
  nowMs: number;
}

/** Why a stored identity may not be used, or null when it may. */
function unusableBecause(candidate: StoredIdentityFacts, wanted: WantedIdentity): string | null {
  if (candidate.caFingerprint !== wanted.caFingerprint)
    return 'issued by another cluster than the token names';
  if (!candidate.signedByCa) return 'not signed by the stored CA';
  if (candidate.name !== wanted.node) return `issued to node ${candidate.name}, not ${wanted.node}`;
  if (candidate.validToMs <= wanted.nowMs) return 'expired';
  if (!candidate.keyMatches) return 'the key does not belong to the certificate';
  return null;
}

/**
 * Which stored identity an agent starts with: the first candidate (node.pem before the legacy
 * pair) issued by the cluster the token pins, for this node name, not expired, whose key belongs
 * to its certificate. None: the agent joins with its token, and says why.
 */
export function startupIdentity(
  candidates: readonly StoredIdentityFacts[],
  wanted: WantedIdentity,
): StartupIdentity {
  const reasons: string[] = [];
  for (const candidate of candidates) {
    const reason = unusableBecause(candidate, wanted);
    if (reason === null) return { use: candidate.source };
    reasons.push(`${candidate.source}: ${reason}`);
  }
  return { join: true, reasons };
}

interface CredentialPaths {
  ca: string;
  identity: string;
  legacyKey: string;
  legacyCert: string;
}

function credentialPaths(stateDir: string): CredentialPaths {
  const dir = join(stateDir, 'cluster');
  return {
    ca: join(dir, 'ca.crt'),
    identity: join(dir, 'node.pem'),
    legacyKey: join(dir, 'node.key'),
    legacyCert: join(dir, 'node.crt'),
  };
}

/** node.pem is the key then the certificate, one file (see src/core/self-signed-certificate.ts). */
export const parseIdentityFile = parseKeyAndCertificate;
export const formatIdentityFile = formatKeyAndCertificate;

function keyBelongsTo(certificate: X509Certificate, privateKeyPem: string): boolean {
  try {
    return certificate.checkPrivateKey(createPrivateKey(privateKeyPem));
  } catch {
    return false;
  }
}

function factsOf(
  source: StoredIdentitySource,
  caCertificatePem: string,
  pair: { privateKeyPem: string; certificatePem: string },
): StoredIdentityFacts | null {
  try {
    const certificate = new X509Certificate(pair.certificatePem);
    return {
      source,
      caFingerprint: certificateFingerprint(caCertificatePem),
      signedByCa: certificate.verify(new X509Certificate(caCertificatePem).publicKey),
      name: /^CN=(.*)$/m.exec(certificate.subject)?.[1] ?? '',
      validToMs: new Date(certificate.validTo).getTime(),
      keyMatches: keyBelongsTo(certificate, pair.privateKeyPem),
    };
  } catch {
    return null;
  }
}

/** The stored identities an agent may start with, node.pem first, each with its facts. */
export async function readStoredIdentities(
  stateDir: string,
): Promise<{ credentials: NodeCredentials; facts: StoredIdentityFacts }[]> {
  const paths = credentialPaths(stateDir);
  const caCertificatePem = await readFileIfExists(paths.ca);
  if (caCertificatePem === null) return [];
  const found: { credentials: NodeCredentials; facts: StoredIdentityFacts }[] = [];
  const bundle = await readFileIfExists(paths.identity);
  const pairs: [StoredIdentitySource, { privateKeyPem: string; certificatePem: string } | null][] = [
    ['node.pem', bundle === null ? null : parseIdentityFile(bundle)],
  ];
  const legacyKey = await readFileIfExists(paths.legacyKey);
  const legacyCert = await readFileIfExists(paths.legacyCert);
  if (legacyKey !== null && legacyCert !== null) {
    pairs.push(['node.key+node.crt', { privateKeyPem: legacyKey, certificatePem: legacyCert }]);
  }
  for (const [source, pair] of pairs) {
    const facts = pair === null ? null : factsOf(source, caCertificatePem, pair);
    if (pair !== null && facts !== null) found.push({ credentials: { caCertificatePem, ...pair }, facts });
  }
  return found;
}

/** Serial of a certificate as the operator records it. */
export function serialOf(certificatePem: string): string {
  return normaliseSerial(new X509Certificate(certificatePem).serialNumber);
}

/**
 * Writes the CA (only when it is not the stored one) and then node.pem, key and certificate in
 * one atomic write; the legacy pair, superseded, is removed afterwards.
 */
export async function saveCredentials(stateDir: string, credentials: NodeCredentials): Promise<void> {
  const paths = credentialPaths(stateDir);
  if ((await readFileIfExists(paths.ca)) !== credentials.caCertificatePem) {
    await writeFileAtomic(paths.ca, credentials.caCertificatePem, 0o644);
  }
  await writeFileAtomic(paths.identity, formatIdentityFile(credentials), 0o600);
  await rm(paths.legacyKey, { force: true });
  await rm(paths.legacyCert, { force: true });
}
