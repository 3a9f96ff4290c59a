import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BerthError } from '../core/errors.js';
import { certificateFingerprint } from '../core/self-signed-certificate.js';
import { agentApiPaths, loadOrCreateApiSecret, loadOrCreateTlsIdentity } from './api-credentials.js';

describe("the agent API's key, certificate and secret in the state dir", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-api-credentials-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('made once, 0600, then reused', async () => {
    const made = await loadOrCreateTlsIdentity(dir, 'node-a');
    assert.equal(made.created, true);
    const cert = new X509Certificate(made.certificatePem);
    assert.match(cert.subject, /CN=berth agent node-a/);
    assert.equal(cert.verify(cert.publicKey), true);
    assert.equal(made.fingerprint, certificateFingerprint(made.certificatePem));
    const again = await loadOrCreateTlsIdentity(dir, 'node-a');
    assert.equal(again.created, false);
    assert.equal(again.fingerprint, made.fingerprint);

    const secret = await loadOrCreateApiSecret(dir, undefined);
    assert.equal(secret.source, 'created');
    assert.deepEqual(await loadOrCreateApiSecret(dir, ''), { secret: secret.secret, source: 'stored' });
    assert.deepEqual(await loadOrCreateApiSecret(dir, 'given'), { secret: 'given', source: 'given' });

    const paths = agentApiPaths(dir);
    for (const path of [paths.identity, paths.secret]) {
      assert.equal((await stat(path)).mode & 0o777, 0o600, path);
    }
    assert.equal((await readFile(paths.secret, 'utf8')).trim(), secret.secret);
  });

  test('a broken key file is refused, not replaced (that would void every token out there)', async () => {
    const broken = await mkdtemp(join(dir, 'broken-'));
    const other = await loadOrCreateTlsIdentity(join(broken, 'other'), 'x');
    const mine = await loadOrCreateTlsIdentity(broken, 'x');
    const path = agentApiPaths(broken).identity;
    await writeFile(path, mine.privateKeyPem + other.certificatePem);
    await assert.rejects(
      loadOrCreateTlsIdentity(broken, 'x'),
      (e: unknown) =>
        e instanceof BerthError &&
        e.code === 'ERR_STATE' &&
        /does not belong to its certificate; remove it/.test(e.message),
    );
    await writeFile(path, 'garbage');
    await assert.rejects(
      loadOrCreateTlsIdentity(broken, 'x'),
      /does not hold a private key and a certificate/,
    );
    assert.equal(await readFile(path, 'utf8'), 'garbage');
  });
});
