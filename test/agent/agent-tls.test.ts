/**
 * `berth agent --listen` over HTTPS, as real processes on a real engine, all on loopback: the
 * agent's self-signed certificate pinned by the token it prints, one secret per agent, no plain
 * HTTP off loopback, and the operator deploying through two agents with one token each.
 */
import assert from 'node:assert/strict';
import { readFile, readdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseAgentToken } from '../../src/agent/agent-token.js';
import { createAgentClient } from '../../src/agent/client.js';
import { BerthError } from '../../src/core/errors.js';
import {
  certificateFingerprint,
  createSelfSignedCertificate,
  parseKeyAndCertificate,
} from '../../src/core/self-signed-certificate.js';
import { eventually, runBerth, startBerth, type BerthProcess } from '../helpers/berth-cli.js';
import { requireTestImages, testDocker } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, sleeperService } from '../helpers/manifests.js';
import { removeNamespace } from '../operator/cluster-probe.js';

const ns = `agenttls${Date.now().toString(36)}`;
const nodeA = `tls-a-${ns}`;
const nodeB = `tls-b-${ns}`;

interface ListeningAgent {
  process: BerthProcess;
  url: string;
  token: string;
  fingerprint: string;
  secret: string;
}

function startListeningAgent(node: string, stateDir: string): Promise<BerthProcess> {
  return startBerth('agent', ['--listen', '127.0.0.1:0', '--node', node, '--state-dir', stateDir], {
    env: { BERTH_AGENT_TOKEN: '' },
  });
}

function listening(process: BerthProcess): ListeningAgent {
  assert.ok(process.url && process.agentToken, process.output());
  const { fingerprint, secret } = parseAgentToken(process.agentToken);
  assert.ok(fingerprint, process.agentToken);
  return { process, url: process.url, token: process.agentToken, fingerprint, secret };
}

const refusedPin = (url: string, presented: string, pinned: string) => (error: unknown) =>
  error instanceof BerthError &&
  error.code === 'ERR_AGENT_UNAUTHORIZED' &&
  error.message.includes(
    `the agent at ${url} presents certificate SHA-256 ${presented}, but its token pins ${pinned}`,
  );

