/**
 * Secret delivery to a remote agent: the operator holds the key and decrypts; the agent has none
 * and receives the value only over its token-authenticated API, keeps it on its tmpfs, and never
 * logs it (even at debug level) or writes it anywhere else in its state directory.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { isTmpfsMountPoint } from '../../src/agent/file-store.js';
import { runBerth, startBerth } from '../helpers/berth-cli.js';
import { dockerExec, requireTestImages, testDocker } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { removeNamespace } from '../operator/cluster-probe.js';

const run = promisify(execFile);
const ns = `rsec${Date.now().toString(36)}`;
const node = `agent-${ns}`;
const token = `token-${randomBytes(8).toString('hex')}`;

function encrypt(recipient: string, plaintext: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('age', ['-r', recipient, '-a'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`age exited ${code}`))));
    child.stdin.end(plaintext);
  });
}

async function filesContaining(root: string, needle: string, skip: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (path: string): Promise<void> => {
    if (path === skip) return;
    const info = await lstat(path).catch(() => null);
    if (info?.isDirectory()) {
      for (const entry of await readdir(path)) await visit(join(path, entry));
    } else if (info?.isFile() && (await readFile(path)).includes(needle)) {
      found.push(path);
    }
  };
  await visit(root);
  return found;
}

describe('secrets delivered to a remote agent', () => {
  let repo: TestRepo;
  let dir: string;
  let agent: ChildProcess;
  let agentLog = '';
  let url: string;
  let keyFile: string;
  const plaintext = `remote-${randomBytes(32).toString('hex')}`;

  before(async () => {
    await requireTestImages();
    dir = await mkdtemp(join(tmpdir(), 'berth-remote-secret-'));
    keyFile = join(dir, 'ops.key');
    await run('age-keygen', ['-o', keyFile]);
    const recipient = (await run('age-keygen', ['-y', keyFile])).stdout.trim();
    const armored = (await encrypt(recipient, plaintext))
      .trimEnd()
      .split('\n')
      .map((line) => `    ${line}`)
      .join('\n');
    repo = await createTestRepo({
      'app.yaml': `apiVersion: berth/v1
kind: Namespace
metadata: { name: ${ns} }
---
apiVersion: berth/v1
kind: Secret
metadata: { name: api, namespace: ${ns} }
data:
  token: |
${armored}
---
apiVersion: berth/v1
kind: Service
metadata: { name: app, namespace: ${ns} }
spec:
  image: busybox:1.36
  command: ["sh", "-c", "exec sleep 3600"]
  init: true
  stopGracePeriod: 1s
  update: { monitor: 500ms }
  secrets: [{ source: api, key: token }]
`,
    });
    // The agent gets no key at all: only the operator can decrypt.
    agent = startBerth(
      ['agent', '--listen', '127.0.0.1:0', '--node', node, '--state-dir', join(dir, 'agent')],
      {
        env: {
          BERTH_AGENT_TOKEN: token,
          BERTH_LOG_LEVEL: 'debug',
          BERTH_AGE_KEY_FILE: '',
          BERTH_AGE_KEY: '',
        },
      },
    );
    agent.stderr?.on('data', (chunk: Buffer) => (agentLog += chunk.toString()));
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      agent.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /serving on (http:\/\/\S+)/.exec(out);
        if (match) resolve(match[1]!);
      });
      agent.on('exit', (code) => reject(new Error(`agent exited with ${code}`)));
    });
  });

  after(async () => {
    agent.kill('SIGTERM');
    await new Promise((resolve) => agent.once('close', resolve));
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

    assert.ok(agentLog.includes('"level":20'), 'the agent logged at debug level');
    for (const [what, text] of [
      ['agent log', agentLog],
      ['operator output', result.stdout + result.stderr],
    ] as const) {
      assert.ok(!text.includes(plaintext), what);
      assert.ok(!text.includes(Buffer.from(plaintext).toString('base64').slice(0, 40)), `${what} (base64)`);
    }
    const tmpfs = join(dir, 'agent', 'secrets');
    assert.ok(await isTmpfsMountPoint(tmpfs));
    assert.deepEqual(await filesContaining(dir, plaintext, tmpfs), []);
    assert.equal((await filesContaining(tmpfs, plaintext, '')).length, 1);
  });
});
