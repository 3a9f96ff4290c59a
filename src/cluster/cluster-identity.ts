import { join } from 'node:path';
import { BerthError } from '../core/errors.js';
import { readFileIfExists, writeFileAtomic } from '../core/atomic-file.js';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import {
  CLOCK_SKEW_MS,
  certificateFingerprint,
  createCertificateAuthority,
  generateKeyPair,
  issueCertificate,
} from './certificates.js';
import { formatJoinToken, newTokenSecret } from './join-token.js';

/**
 * The operator's cluster identity, kept in `<state-dir>/cluster/` (private keys mode 0600):
 *
 *   ca.crt, ca.key              the cluster CA (created on first start)
 *   operator.crt, operator.key  the operator's TLS server certificate, issued by the CA
 *   admin.crt, admin.key        the client certificate of the local admin CLI (`berth node ...`)
 *   token.json                  the current join secret (rotated by `berth token --rotate`)
 *   endpoint.json               the URL agents join at, written by `berth run --cluster-listen`
 *   nodes.json                  joined nodes and revoked certificates (see node-registry.ts)
 */
export interface PemPair {
  certificatePem: string;
  privateKeyPem: string;
}

export interface ClusterIdentity {
  dir: string;
  ca: PemPair;
  caFingerprint: string;
  operator: PemPair;
  admin: PemPair;
}

export function clusterDir(stateDir: string): string {
  return join(stateDir, 'cluster');
}

async function readPair(dir: string, name: string): Promise<PemPair | null> {
  const certificatePem = await readFileIfExists(join(dir, `${name}.crt`));
  const privateKeyPem = await readFileIfExists(join(dir, `${name}.key`));
  return certificatePem && privateKeyPem ? { certificatePem, privateKeyPem } : null;
}

/**
 * A pair whose key belongs to its certificate: the operator replaces a pair as two writes, so a
 * read between them is tried again a few times before the pair is taken as it is.
 */
