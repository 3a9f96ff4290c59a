import { join } from 'node:path';
import { BerthError } from '../core/errors.js';
import { readFileIfExists, writeFileAtomic } from '../core/atomic-file.js';
import {
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

async function writePair(dir: string, name: string, pair: PemPair): Promise<void> {
  await writeFileAtomic(join(dir, `${name}.key`), pair.privateKeyPem, 0o600);
  await writeFileAtomic(join(dir, `${name}.crt`), pair.certificatePem, 0o644);
}

function issuePair(ca: PemPair, role: 'operator' | 'admin', name: string): PemPair {
  const keys = generateKeyPair();
  const issued = issueCertificate({ ca, publicKeyPem: keys.publicKeyPem, role, name });
  return { certificatePem: issued.certificatePem, privateKeyPem: keys.privateKeyPem };
}

/** Reads the cluster identity, creating whatever is missing (the CA only on the very first start). */
export async function loadOrCreateClusterIdentity(stateDir: string): Promise<ClusterIdentity> {
  const dir = clusterDir(stateDir);
  let ca = await readPair(dir, 'ca');
  if (ca === null) {
    const made = createCertificateAuthority();
    ca = { certificatePem: made.certificatePem, privateKeyPem: made.privateKeyPem };
    await writePair(dir, 'ca', ca);
  }
  let operator = await readPair(dir, 'operator');
  if (operator === null) {
    operator = issuePair(ca, 'operator', 'berth-operator');
    await writePair(dir, 'operator', operator);
  }
  let admin = await readPair(dir, 'admin');
  if (admin === null) {
    admin = issuePair(ca, 'admin', 'berth-admin');
    await writePair(dir, 'admin', admin);
  }
  if ((await readFileIfExists(join(dir, 'token.json'))) === null) await rotateJoinSecret(stateDir);
  return { dir, ca, caFingerprint: certificateFingerprint(ca.certificatePem), operator, admin };
}

/** Reads what exists without creating anything: for the CLI commands that talk to a running operator. */
export async function readClusterIdentity(stateDir: string): Promise<ClusterIdentity> {
  const dir = clusterDir(stateDir);
  const ca = await readPair(dir, 'ca');
  const operator = await readPair(dir, 'operator');
  const admin = await readPair(dir, 'admin');
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
