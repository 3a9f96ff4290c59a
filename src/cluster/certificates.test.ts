import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  CLOCK_SKEW_MS,
  certificateFingerprint,
  createCertificateAuthority,
  generateKeyPair,
  identityOf,
  issueCertificate,
  normaliseSerial,
  renewalDueAt,
} from './certificates.js';

describe('cluster certificates', () => {
  const ca = createCertificateAuthority();
  const caCert = new X509Certificate(ca.certificatePem);

  test('the CA is self-signed and may only sign leaf certificates', () => {
    assert.equal(caCert.ca, true);
    assert.equal(caCert.verify(caCert.publicKey), true);
    assert.match(caCert.subject, /CN=berth cluster CA/);
  });

  test('a node certificate is issued by the CA for the given key, with its role and name', () => {
    const keys = generateKeyPair();
    const issued = issueCertificate({ ca, publicKeyPem: keys.publicKeyPem, role: 'node', name: 'worker-1' });
    const cert = new X509Certificate(issued.certificatePem);
    assert.equal(cert.ca, false);
    assert.equal(cert.checkIssued(caCert), true);
    assert.equal(cert.verify(caCert.publicKey), true);
    assert.equal(cert.publicKey.export({ type: 'spki', format: 'pem' }), keys.publicKeyPem);
    assert.match(cert.subject, /CN=worker-1/);
    assert.match(cert.subject, /OU=node/);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(normaliseSerial(cert.serialNumber), issued.serial);
    const days = (new Date(cert.validTo).getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 89 && days <= 90, `valid for ${days} days`);
  });

  test('the operator certificate is for servers, the admin one for clients', () => {
    const keys = generateKeyPair();
    const server = new X509Certificate(
      issueCertificate({ ca, publicKeyPem: keys.publicKeyPem, role: 'operator', name: 'berth-operator' })
        .certificatePem,
    );
    assert.deepEqual(server.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    const admin = new X509Certificate(
      issueCertificate({ ca, publicKeyPem: keys.publicKeyPem, role: 'admin', name: 'berth-admin' })
        .certificatePem,
    );
    assert.match(admin.subject, /OU=admin/);
  });

  test('a certificate of another CA does not verify against this one', () => {
    const other = createCertificateAuthority();
    const keys = generateKeyPair();
    const foreign = new X509Certificate(
      issueCertificate({ ca: other, publicKeyPem: keys.publicKeyPem, role: 'node', name: 'worker-1' })
        .certificatePem,
    );
    assert.equal(foreign.verify(caCert.publicKey), false);
    assert.notEqual(certificateFingerprint(other.certificatePem), certificateFingerprint(ca.certificatePem));
  });

  test('the fingerprint is the SHA-256 of the DER encoding', () => {
    assert.equal(
      certificateFingerprint(ca.certificatePem),
      createHash('sha256').update(caCert.raw).digest('hex'),
    );
    assert.equal(
      caCert.fingerprint256.replaceAll(':', '').toLowerCase(),
      certificateFingerprint(ca.certificatePem),
    );
  });

  test('renewal is due once a third of the lifetime is left', () => {
    const issuedAt = Date.parse('2026-01-01T00:00:00Z');
    const due = renewalDueAt({
      validFrom: new Date(issuedAt - CLOCK_SKEW_MS).toISOString(),
      validTo: new Date(issuedAt + 90 * 86_400_000).toISOString(),
    });
    assert.equal(due, issuedAt + 60 * 86_400_000);
  });

  test('identityOf reads role, name and serial as the TLS layer reports them', () => {
    assert.deepEqual(identityOf({ subject: { CN: 'worker-1', OU: 'node' }, serialNumber: '00AB12' }), {
      role: 'node',
      name: 'worker-1',
      serial: 'ab12',
    });
    assert.deepEqual(identityOf({}), { role: '', name: '', serial: '' });
  });
});
