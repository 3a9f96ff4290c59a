import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateKeyPair, issueCertificate } from './certificates.js';
import {
  leafReissueReason,
  loadOrCreateClusterIdentity,
  readClusterIdentity,
  type LeafFacts,
} from './cluster-identity.js';

const CA_END = Date.UTC(2046, 0, 1);
const lasting: LeafFacts = { keyMatches: true, signedByCa: true, notAfterMs: CA_END, caNotAfterMs: CA_END };

describe('when the operator issues its own or the admin certificate again', () => {
  const cases: { name: string; facts: LeafFacts | null; want: string | null }[] = [
    { name: 'kept: lasts as long as the CA', facts: lasting, want: null },
    {
      name: 'kept: a few seconds past the CA (made just after it)',
      facts: { ...lasting, notAfterMs: CA_END + 5000 },
      want: null,
    },
    { name: 'missing', facts: null, want: 'missing' },
    {
      name: 'a 90-day certificate of an earlier version',
      facts: { ...lasting, notAfterMs: Date.UTC(2026, 3, 1) },
      want: 'expires before the CA',
    },
    {
      name: 'a key of another certificate',
      facts: { ...lasting, keyMatches: false },
      want: 'the key does not belong to the certificate',
    },
    {
      name: 'issued by another CA',
      facts: { ...lasting, signedByCa: false },
      want: 'not signed by the cluster CA',
    },
  ];
  for (const c of cases) {
    test(c.name, () => assert.equal(leafReissueReason(c.facts), c.want));
  }
});

describe('the admin certificate', () => {
  let stateDir: string;
  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'berth-identity-'));
  });
  after(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  test('lasts as long as the CA, and an expired one is replaced at the next start', async () => {
    const first = await loadOrCreateClusterIdentity(stateDir);
    const caEnd = new X509Certificate(first.ca.certificatePem).validTo;
    assert.equal(new X509Certificate(first.admin.certificatePem).validTo, caEnd);
    assert.equal(new X509Certificate(first.operator.certificatePem).validTo, caEnd);

    // What an earlier version left after its 90 days: an expired admin certificate.
    const keys = generateKeyPair();
    const expired = issueCertificate({
      ca: first.ca,
      publicKeyPem: keys.publicKeyPem,
      role: 'admin',
      name: 'berth-admin',
      validity: {
        notBefore: new Date(Date.now() - 2 * 86_400_000),
        notAfter: new Date(Date.now() - 86_400_000),
      },
    });
    await writeFile(join(stateDir, 'cluster', 'admin.key'), keys.privateKeyPem, { mode: 0o600 });
    await writeFile(join(stateDir, 'cluster', 'admin.crt'), expired.certificatePem);

    const reissued: string[] = [];
    const second = await loadOrCreateClusterIdentity(stateDir, (role, reason) =>
      reissued.push(`${role}: ${reason}`),
    );
    assert.deepEqual(reissued, ['admin: expires before the CA']);
    assert.equal(new X509Certificate(second.admin.certificatePem).validTo, caEnd);
    assert.equal(second.operator.certificatePem, first.operator.certificatePem);
    assert.equal((await readClusterIdentity(stateDir)).admin.certificatePem, second.admin.certificatePem);
    assert.equal(await readFile(join(stateDir, 'cluster', 'admin.crt'), 'utf8'), second.admin.certificatePem);
  });
});
