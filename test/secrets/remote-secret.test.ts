/**
 * Secret delivery to a remote agent: the operator holds the key and decrypts; the agent has none
 * and receives the value only over its token-authenticated API, keeps it on its tmpfs, and never
 * logs it (even at debug level) or writes it anywhere else in its state directory.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { isTmpfsMountPoint } from '../../src/agent/file-store.js';
import { ageEncrypt, createAgeIdentity } from '../helpers/age.js';
import { runBerth, startBerth, type BerthProcess } from '../helpers/berth-cli.js';
import { dockerExec, requireTestImages, testDocker } from '../helpers/docker.js';
import { filesContaining } from '../helpers/files-containing.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, secretManifest, sleeperService } from '../helpers/manifests.js';
import { removeNamespace } from '../operator/cluster-probe.js';

const run = promisify(execFile);
const ns = `rsec${Date.now().toString(36)}`;
const node = `agent-${ns}`;
const token = `token-${randomBytes(8).toString('hex')}`;

describe('secrets delivered to a remote agent', () => {
  let repo: TestRepo;
  let dir: string;
  let agent: BerthProcess | undefined;
  let url: string;
  let keyFile: string;
  const plaintext = `remote-${randomBytes(32).toString('hex')}`;

  before(async () => {
    await requireTestImages();
    dir = await mkdtemp(join(tmpdir(), 'berth-remote-secret-'));
    keyFile = join(dir, 'ops.key');
    const recipient = await createAgeIdentity(keyFile);
    repo = await createTestRepo({
      'app.yaml': manifestFile(
        namespaceManifest(ns),
        secretManifest({
          name: 'api',
          namespace: ns,
          data: { token: await ageEncrypt(recipient, plaintext) },
        }),
        sleeperService({
          name: 'app',
          namespace: ns,
          command: ['sh', '-c', 'exec sleep 3600'],
          update: { monitor: '500ms' },
          secrets: [{ source: 'api', key: 'token' }],
        }),
      ),
    });
    // The agent gets no key at all: only the operator can decrypt.
    agent = await startBerth(
      'agent',
      ['--listen', '127.0.0.1:0', '--insecure-http', '--node', node, '--state-dir', join(dir, 'agent')],
      {
        env: {
          BERTH_AGENT_TOKEN: token,
          BERTH_LOG_LEVEL: 'debug',
          BERTH_AGE_KEY_FILE: '',
          BERTH_AGE_KEY: '',
        },
        // Every line the agent logged is searched for the plaintext.
        keep: Infinity,
      },
    );
    assert.ok(agent.url, agent.output());
    url = agent.url;
  });

  after(async () => {
    await agent?.stop();
    await removeNamespace(ns);
    const secrets = join(dir, 'agent', 'secrets');
    if (await isTmpfsMountPoint(secrets).catch(() => false)) await run('umount', [secrets]);
    await repo.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('the operator decrypts, the agent receives over its API and keeps the value only on tmpfs', async () => {
    const result = await runBerth(
      ['apply', '--repo', repo.dir, '--state-dir', join(dir, 'state'), '--agent', url],
      {
        env: { BERTH_AGENT_TOKEN: token, BERTH_AGE_KEY_FILE: keyFile, BERTH_LOG_LEVEL: 'debug' },
      },
    );
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const [container] = await testDocker().listContainers({
      filters: { label: [`berth.namespace=${ns}`, 'berth.service=app'] },
    });
    const name = (container?.Names[0] ?? '').replace(/^\//, '');
    const file = await dockerExec(name, ['cat', '/run/secrets/api/token']);
    assert.equal(file.output, plaintext);

    assert.ok(agent!.stderr().includes('"level":20'), 'the agent logged at debug level');
    for (const [what, text] of [
      ['agent log', agent!.stderr()],
      ['operator output', result.stdout + result.stderr],
    ] as const) {
      assert.ok(!text.includes(plaintext), what);
      assert.ok(!text.includes(Buffer.from(plaintext).toString('base64').slice(0, 40)), `${what} (base64)`);
    }
    const tmpfs = join(dir, 'agent', 'secrets');
    assert.ok(await isTmpfsMountPoint(tmpfs));
    assert.deepEqual(await filesContaining(dir, [plaintext], [tmpfs]), []);
    assert.equal((await filesContaining(tmpfs, [plaintext])).length, 1);
  });
});
