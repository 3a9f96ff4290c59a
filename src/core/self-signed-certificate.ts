/**
 * Keys, fingerprints and self-signed certificates: what the cluster's CA (src/cluster) and an
 * agent's HTTPS API (src/agent) both build on. node-forge builds and signs certificates; keys are
 * made by node's own crypto (fast, native).
 */
import { X509Certificate, createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type Forge from 'node-forge';

let forge: typeof Forge | undefined;

/**
 * node-forge, loaded when a certificate is first made or issued: that is rare (a node's first
 * start, a join, a renewal), and its modules would otherwise stay in every agent's and operator's
 * heap (about 2 MiB). CommonJS, so require is synchronous.
 */
export function forgeLibrary(): typeof Forge {
  forge ??= createRequire(import.meta.url)('node-forge') as typeof Forge;
  return forge;
}

export interface KeyPair {
  /** PKCS#1 PEM of the private key. */
  privateKeyPem: string;
  /** SPKI PEM of the public key. */
  publicKeyPem: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;

export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** A positive (high bit clear) 16-byte serial: unique without any counter to keep. */
export function newCertificateSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

/** SHA-256 of a certificate's DER, lower-case hex without separators. */
export function derFingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/** SHA-256 of the certificate's DER, lower-case hex: what a join token or an agent token pins. */
export function certificateFingerprint(certificatePem: string): string {
  return derFingerprint(new X509Certificate(certificatePem).raw);
}

/**
 * A self-signed TLS server certificate for `commonName`, valid from a minute ago (clocks a
 * little apart) for `days`. Peers pin its fingerprint instead of checking a chain or a host name,
 * so it names no host.
 */
export function createSelfSignedCertificate(args: {
  commonName: string;
  days: number;
}): KeyPair & { certificatePem: string } {
  const keys = generateKeyPair();
  const cert = forgeLibrary().pki.createCertificate();
  cert.publicKey = forgeLibrary().pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = newCertificateSerial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + args.days * DAY_MS);
  const subject = [
    { name: 'commonName', value: args.commonName },
    { name: 'organizationName', value: 'berth' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
  ]);
  cert.sign(forgeLibrary().pki.privateKeyFromPem(keys.privateKeyPem), forgeLibrary().md.sha256.create());
  return { ...keys, certificatePem: forgeLibrary().pki.certificateToPem(cert) };
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----\r?\n?/g;

/**
 * A private key followed by its certificate, as ONE file: replaced by one atomic rename, a crash
 * leaves the old pair or the new one, never a new key beside an old certificate.
 */
export function formatKeyAndCertificate(pair: { privateKeyPem: string; certificatePem: string }): string {
  const line = (pem: string): string => (pem.endsWith('\n') ? pem : `${pem}\n`);
  return line(pair.privateKeyPem) + line(pair.certificatePem);
}

/** The key and the certificate of a formatKeyAndCertificate file, or null when it lacks either. */
export function parseKeyAndCertificate(
  text: string,
): { privateKeyPem: string; certificatePem: string } | null {
  let privateKeyPem: string | null = null;
  let certificatePem: string | null = null;
  for (const match of text.matchAll(PEM_BLOCK)) {
    const block = match[0].endsWith('\n') ? match[0] : `${match[0]}\n`;
    if (match[1] === 'CERTIFICATE') certificatePem ??= block;
    else if (match[1]?.endsWith('PRIVATE KEY')) privateKeyPem ??= block;
  }
  return privateKeyPem && certificatePem ? { privateKeyPem, certificatePem } : null;
}
