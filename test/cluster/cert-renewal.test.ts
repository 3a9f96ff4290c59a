/**
 * Node certificate renewal on a live cluster with a 12 s --cert-expiry: the agent renews, the
 * operator revokes the old certificate once the agent connects with the new one, and the admin
 * certificate (`berth node ls`) outlives the node certificates. Every wait is for an event (a
 * file changing, nodes.json recording it, a notAfter passing), bounded, never a time window.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateKeyPair, issueCertificate, normaliseSerial } from '../../src/cluster/certificates.js';
import { parseIdentityFile } from '../../src/cluster/node-credentials.js';
import { eventually, runBerth, startBerth, targetArgs, type BerthProcess } from '../helpers/berth-cli.js';
import { requireDocker } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { namespaceManifest } from '../helpers/manifests.js';

const ns = `cr${Date.now().toString(36)}`;
const node = `node-${ns}`;
const EXPIRY_MS = 12_000;

interface RegistryFile {
  nodes: { name: string; serial: string; renewed?: { serial: string } }[];
  revoked: { serial: string }[];
}

const serialOf = (certificatePem: string): string =>
  normaliseSerial(new X509Certificate(certificatePem).serialNumber);

/** POST /v1/renew with the given client certificate: the operator's answer. */
function renewWith(url: string, ca: string, identity: { certificatePem: string; privateKeyPem: string }) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const request = httpsRequest(
      new URL('/v1/renew', url),
      {
        method: 'POST',
        ca,
        cert: identity.certificatePem,
        key: identity.privateKeyPem,
        checkServerIdentity: () => undefined,
        headers: { 'content-type': 'application/json' },
        agent: false,
      },
      (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      },
    );
    request.on('error', reject);
    request.end(JSON.stringify({ publicKeyPem: 'x' }));
  });
}

describe('node certificates are renewed before they expire; the admin certificate outlives them', () => {
  let repo: TestRepo;
  let dir: string;
  let stateDir: string;
  let agentDir: string;
  let operator: BerthProcess | undefined;
  let agent: BerthProcess | undefined;
  let url: string;
  let firstNodeCertificate: X509Certificate;

  const identityFile = () => join(agentDir, 'cluster', 'node.pem');
  const storedIdentity = async () => parseIdentityFile(await readFile(identityFile(), 'utf8'))!;
  const registry = async () =>
    JSON.parse(await readFile(join(stateDir, 'cluster', 'nodes.json'), 'utf8')) as RegistryFile;
  const nodeList = async () => {
    const list = await runBerth(['node', 'ls', '--state-dir', stateDir, '--format', 'json']);
    assert.equal(list.code, 0, list.stderr);
    return JSON.parse(list.stdout) as { name: string; status: string }[];
  };
  const startOperator = async () => {
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, stateDir }),
      ...['--cluster-listen', '127.0.0.1:0', '--no-local-node', '--cert-expiry', `${EXPIRY_MS / 1000}s`],
    ]);
    assert.ok(operator.join, operator.output());
    return operator.join;
  };

  before(async () => {
    await requireDocker();
    dir = await mkdtemp(join(tmpdir(), 'berth-renewal-'));
    stateDir = join(dir, 'state');
    agentDir = join(dir, 'agent');
    repo = await createTestRepo({ 'ns.yaml': namespaceManifest(ns) });
  });

  after(async () => {
    await agent?.stop();
    await operator?.stop();
    await repo?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('an agent renews with its current certificate; the old one is revoked once the new one connects', async () => {
    const joined = await startOperator();
    url = joined.endpoint;
    agent = await startBerth('agent', [
      '--join',
      url,
      '--token',
      joined.token,
      '--node',
      node,
      '--state-dir',
      agentDir,
    ]);
    const first = await storedIdentity();
    firstNodeCertificate = new X509Certificate(first.certificatePem);
    const lifetime =
      new Date(firstNodeCertificate.validTo).getTime() - new Date(firstNodeCertificate.validFrom).getTime();
    // Valid from a minute before issue (clock skew) to --cert-expiry after it.
    assert.equal(lifetime, 60_000 + EXPIRY_MS);

    const renewed = await eventually(
      'a renewed key and certificate in node.pem',
      async () => {
        const current = await storedIdentity();
        return current.certificatePem !== first.certificatePem ? current : null;
      },
      60_000,
    );
    assert.notEqual(renewed.privateKeyPem, first.privateKeyPem, 'a fresh key for each certificate');
    const renewedCert = new X509Certificate(renewed.certificatePem);
    const ca = await readFile(join(stateDir, 'cluster', 'ca.crt'), 'utf8');
    assert.equal(renewedCert.checkIssued(new X509Certificate(ca)), true);
    assert.equal(renewedCert.checkPrivateKey(createPrivateKey(renewed.privateKeyPem)), true);
    assert.ok(new Date(renewedCert.validTo) > new Date(firstNodeCertificate.validTo));

    // The agent reconnects with the new certificate: the operator makes it current and revokes the old.
    const recorded = await eventually('the operator records the renewed certificate as used', async () => {
      const file = await registry();
      const entry = file.nodes.find((n) => n.name === node);
      return entry?.serial !== serialOf(first.certificatePem) ? file : null;
    });
    assert.ok(recorded.revoked.some((r) => r.serial === serialOf(first.certificatePem)));
    await eventually('the node ready after renewal', async () =>
      (await nodeList()).some((n) => n.name === node && n.status === 'ready'),
    );

    // The old certificate can no longer act.
    const refused = await renewWith(url, ca, first);
    assert.equal(refused.status, 401);
    assert.match(refused.body, /revoked|expired/);
    assert.equal(agent.child.exitCode, null, agent.output());
  });

  test('berth node ls works after the first node certificate has expired: the admin certificate lasts as long as the CA', async () => {
    const expiredAt = new Date(firstNodeCertificate.validTo).getTime();
    await eventually(
      'the first node certificate past its notAfter',
      async () => Date.now() > expiredAt + 1000,
      60_000,
    );
    const nodes = await nodeList();
    assert.ok(
      nodes.some((n) => n.name === node),
      JSON.stringify(nodes),
    );
    const admin = new X509Certificate(await readFile(join(stateDir, 'cluster', 'admin.crt'), 'utf8'));
    const ca = new X509Certificate(await readFile(join(stateDir, 'cluster', 'ca.crt'), 'utf8'));
    assert.equal(admin.validTo, ca.validTo);
    assert.equal(agent?.child.exitCode, null, agent?.output());
  });

  test('an expired admin certificate (an earlier version issued them for 90 days) is replaced when the operator starts', async () => {
    await operator?.stop();
    const caPair = {
      certificatePem: await readFile(join(stateDir, 'cluster', 'ca.crt'), 'utf8'),
      privateKeyPem: await readFile(join(stateDir, 'cluster', 'ca.key'), 'utf8'),
    };
    const keys = generateKeyPair();
    const expired = issueCertificate({
      ca: caPair,
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

    await startOperator();
    const nodes = await nodeList();
    assert.ok(
      nodes.some((n) => n.name === node),
      JSON.stringify(nodes),
    );
    const admin = new X509Certificate(await readFile(join(stateDir, 'cluster', 'admin.crt'), 'utf8'));
    assert.equal(admin.validTo, new X509Certificate(caPair.certificatePem).validTo);
    assert.match(operator?.stderr() ?? '', /"role":"admin","reason":"expires before the CA"/);
  });
});