async function readMatchingPair(dir: string, name: string): Promise<PemPair | null> {
  for (let attempt = 0; ; attempt += 1) {
    const pair = await readPair(dir, name);
    if (pair === null || attempt >= 5 || pairMatches(pair)) return pair;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function pairMatches(pair: PemPair): boolean {
  try {
    return new X509Certificate(pair.certificatePem).checkPrivateKey(createPrivateKey(pair.privateKeyPem));
  } catch {
    return false;
  }
}

async function writePair(dir: string, name: string, pair: PemPair): Promise<void> {
  await writeFileAtomic(join(dir, `${name}.key`), pair.privateKeyPem, 0o600);
  await writeFileAtomic(join(dir, `${name}.crt`), pair.certificatePem, 0o644);
}

/**
 * The operator's and the admin's certificates live as long as the CA: their keys sit beside the
 * CA key in the same 0700 directory, so a shorter life would protect nothing, and the admin
 * certificate must never expire under a running cluster (node certificates, renewed by the
 * agents, follow --cert-expiry instead).
 */
function issuePair(ca: PemPair, role: 'operator' | 'admin', name: string): PemPair {
  const keys = generateKeyPair();
  const issued = issueCertificate({
    ca,
    publicKeyPem: keys.publicKeyPem,
    role,
    name,
    validity: {
      notBefore: new Date(Date.now() - CLOCK_SKEW_MS),
      notAfter: new Date(new X509Certificate(ca.certificatePem).validTo),
    },
  });
  return { certificatePem: issued.certificatePem, privateKeyPem: keys.privateKeyPem };
}

/** What deciding whether to reissue the operator's or the admin's certificate needs to know. */
export interface LeafFacts {
  keyMatches: boolean;
  signedByCa: boolean;
  notAfterMs: number;
  caNotAfterMs: number;
}

/**
 * Why a stored operator or admin certificate must be issued again, or null to keep it. Earlier
 * versions issued the admin certificate for 90 days: such a certificate, expired or not, is
 * replaced at the next start of the operator by one that lasts as long as the CA.
 */
export function leafReissueReason(facts: LeafFacts | null): string | null {
  if (facts === null) return 'missing';
  if (!facts.signedByCa) return 'not signed by the cluster CA';
  if (!facts.keyMatches) return 'the key does not belong to the certificate';
  // A minute of slack: the CA and its first leaves are made a moment apart.
  if (facts.notAfterMs < facts.caNotAfterMs - CLOCK_SKEW_MS) return 'expires before the CA';
  return null;
}

function leafFacts(ca: PemPair, pair: PemPair | null): LeafFacts | null {
  if (pair === null) return null;
  try {
    const certificate = new X509Certificate(pair.certificatePem);
    const caCertificate = new X509Certificate(ca.certificatePem);
    return {
      keyMatches: certificate.checkPrivateKey(createPrivateKey(pair.privateKeyPem)),
      signedByCa: certificate.verify(caCertificate.publicKey),
      notAfterMs: new Date(certificate.validTo).getTime(),
      caNotAfterMs: new Date(caCertificate.validTo).getTime(),
    };
  } catch {
    return null;
  }
}

const LEAF_NAMES = { operator: 'berth-operator', admin: 'berth-admin' } as const;

/**
 * The stored operator or admin pair, issued again (and written) when leafReissueReason says so:
 * called at every start of the operator.
 * The key is written before the certificate: a reader between the two writes sees a mismatched
 * pair for a moment (readClusterIdentity reads again), a crash between them is repaired here at
 * the next start.
 */
async function currentLeafPair(
  stateDir: string,
  ca: PemPair,
  role: 'operator' | 'admin',
  onReissue: (role: string, reason: string) => void = () => undefined,
): Promise<PemPair> {
  const dir = clusterDir(stateDir);
  const stored = await readPair(dir, role);
  const reason = leafReissueReason(leafFacts(ca, stored));
  if (reason === null && stored !== null) return stored;
  const pair = issuePair(ca, role, LEAF_NAMES[role]);
  await writePair(dir, role, pair);
  onReissue(role, reason ?? 'missing');
  return pair;
}

/** Reads the cluster identity, creating whatever is missing (the CA only on the very first start). */
export async function loadOrCreateClusterIdentity(
  stateDir: string,
  onReissue?: (role: string, reason: string) => void,
): Promise<ClusterIdentity> {
  const dir = clusterDir(stateDir);
  let ca = await readPair(dir, 'ca');
  if (ca === null) {
    const made = createCertificateAuthority();
    ca = { certificatePem: made.certificatePem, privateKeyPem: made.privateKeyPem };
    await writePair(dir, 'ca', ca);
  }
  const operator = await currentLeafPair(stateDir, ca, 'operator', onReissue);
  const admin = await currentLeafPair(stateDir, ca, 'admin', onReissue);
  if ((await readFileIfExists(join(dir, 'token.json'))) === null) await rotateJoinSecret(stateDir);
  return { dir, ca, caFingerprint: certificateFingerprint(ca.certificatePem), operator, admin };
}

/** Reads what exists without creating anything: for the CLI commands that talk to a running operator. */
export async function readClusterIdentity(stateDir: string): Promise<ClusterIdentity> {
  const dir = clusterDir(stateDir);
  const ca = await readPair(dir, 'ca');
  const operator = await readPair(dir, 'operator');
  const admin = await readMatchingPair(dir, 'admin');
  if (!ca || !operator || !admin) {
    throw new BerthError(
      'ERR_STATE',
      `no cluster identity in ${dir}: start the operator once with \`berth run --cluster-listen ADDR\` (same --state-dir)`,
    );
  }
  return { dir, ca, caFingerprint: certificateFingerprint(ca.certificatePem), operator, admin };
}

export async function readJoinSecret(stateDir: string): Promise<string> {
  const text = await readFileIfExists(join(clusterDir(stateDir), 'token.json'));
  const secret = text === null ? undefined : (JSON.parse(text) as { secret?: unknown }).secret;
  if (typeof secret !== 'string') {
    throw new BerthError('ERR_STATE', `no join token in ${clusterDir(stateDir)}; start \`berth run\` once`);
  }
  return secret;
}

/** Replaces the join secret: tokens printed before no longer join; joined nodes stay joined. */
export async function rotateJoinSecret(stateDir: string): Promise<void> {
  await writeFileAtomic(
    join(clusterDir(stateDir), 'token.json'),
    `${JSON.stringify({ secret: newTokenSecret(), createdAt: new Date().toISOString() })}\n`,
    0o600,
  );
}

export async function currentJoinToken(stateDir: string): Promise<string> {
  const identity = await readClusterIdentity(stateDir);
  return formatJoinToken({ caFingerprint: identity.caFingerprint, secret: await readJoinSecret(stateDir) });
}

export async function writeClusterEndpoint(stateDir: string, url: string): Promise<void> {
  await writeFileAtomic(join(clusterDir(stateDir), 'endpoint.json'), `${JSON.stringify({ url })}\n`, 0o644);
}

/** Whether an operator of this state dir listens for agents (its nodes are driven through it only). */
export async function isClusterStateDir(stateDir: string): Promise<boolean> {
  return (await readFileIfExists(join(clusterDir(stateDir), 'endpoint.json'))) !== null;
}

export async function readClusterEndpoint(stateDir: string): Promise<string> {
  const text = await readFileIfExists(join(clusterDir(stateDir), 'endpoint.json'));
  const url = text === null ? undefined : (JSON.parse(text) as { url?: unknown }).url;
  if (typeof url !== 'string') {
    throw new BerthError(
      'ERR_STATE',
      `the operator of ${stateDir} does not listen for agents: start it with \`berth run --cluster-listen HOST:PORT\``,
    );
  }
  return url;
}