void describe('the agent API over HTTPS, pinned, one token per agent', () => {
  let dir: string;
  let repo: TestRepo;
  let a: ListeningAgent;
  let b: ListeningAgent;
  const started: BerthProcess[] = [];

  before(async () => {
    await requireTestImages();
    dir = await mkdtemp(join(tmpdir(), 'berth-agent-tls-'));
    repo = await createTestRepo({
      'app.yaml': manifestFile(
        namespaceManifest(ns),
        sleeperService({ name: 'everywhere', namespace: ns, mode: 'global', update: { monitor: '200ms' } }),
      ),
    });
    for (const [node, sub] of [
      [nodeA, 'a'],
      [nodeB, 'b'],
    ] as const) {
      started.push(await startListeningAgent(node, join(dir, sub)));
    }
    a = listening(started[0]!);
    b = listening(started[1]!);
  });

  after(async () => {
    await Promise.all(started.map((p) => p.stop()));
    await removeNamespace(ns);
    await repo?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  void test('plain HTTP off loopback is refused before anything starts', async () => {
    for (const listen of ['0.0.0.0:0', '[::]:0', ':0']) {
      const stateDir = join(dir, 'refused');
      const result = await runBerth(
        ['agent', '--listen', listen, '--insecure-http', '--state-dir', stateDir],
        {
          env: { BERTH_AGENT_TOKEN: 'some-secret' },
        },
      );
      assert.equal(result.code, 1, listen);
      assert.equal(
        result.stderr.trim(),
        `berth: --insecure-http serves the agent API and its token in plain text, so only on a loopback address (127.0.0.1, ::1), not on ${listen}: drop --insecure-http to serve HTTPS`,
      );
      await assert.rejects(stat(stateDir), { code: 'ENOENT' });
    }
  });

  void test('each agent serves HTTPS with its own certificate and secret, kept 0600 in its state dir', async () => {
    assert.match(a.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(a.token, /^BERTH-AGENT-1-[0-9a-f]{64}-[0-9a-f]{48}$/);
    assert.match(a.process.stdout(), new RegExp(`^    --agent ${a.url} --agent-token ${a.token}$`, 'm'));
    assert.notEqual(a.fingerprint, b.fingerprint);
    assert.notEqual(a.secret, b.secret);

    const api = join(dir, 'a', 'api');
    assert.deepEqual((await readdir(api)).sort(), ['agent.pem', 'secret']);
    for (const file of ['agent.pem', 'secret']) {
      assert.equal((await stat(join(api, file))).mode & 0o777, 0o600, file);
    }
    const pair = parseKeyAndCertificate(await readFile(join(api, 'agent.pem'), 'utf8'));
    assert.ok(pair);
    assert.equal(certificateFingerprint(pair.certificatePem), a.fingerprint);
    assert.equal((await readFile(join(api, 'secret'), 'utf8')).trim(), a.secret);
  });

  void test('a plain-HTTP client gets nothing from the TLS port', async () => {
    await assert.rejects(
      fetch(`${a.url.replace('https:', 'http:')}/healthz`, { signal: AbortSignal.timeout(10_000) }),
    );
    const plain = createAgentClient({
      url: a.url.replace('https:', 'http:'),
      token: a.secret,
      nodeName: nodeA,
    });
    await assert.rejects(
      plain.snapshot(),
      (error: unknown) => error instanceof BerthError && error.code === 'ERR_AGENT_UNREACHABLE',
    );
    await plain.close();
  });

  void test("one agent's token does not drive another", async () => {
    const pinnedToA = createAgentClient({ url: b.url, token: a.token, nodeName: nodeB });
    await assert.rejects(pinnedToA.snapshot(), refusedPin(b.url, b.fingerprint, a.fingerprint));
    await pinnedToA.close();

    // Even past the pin, B refuses A's secret.
    const secretOfA = createAgentClient({
      url: b.url,
      token: `BERTH-AGENT-1-${b.fingerprint}-${a.secret}`,
      nodeName: nodeB,
    });
    await assert.rejects(
      secretOfA.snapshot(),
      (error: unknown) =>
        error instanceof BerthError &&
        error.code === 'ERR_AGENT_UNAUTHORIZED' &&
        /missing or wrong agent token/.test(error.message),
    );
    await secretOfA.close();
    // The agent logs the refusal as it answers; the line reaches its stderr a moment later.
    await eventually('agent B logs the refused token', async () =>
      /"msg":"agent request without a valid token"/.test(b.process.stderr()),
    );

    const own = createAgentClient({ url: b.url, token: b.token, nodeName: nodeB });
    assert.equal((await own.snapshot()).name, nodeB);
    await own.close();
  });

  void test('a server with another certificate never receives a request, so never the token', async () => {
    const impostorCert = createSelfSignedCertificate({ commonName: 'impostor', days: 1 });
    const requests: string[] = [];
    const impostor: Server = createServer(
      { key: impostorCert.privateKeyPem, cert: impostorCert.certificatePem },
      (request, response) => {
        requests.push(`${request.method} ${request.url} ${request.headers.authorization ?? ''}`);
        response.end('{}');
      },
    );
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://127.0.0.1:${(impostor.address() as AddressInfo).port}`;
      const client = createAgentClient({ url, token: a.token, nodeName: nodeA });
      await assert.rejects(
        client.snapshot(),
        refusedPin(url, certificateFingerprint(impostorCert.certificatePem), a.fingerprint),
      );
      await client.close();
      assert.deepEqual(requests, []);
    } finally {
      await new Promise((resolve) => impostor.close(resolve));
    }
  });

  void test('the operator refuses a wrong fingerprint and deploys nothing, then deploys with one token per agent', async () => {
    const state = join(dir, 'state');
    const wrong = await runBerth(
      [
        ...['apply', '--repo', repo.dir, '--state-dir', state],
        ...['--agent', a.url, '--agent-token', `BERTH-AGENT-1-${b.fingerprint}-${a.secret}`],
      ],
      { env: { BERTH_AGENT_TOKEN: '' } },
    );
    assert.equal(wrong.code, 1, wrong.stdout + wrong.stderr);
    assert.match(
      wrong.stderr,
      new RegExp(
        `^berth: the agent at ${a.url} presents certificate SHA-256 ${a.fingerprint}, but its token pins ${b.fingerprint}`,
        'm',
      ),
    );
    assert.deepEqual(await nodesRunning(), []);

    const tokenFile = join(dir, 'agent-tokens');
    await writeFile(tokenFile, `# url token\n${a.url} ${a.token}\n${b.url} ${b.token}\n`, { mode: 0o600 });
    const result = await runBerth(
      [
        ...['apply', '--repo', repo.dir, '--state-dir', state],
        ...['--agent', a.url, '--agent', b.url, '--agent-token-file', tokenFile],
      ],
      { env: { BERTH_AGENT_TOKEN: '' } },
    );
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.deepEqual(await nodesRunning(), [nodeA, nodeB].sort());
  });

  void test('a restarted agent serves the same certificate and secret: its token still works', async () => {
    await a.process.stop();
    const again = await startListeningAgent(nodeA, join(dir, 'a'));
    started.push(again);
    assert.equal(again.agentToken, a.token, again.output());
    assert.ok(again.url);
    const client = createAgentClient({ url: again.url, token: a.token, nodeName: nodeA });
    assert.equal((await client.snapshot()).name, nodeA);
    await client.close();
  });
});

/** The nodes (berth.node labels) that run a replica of the namespace, sorted. */
async function nodesRunning(): Promise<string[]> {
  const containers = await testDocker().listContainers({ filters: { label: [`berth.namespace=${ns}`] } });
  return containers.map((c) => c.Labels['berth.node'] ?? '').sort();
}
