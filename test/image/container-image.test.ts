/**
 * The container image, built offline from the Dockerfile by scripts/build-image.sh, runs both
 * roles against this machine's engine as the Dockerfile's header documents them: a containerized
 * agent deploys a Service with a Config and a Secret for a containerized operator, and a
 * containerized operator does the same on its embedded local node; each replica reads the config
 * and the secret. An agent whose state dir the host's engine cannot see refuses to start.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { isTmpfsMountPoint } from '../../src/agent/file-store.js';
import { ageEncrypt, createAgeIdentity } from '../helpers/age.js';
import { eventually } from '../helpers/berth-cli.js';
import {
  dockerCli,
  dockerExec,
  removeContainersByLabel,
  requireTestImages,
  uniqueTestId,
} from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import {
  configManifest,
  manifestFile,
  namespaceManifest,
  secretManifest,
  sleeperService,
} from '../helpers/manifests.js';
import { removeNamespace } from '../operator/cluster-probe.js';

const run = promisify(execFile);
const id = uniqueTestId('img');
const IMAGE = `berth-test/berth:${id}`;
const LABEL = 'berth-test.image';
const SOCKET = '/var/run/docker.sock';
const BUILD_TIMEOUT_MS = 20 * 60_000;
const namespaces = { agent: `${id}a`, local: `${id}l` };

/** What the roles need on top of `docker run -d`: the cleanup label, the host's network. */
function roleArgs(name: string): string[] {
  return ['run', '-d', '--name', name, '--label', `${LABEL}=${id}`, '--network', 'host', '--user', '0'];
}

/** The flags the Dockerfile documents for a role whose state dir holds replica files. */
function stateMountArgs(stateDir: string): string[] {
  return [
    '--cap-add',
    'SYS_ADMIN',
    '--security-opt',
    'apparmor=unconfined',
    '--mount',
    `type=bind,src=${stateDir},dst=${stateDir},bind-propagation=rshared`,
  ];
}

