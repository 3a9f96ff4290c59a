import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually, runBerth, startBerth, targetArgs, type BerthProcess } from '../helpers/berth-cli.js';
import { requireDocker } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { namespaceManifest } from '../helpers/manifests.js';

const ns = `cr${Date.now().toString(36)}`;

describe('node certificates are renewed before they expire', () => {
  let repo: TestRepo;
  let dir: string;
  let operator: BerthProcess | undefined;
  let agent: BerthProcess | undefined;

  before(async () => {
    await requireDocker();
    dir = await mkdtemp(join(tmpdir(), 'berth-renewal-'));
    repo = await createTestRepo({
      'ns.yaml': namespaceManifest(ns),
    });
  });

  after(async () => {
    await agent?.stop();
    await operator?.stop();
    await repo.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('an agent renews its certificate with the current one; the old one is revoked', async () => {
    const stateDir = join(dir, 'state');
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, stateDir }),
      ...['--cluster-listen', '127.0.0.1:0', '--no-local-node', '--cert-expiry', '15s'],
    ]);
    assert.ok(operator.join, operator.output());
    const { endpoint: url, token } = operator.join;
    const agentDir = join(dir, 'agent');
    agent = await startBerth('agent', [
      '--join',
      url,
      '--token',
      token,
      '--node',
      `node-${ns}`,
      '--state-dir',
      agentDir,
    ]);
    const certPath = join(agentDir, 'cluster', 'node.crt');
    const first = await readFile(certPath, 'utf8');
    const firstKey = await readFile(join(agentDir, 'cluster', 'node.key'), 'utf8');
    const firstCert = new X509Certificate(first);
    const lifetime = new Date(firstCert.validTo).getTime() - Date.now();
    assert.ok(
      lifetime > 10_000 && lifetime <= 15_000,
      `issued for --cert-expiry 15s, valid ${lifetime} ms more`,
    );

    const renewed = await eventually(
      'a renewed certificate in the agent state dir',
      async () => {
        const current = await readFile(certPath, 'utf8');
        return current !== first ? current : null;
      },
      30_000,
    );
    const renewedCert = new X509Certificate(renewed);
    assert.notEqual(renewedCert.serialNumber, firstCert.serialNumber);
    assert.equal(
      renewedCert.checkIssued(
        new X509Certificate(await readFile(join(stateDir, 'cluster', 'ca.crt'), 'utf8')),
      ),
      true,
    );
    assert.ok(new Date(renewedCert.validTo) > new Date(firstCert.validTo));

    // The node is connected with the new certificate.
    await eventually('the node ready after renewal', async () => {
      const list = await runBerth(['node', 'ls', '--state-dir', stateDir, '--format', 'json']);
      const nodes = JSON.parse(list.stdout) as { name: string; status: string }[];
      return nodes.find((n) => n.name === `node-${ns}`)?.status === 'ready';
    });
    const registry = JSON.parse(await readFile(join(stateDir, 'cluster', 'nodes.json'), 'utf8')) as {
      revoked: { serial: string }[];
    };
    assert.ok(
      registry.revoked.some((r) => r.serial === firstCert.serialNumber.toLowerCase().replace(/^0+/, '')),
    );

    // The old certificate can no longer act.
    const ca = await readFile(join(stateDir, 'cluster', 'ca.crt'), 'utf8');
    const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const request = httpsRequest(
        new URL('/v1/renew', url),
        {
          method: 'POST',
          ca,
          cert: first,
          key: firstKey,
          checkServerIdentity: () => undefined,
          headers: { 'content-type': 'application/json' },
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
    assert.equal(refused.status, 401);
    assert.match(refused.body, /revoked|expired/);
  });
});
