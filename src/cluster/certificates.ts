/**
 * The cluster's X.509 material: a self-signed CA made by the operator on first start, and the
 * certificates it issues with it (the operator's own TLS server certificate, one client
 * certificate per joined node, one for the local admin CLI). node-forge builds and signs the
 * certificates; keys are made by node's own crypto (fast, native).
 *
 * The role of a certificate is its OU (`operator`, `node`, `admin`), its name the CN, as Swarm
 * does: peers check the role, not a host name, because the address an agent dials may be a NAT
 * or load-balancer address the operator cannot know.
 */
import {
  certificateFingerprint,
  forgeLibrary,
  generateKeyPair,
  newCertificateSerial as newSerial,
  type KeyPair,
} from '../core/self-signed-certificate.js';

export { certificateFingerprint, generateKeyPair, type KeyPair };

export type CertificateRole = 'operator' | 'node' | 'admin';

export interface IssuedCertificate {
  certificatePem: string;
  serial: string;
  notAfter: string;
}

/** Node certificates live 90 days, as Swarm's do; the CA 20 years, as Swarm's root does. */
export const NODE_CERTIFICATE_DAYS = 90;
export const CA_CERTIFICATE_DAYS = 20 * 365;

const DAY_MS = 24 * 60 * 60 * 1000;

/** Certificates are valid from a minute before they are issued, for clocks a little apart. */
export const CLOCK_SKEW_MS = 60_000;

/** When a certificate should be renewed: once a third of its lifetime is left (as Swarm does, roughly). */
export function renewalDueAt(certificate: { validFrom: string; validTo: string }): number {
  const from = new Date(certificate.validFrom).getTime() + CLOCK_SKEW_MS;
  const to = new Date(certificate.validTo).getTime();
  return to - Math.max(0, to - from) / 3;
}

export function createCertificateAuthority(): KeyPair & { certificatePem: string } {
  const keys = generateKeyPair();
  const cert = forgeLibrary().pki.createCertificate();
  cert.publicKey = forgeLibrary().pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = newSerial();
  cert.validity.notBefore = new Date(Date.now() - CLOCK_SKEW_MS);
  cert.validity.notAfter = new Date(Date.now() + CA_CERTIFICATE_DAYS * DAY_MS);
  const subject = [
    { name: 'commonName', value: 'berth cluster CA' },
    { name: 'organizationName', value: 'berth' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forgeLibrary().pki.privateKeyFromPem(keys.privateKeyPem), forgeLibrary().md.sha256.create());
  return { ...keys, certificatePem: forgeLibrary().pki.certificateToPem(cert) };
}

/**
 * Issues a certificate for `publicKeyPem` signed by the CA. `validity` may be given to make
 * certificates that are already expired (tests of the refusal path) or short-lived.
 */
export function issueCertificate(args: {
  ca: { certificatePem: string; privateKeyPem: string };
  publicKeyPem: string;
  role: CertificateRole;
  name: string;
  validity?: { notBefore: Date; notAfter: Date };
}): IssuedCertificate {
  const caCert = forgeLibrary().pki.certificateFromPem(args.ca.certificatePem);
  const cert = forgeLibrary().pki.createCertificate();
  cert.publicKey = forgeLibrary().pki.publicKeyFromPem(args.publicKeyPem);
  cert.serialNumber = newSerial();
  cert.validity.notBefore = args.validity?.notBefore ?? new Date(Date.now() - CLOCK_SKEW_MS);
  cert.validity.notAfter =
    args.validity?.notAfter ??
    new Date(Date.now() + (args.role === 'operator' ? CA_CERTIFICATE_DAYS : NODE_CERTIFICATE_DAYS) * DAY_MS);
  cert.setSubject([
    { name: 'commonName', value: args.name },
    { name: 'organizationName', value: 'berth' },
    { name: 'organizationalUnitName', value: args.role },
  ]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    {
      name: 'extKeyUsage',
      serverAuth: args.role === 'operator',
      clientAuth: args.role !== 'operator',
    },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(forgeLibrary().pki.privateKeyFromPem(args.ca.privateKeyPem), forgeLibrary().md.sha256.create());
  return {
    certificatePem: forgeLibrary().pki.certificateToPem(cert),
    serial: normaliseSerial(cert.serialNumber),
    notAfter: cert.validity.notAfter.toISOString(),
  };
}

/** Role, name and serial of a peer certificate as Node's TLS layer reports it. */
export function identityOf(peer: { subject?: Record<string, unknown>; serialNumber?: string }): {
  role: string;
  name: string;
  serial: string;
} {
  const field = (key: string): string => {
    const value = peer.subject?.[key];
    return typeof value === 'string' ? value : Array.isArray(value) ? String(value[0]) : '';
  };
  return { role: field('OU'), name: field('CN'), serial: normaliseSerial(peer.serialNumber ?? '') };
}

/** Serials compared as Node's TLS layer prints them and as forge writes them: hex, no leading zeros. */
export function normaliseSerial(serial: string): string {
  return serial.toLowerCase().replace(/^0+/, '');
}