function deployment(namespace: string, password: string, greeting: string): Record<string, string> {
  return {
    [`${namespace}/app.yaml`]: manifestFile(
      namespaceManifest(namespace),
      configManifest({ name: 'settings', namespace, data: { greeting } }),
      secretManifest({ name: 'db', namespace, data: { password } }),
      sleeperService({
        name: 'app',
        namespace,
        command: ['sh', '-c', 'exec sleep 3600'],
        update: { monitor: '1s', progressDeadline: '60s' },
        configs: [{ source: 'settings', key: 'greeting', target: '/etc/app/greeting' }],
        secrets: [{ source: 'db', key: 'password' }],
      }),
    ),
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  const address = server.address();
  await new Promise((closed) => server.close(closed));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

async function logsOf(container: string): Promise<string> {
  const { stdout, stderr } = await run('docker', ['logs', container]);
  return stdout + stderr;
}

/** The one running replica of `app` in the namespace, once there is one. */
async function runningReplica(namespace: string, role: string): Promise<string> {
  return eventually(
    `a running replica of ${namespace}/app (${role} logs on failure)`,
    async () => {
      const names = await dockerCli([
        'ps',
        '--filter',
        `label=berth.namespace=${namespace}`,
        '--filter',
        'label=berth.service=app',
        '--filter',
        'status=running',
        '--format',
        '{{.Names}}',
      ]);
      return names.trim().split('\n').filter(Boolean)[0];
    },
    120_000,
    500,
  ).catch(async (error: unknown) => {
    throw new Error(`${(error as Error).message}\n--- ${role} logs ---\n${await logsOf(role).catch(String)}`);
  });
}

/** `docker run --rm` to completion: exit code and output. */
async function runOnce(args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run('docker', ['run', '--rm', '--label', `${LABEL}=${id}`, ...args], {
      timeout: 60_000,
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failed.code !== 'number') throw error;
    return { code: failed.code, output: (failed.stdout ?? '') + (failed.stderr ?? '') };
  }
}

describe('the berth container image against the host engine', () => {
  let root: string;
  let keyDir: string;
  let repo: TestRepo;
  const passwords = {
    agent: `pw-${randomBytes(16).toString('hex')}`,
    local: `pw-${randomBytes(16).toString('hex')}`,
  };
  const greetings = { agent: `hello-${id}-agent`, local: `hello-${id}-local` };
  /** Host mount points this suite made, innermost last (unmounted in reverse). */
  const mounts: string[] = [];

  before(
    async () => {
      await requireTestImages();
      await run('bash', ['scripts/build-image.sh', '--tag', IMAGE], {
        cwd: resolve(import.meta.dirname, '../..'),
        timeout: BUILD_TIMEOUT_MS,
        maxBuffer: 64 * 1024 * 1024,
      });
      keyDir = await mkdtemp('/tmp/berth-image-keys-');
      const recipient = await createAgeIdentity(join(keyDir, 'ops.txt'));
      repo = await createTestRepo({
        ...deployment(namespaces.agent, await ageEncrypt(recipient, passwords.agent), greetings.agent),
        ...deployment(namespaces.local, await ageEncrypt(recipient, passwords.local), greetings.local),
      });
      // The state dirs sit on a shared mount, as `/` is on systemd hosts (not on this machine):
      // rshared bind propagation, and so the agent's secrets tmpfs reaching the host, needs it.
      root = await mkdtemp('/tmp/berth-image-');
      await run('mount', ['--bind', root, root]);
      mounts.push(root);
      await run('mount', ['--make-shared', root]);
    },
    { timeout: BUILD_TIMEOUT_MS + 60_000 },
  );

  after(async () => {
    await removeContainersByLabel(LABEL, id);
    await removeNamespace(namespaces.agent);
    await removeNamespace(namespaces.local);
    // The secrets tmpfs the containerized agents mounted propagated here; they go first.
    const { stdout } = await run('findmnt', ['-rn', '-o', 'TARGET']).catch(() => ({ stdout: '' }));
    const below = root === undefined ? [] : stdout.split('\n').filter((t) => t.startsWith(`${root}/`));
    for (const target of [...below.sort().reverse(), ...mounts.reverse()]) {
      await run('umount', [target]).catch(() => undefined);
    }
    if (root !== undefined) await rm(root, { recursive: true, force: true });
    if (keyDir !== undefined) await rm(keyDir, { recursive: true, force: true });
    await repo?.cleanup();
    await run('docker', ['rmi', IMAGE]).catch(() => undefined);
  });

  test('`docker run IMAGE --help` prints both roles', async () => {
    const help = await runOnce([IMAGE, '--help']);
    assert.equal(help.code, 0, help.output);
    assert.match(help.output, /\brun\b/);
    assert.match(help.output, /\bagent\b/);
  });

  test('an agent whose files the engine cannot see exits 1 and names the mount to use', async () => {
    const inside = await runOnce([
      '--user',
      '0',
      '-v',
      `${SOCKET}:${SOCKET}`,
      IMAGE,
      'agent',
      '--token',
      't',
    ]);
    assert.equal(inside.code, 1, inside.output);
    assert.match(inside.output, /only inside this container/);
    assert.ok(
      inside.output.includes('--mount type=bind,src=/home/node/.berth/agent,dst=/home/node/.berth/agent'),
      inside.output,
    );

    const elsewhere = join(root, 'elsewhere');
    await mkdir(elsewhere);
    const moved = await runOnce([
      ...['--user', '0', '-v', `${SOCKET}:${SOCKET}`, '-v', `${elsewhere}:/var/lib/berth/agent`, IMAGE],
      ...['agent', '--token', 't', '--state-dir', '/var/lib/berth/agent'],
    ]);
    assert.equal(moved.code, 1, moved.output);
    assert.ok(moved.output.includes(`is at ${elsewhere} on the host`), moved.output);

    // The same path but a private bind: a tmpfs the agent mounted would not reach the host.
    const same = join(root, 'private');
    await mkdir(same);
    const unshared = await runOnce([
      ...['--user', '0', '-v', `${SOCKET}:${SOCKET}`, '-v', `${same}:${same}`, IMAGE],
      ...['agent', '--token', 't', '--state-dir', same],
    ]);
    assert.equal(unshared.code, 1, unshared.output);
    assert.match(unshared.output, /would stay inside the container/);
  });

  test('a containerized agent deploys a Service with a Config and a Secret for a containerized operator', async () => {
    const stateDir = join(root, 'agent');
    await mkdir(stateDir);
    const port = await freePort();
    const token = randomBytes(16).toString('hex');
    const agent = `${id}-agent`;
    await dockerCli([
      ...roleArgs(agent),
      ...stateMountArgs(stateDir),
      ...['-v', `${SOCKET}:${SOCKET}`, IMAGE, 'agent', '--listen', `127.0.0.1:${port}`, '--token', token],
      ...['--node', `${id}-node`, '--state-dir', stateDir, '--pull', 'never', '--service-addresses', 'off'],
    ]);
    await eventually('the containerized agent serves', async () =>
      (await logsOf(agent)).includes('serving on'),
    );
    // HTTPS: the agent prints the token that pins its certificate, as a user would copy it.
    const printed = /--agent (https:\/\/\S+) --agent-token (\S+)/.exec(await logsOf(agent));
    assert.ok(printed, `the agent printed no --agent line:\n${await logsOf(agent)}`);

    // The operator needs no Docker socket: it drives the engine only through the agent.
    const operator = `${id}-operator`;
    await dockerCli([
      ...roleArgs(operator),
      ...['-v', `${repo.dir}:/repo`, '-v', `${keyDir}:/keys:ro`, '-e', 'BERTH_AGE_KEY_FILE=/keys/ops.txt'],
      ...[IMAGE, 'run', '--repo', '/repo', '--path', namespaces.agent, '--no-watch'],
      ...['--agent', `https://127.0.0.1:${port}`, '--agent-token', printed[2]!, '--service-addresses', 'off'],
    ]);

    const replica = await runningReplica(namespaces.agent, operator);
    const greeting = await dockerExec(replica, ['cat', '/etc/app/greeting']);
    assert.deepEqual(greeting, { exitCode: 0, output: greetings.agent });
    const password = await dockerExec(replica, ['cat', '/run/secrets/db/password']);
    assert.deepEqual(password, { exitCode: 0, output: passwords.agent });
    // The secret reached the replica from the tmpfs the agent mounted in its container, which
    // propagated to the host: never the host's disk.
    const fsType = await dockerExec(replica, ['stat', '-f', '-c', '%T', '/run/secrets/db/password']);
    assert.equal(fsType.output.trim(), 'tmpfs');
    assert.ok(await isTmpfsMountPoint(join(stateDir, 'secrets')), 'the host sees the secrets tmpfs');
  });

  test('a containerized operator deploys a Service with a Config and a Secret on its embedded local node', async () => {
    const stateDir = join(root, 'operator');
    await mkdir(stateDir);
    const operator = `${id}-local`;
    await dockerCli([
      ...roleArgs(operator),
      ...stateMountArgs(stateDir),
      ...['-v', `${SOCKET}:${SOCKET}`, '-v', `${repo.dir}:/repo`, '-v', `${keyDir}:/keys:ro`],
      ...['-e', 'BERTH_AGE_KEY_FILE=/keys/ops.txt', IMAGE, 'run', '--repo', '/repo', '--no-watch'],
      ...[
        '--path',
        namespaces.local,
        '--state-dir',
        stateDir,
        '--node',
        `${id}-local`,
        '--service-addresses',
        'off',
      ],
    ]);

    const replica = await runningReplica(namespaces.local, operator);
    const greeting = await dockerExec(replica, ['cat', '/etc/app/greeting']);
    assert.deepEqual(greeting, { exitCode: 0, output: greetings.local });
    const password = await dockerExec(replica, ['cat', '/run/secrets/db/password']);
    assert.deepEqual(password, { exitCode: 0, output: passwords.local });
  });
});
