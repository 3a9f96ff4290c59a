import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createCertificateAuthority, generateKeyPair, issueCertificate } from './certificates.js';
import {
  formatIdentityFile,
  parseIdentityFile,
  readStoredIdentities,
  saveCredentials,
  serialOf,
  startupIdentity,
  type StoredIdentityFacts,
} from './node-credentials.js';

const NOW = 1_000_000;
const good: StoredIdentityFacts = {
  source: 'node.pem',
  caFingerprint: 'ca-1',
  signedByCa: true,
  name: 'web-1',
  validToMs: NOW + 1,
  keyMatches: true,
};
const legacy: StoredIdentityFacts = { ...good, source: 'node.key+node.crt' };

describe('which stored identity an agent starts with', () => {
  const cases: { name: string; candidates: StoredIdentityFacts[]; want: string }[] = [
    { name: 'node.pem, current', candidates: [good, legacy], want: 'node.pem' },
    { name: 'nothing stored: join', candidates: [], want: 'join' },
    { name: 'the legacy pair when there is no node.pem', candidates: [legacy], want: 'node.key+node.crt' },
    {
      name: 'the legacy pair when node.pem has expired',
      candidates: [{ ...good, validToMs: NOW }, legacy],
      want: 'node.key+node.crt',
    },
    { name: 'expired: join', candidates: [{ ...good, validToMs: NOW - 1 }], want: 'join' },
    {
      name: 'a key of another certificate: join',
      candidates: [{ ...good, keyMatches: false }],
      want: 'join',
    },
    { name: 'another cluster: join', candidates: [{ ...good, caFingerprint: 'ca-2' }], want: 'join' },
    { name: 'not signed by the stored CA: join', candidates: [{ ...good, signedByCa: false }], want: 'join' },
    { name: 'another node name: join', candidates: [{ ...good, name: 'web-2' }], want: 'join' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const choice = startupIdentity(c.candidates, { caFingerprint: 'ca-1', node: 'web-1', nowMs: NOW });
      assert.equal('use' in choice ? choice.use : 'join', c.want);
      if ('join' in choice) assert.equal(choice.reasons.length, c.candidates.length);
    });
  }
});

describe('node.pem on disk', () => {
  let dir: string;
  const authority = createCertificateAuthority();
  const ca = { certificatePem: authority.certificatePem, privateKeyPem: authority.privateKeyPem };
  const credentialsFor = (name: string) => {
    const keys = generateKeyPair();
    const issued = issueCertificate({ ca, publicKeyPem: keys.publicKeyPem, role: 'node', name });
    return {
      caCertificatePem: ca.certificatePem,
      certificatePem: issued.certificatePem,
      privateKeyPem: keys.privateKeyPem,
    };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-node-credentials-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('holds key and certificate in one file that parses back to both', () => {
    const credentials = credentialsFor('web-1');
    assert.deepEqual(parseIdentityFile(formatIdentityFile(credentials)), {
      privateKeyPem: credentials.privateKeyPem,
      certificatePem: credentials.certificatePem,
    });
    assert.equal(parseIdentityFile(credentials.certificatePem), null);
  });

  test('is written owner-only and replaces the legacy pair, which is read until then', async () => {
    const stateDir = join(dir, 'legacy');
    const old = credentialsFor('web-1');
    await saveCredentials(stateDir, old);
    // An agent of an earlier version: node.key and node.crt, no node.pem.
    await rm(join(stateDir, 'cluster', 'node.pem'));
    await writeFile(join(stateDir, 'cluster', 'node.key'), old.privateKeyPem);
    await writeFile(join(stateDir, 'cluster', 'node.crt'), old.certificatePem);
    const before = await readStoredIdentities(stateDir);
    assert.deepEqual(
      before.map((s) => [s.facts.source, s.facts.keyMatches, s.facts.signedByCa]),
      [['node.key+node.crt', true, true]],
    );

    const renewed = credentialsFor('web-1');
    await saveCredentials(stateDir, renewed);
    assert.deepEqual((await readdir(join(stateDir, 'cluster'))).sort(), ['ca.crt', 'node.pem']);
    assert.equal((await stat(join(stateDir, 'cluster', 'node.pem'))).mode & 0o077, 0);
    const after = await readStoredIdentities(stateDir);
    assert.deepEqual(
      after.map((s) => [s.facts.source, serialOf(s.credentials.certificatePem)]),
      [['node.pem', serialOf(renewed.certificatePem)]],
    );
  });

  test('a key stored beside a certificate of another key is read as not matching', async () => {
    const stateDir = join(dir, 'mismatch');
    const one = credentialsFor('web-1');
    await saveCredentials(stateDir, one);
    await writeFile(
      join(stateDir, 'cluster', 'node.pem'),
      formatIdentityFile({ ...one, privateKeyPem: generateKeyPair().privateKeyPem }),
    );
    const stored = await readStoredIdentities(stateDir);
    assert.deepEqual(
      stored.map((s) => s.facts.keyMatches),
      [false],
    );
  });
});
