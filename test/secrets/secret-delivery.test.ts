/**
 * Configs and Secrets end to end, on the real engine with the real `age` CLI: a secret encrypted
 * with `age -r` reaches the container as the exact bytes, on tmpfs, with its mode and owner; its
 * plaintext shows up nowhere else (logs at debug level, plans, history, state, labels, inspect,
 * the engine's container files); rotation and config changes roll only their consumers; a
 * revision whose secrets cannot be decrypted is refused as a whole and what runs stays.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { isTmpfsMountPoint } from '../../src/agent/file-store.js';
import { ageEncrypt, createAgeIdentity } from '../helpers/age.js';
import { runBerth, targetArgs, type CliResult } from '../helpers/berth-cli.js';
import { dockerCli, dockerExec, requireTestImages, testDocker } from '../helpers/docker.js';
import { filesContaining } from '../helpers/files-containing.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import {
  configManifest,
  manifestFile,
  namespaceManifest,
  secretManifest,
  sleeperService,
  type ServiceOptions,
} from '../helpers/manifests.js';
import { removeNamespace } from '../operator/cluster-probe.js';

const run = promisify(execFile);
const ns = `sec${Date.now().toString(36)}`;
// A node of its own: the embedded agent sees only this suite's containers.
const node = `test-${ns}`;

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

interface Revision {
  password: string;
  blob: string;
  greeting: string;
  otherGreeting: string;
  mountSecrets: boolean;
}

function manifests(r: Revision): Record<string, string | null> {
  const sleeper = (name: string, fields: ServiceOptions): string =>
    sleeperService({
      name,
      namespace: ns,
      command: ['sh', '-c', 'exec sleep 3600'],
      update: { monitor: '1s', progressDeadline: '30s' },
      ...fields,
    });
  return {
    'deploy/namespace.yaml': namespaceManifest(ns),
    'deploy/db.yaml': r.mountSecrets
      ? secretManifest({ name: 'db', namespace: ns, data: { password: r.password, blob: r.blob } })
      : null,
    'deploy/settings.yaml': manifestFile(
      configManifest({ name: 'settings', namespace: ns, data: { greeting: r.greeting } }),
      configManifest({ name: 'other-settings', namespace: ns, data: { GREETING: r.otherGreeting } }),
    ),
    'deploy/app.yaml': sleeper('app', {
      user: '1000',
      configs: [{ source: 'settings', key: 'greeting', target: '/etc/app/greeting' }],
      ...(r.mountSecrets
        ? {
            secrets: [
              { source: 'db', key: 'password' },
              { source: 'db', key: 'blob', target: '/run/secrets/blob', mode: '0440', uid: 1000, gid: 2000 },
            ],
          }
        : {}),
    }),
    'deploy/other.yaml': sleeper('other', { envFrom: [{ config: 'other-settings', prefix: 'OTHER_' }] }),
  };
}

/** Container ids of a service's replicas (a changed id means the replica was replaced). */
async function idsOf(service: string): Promise<{ id: string; name: string }[]> {
  const containers = await testDocker().listContainers({
    all: true,
    filters: { label: [`berth.namespace=${ns}`, `berth.service=${service}`] },
  });
  return containers.map((c) => ({ id: c.Id, name: (c.Names[0] ?? '').replace(/^\//, '') }));
}

async function onlyReplica(service: string): Promise<{ id: string; name: string }> {
  const replicas = await idsOf(service);
  assert.equal(replicas.length, 1, `${service}: ${JSON.stringify(replicas)}`);
  return replicas[0]!;
}

describe('configs and age-encrypted secrets on a real Docker engine', () => {
  let repo: TestRepo;
  let stateDir: string;
  let keyDir: string;
  let opsKey: string;
  let opsRecipient: string;
  let strangerRecipient: string;
  /** Everything every berth command printed, stdout and stderr, at debug log level. */
  let transcript = '';
  const plaintexts: Buffer[] = [];
  let current: Revision;

  const newPassword = (): Buffer => {
    // Long and random, so a match anywhere can only be a leak; trailing newlines must survive.
    const value = Buffer.from(`pw-${randomBytes(32).toString('hex')}\n\n`);
    plaintexts.push(value);
    return value;
  };
  /** The plaintexts, and their base64 (how file contents travel to an agent), as search needles. */
  const needles = (): Buffer[] =>
    plaintexts.flatMap((p) => [p.subarray(0, p.length - 2), Buffer.from(p.toString('base64').slice(0, 40))]);

  const berth = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> => {
    const result = await runBerth(args, {
      env: { BERTH_LOG_LEVEL: 'debug', BERTH_AGE_KEY_FILE: opsKey, BERTH_AGE_KEY: '', ...env },
    });
    transcript += result.stdout + result.stderr;
    return result;
  };
  const where = (): string[] => targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node });
  const apply = (env: NodeJS.ProcessEnv = {}) => berth(['apply', ...where()], env);
  const commit = async (changes: Partial<Revision>, message: string): Promise<string> => {
    current = { ...current, ...changes };
    return repo.commit(manifests(current), message);
  };

  before(async () => {
    await requireTestImages();
    keyDir = await mkdtemp(join(tmpdir(), 'berth-keys-'));
    opsKey = join(keyDir, 'ops.txt');
    opsRecipient = await createAgeIdentity(opsKey);
    strangerRecipient = await createAgeIdentity(join(keyDir, 'stranger.txt'));

    const password = newPassword();
    const blob = Buffer.concat([Buffer.from([0, 0, 255, 10, 13]), randomBytes(507)]);
    plaintexts.push(blob);
    current = {
      password: await ageEncrypt(opsRecipient, password),
      blob: await ageEncrypt(opsRecipient, blob),
      greeting: 'hello',
      otherGreeting: 'hi',
      mountSecrets: true,
    };
    repo = await createTestRepo(manifests(current) as Record<string, string>);
    stateDir = await mkdtemp(join(tmpdir(), 'berth-state-'));
  });

  after(async () => {
    await removeNamespace(ns);
    const secrets = join(stateDir, 'agent', 'secrets');
    if (await isTmpfsMountPoint(secrets).catch(() => false)) await run('umount', [secrets]);
    await rm(stateDir, { recursive: true, force: true });
    await rm(keyDir, { recursive: true, force: true });
    await repo.cleanup();
  });

  test('a secret encrypted with `age -r` reaches the container as the exact bytes, on tmpfs, 0400, owned for its user', async () => {
    const result = await apply();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const app = await onlyReplica('app');

    const password = await dockerExec(app.name, ['cat', '/run/secrets/db/password']);
    assert.equal(password.exitCode, 0, password.output);
    assert.equal(password.output, plaintexts[0]!.toString());
    const blob = await dockerExec(app.name, ['sha256sum', '/run/secrets/blob']);
    assert.equal(blob.output.split(' ')[0], sha256(plaintexts[1]!));

    // `user: "1000"`: the default owner follows it, so the 0400 file is readable to the process.
    const stat = await dockerExec(app.name, [
      'stat',
      '-c',
      '%a %u %g',
      '/run/secrets/db/password',
      '/run/secrets/blob',
    ]);
    assert.equal(stat.output, '400 1000 0\n440 1000 2000\n');
    const mounts = await dockerExec(app.name, ['cat', '/proc/mounts']);
    for (const target of ['/run/secrets/db/password', '/run/secrets/blob']) {
      const line = mounts.output.split('\n').find((entry) => entry.split(' ')[1] === target);
      assert.match(line ?? '', /^\S+ \S+ tmpfs ro[, ]/, `${target} in /proc/mounts`);
    }
    // On the node, the files live on the agent's tmpfs and nowhere else.
    assert.ok(await isTmpfsMountPoint(join(stateDir, 'agent', 'secrets')));
    assert.deepEqual(await readdir(join(stateDir, 'agent', 'secrets')), [app.name]);

    const greeting = await dockerExec(app.name, ['cat', '/etc/app/greeting']);
    assert.equal(greeting.output, 'hello');
    const env = await dockerExec((await onlyReplica('other')).name, ['sh', '-c', 'echo "$OTHER_GREETING"']);
    assert.equal(env.output, 'hi\n');
  });

  test('rotation is a new commit: the consumer rolls to the new bytes, the plan only says "changed", the old files are gone', async () => {
    const before = { app: await onlyReplica('app'), other: await onlyReplica('other') };
    const rotated = newPassword();
    await commit({ password: await ageEncrypt(opsRecipient, rotated) }, 'rotate the db password');

    for (const format of ['text', 'json', 'markdown']) {
      const plan = await berth(['plan', ...where(), '--format', format]);
      assert.equal(plan.code, 2, plan.stdout + plan.stderr);
      assert.match(plan.stdout, /secret, changed/, format);
      if (format !== 'json') assert.match(plan.stdout, new RegExp(`${ns}/app`), format);
    }
    const result = await apply();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const app = await onlyReplica('app');
    assert.notEqual(app.id, before.app.id, 'the consumer rolled');
    assert.deepEqual(await onlyReplica('other'), before.other, 'a service without the secret did not');
    assert.equal(
      (await dockerExec(app.name, ['cat', '/run/secrets/db/password'])).output,
      rotated.toString(),
    );
    assert.deepEqual(await readdir(join(stateDir, 'agent', 'secrets')), [app.name]);
  });

  test('changing a Config rolls only the services that use it', async () => {
    const before = { app: await onlyReplica('app'), other: await onlyReplica('other') };
    await commit({ greeting: 'bonjour' }, 'new greeting for app');
    assert.equal((await apply()).code, 0);
    const app = await onlyReplica('app');
    assert.notEqual(app.id, before.app.id);
    assert.deepEqual(await onlyReplica('other'), before.other);
    assert.equal((await dockerExec(app.name, ['cat', '/etc/app/greeting'])).output, 'bonjour');

    await commit({ otherGreeting: 'salut' }, 'new greeting for other (env)');
    assert.equal((await apply()).code, 0);
    const other = await onlyReplica('other');
    assert.notEqual(other.id, before.other.id);
    assert.deepEqual(await onlyReplica('app'), app);
    assert.equal((await dockerExec(other.name, ['sh', '-c', 'echo "$OTHER_GREETING"'])).output, 'salut\n');
  });

  test('a corrupt ciphertext, a payload for another key, or no key: the revision is refused and nothing changes', async () => {
    const running = { app: await onlyReplica('app'), other: await onlyReplica('other') };
    const good = current;
    const lines = good.password.trimEnd().split('\n');
    const last = lines.length - 2; // the last body line: payload bytes, after the header's MAC
    lines[last] = (lines[last]!.startsWith('A') ? 'B' : 'A') + lines[last]!.slice(1);
    const corrupt = `${lines.join('\n')}\n`;

    const cases: { what: string; change: Partial<Revision>; env: NodeJS.ProcessEnv; reason: RegExp }[] = [
      {
        what: 'corrupt ciphertext',
        // A config change comes with it: even that part must not be applied.
        change: { password: corrupt, greeting: 'never' },
        env: {},
        reason: /the age payload is damaged/,
      },
      {
        what: 'for another key',
        change: { password: await ageEncrypt(strangerRecipient, newPassword()), greeting: 'never' },
        env: {},
        reason: /not encrypted for the operator's age key/,
      },
      {
        what: 'no key',
        change: { ...good, greeting: 'never', otherGreeting: 'never' },
        env: { BERTH_AGE_KEY_FILE: '' },
        reason: /the operator has no age key \(set BERTH_AGE_KEY_FILE or BERTH_AGE_KEY\)/,
      },
    ];
    for (const { what, change, env, reason } of cases) {
      const revision = await commit(change, what);
      const result = await apply(env);
      assert.equal(result.code, 1, `${what}: ${result.stdout}${result.stderr}`);
      assert.match(result.stdout, new RegExp(`secret ${ns}/db key password \\(db\\.yaml\\)`), what);
      assert.match(result.stdout, reason, what);
      assert.deepEqual(await onlyReplica('app'), running.app, what);
      assert.deepEqual(await onlyReplica('other'), running.other, what);

      const history = await berth(['history', '--state-dir', stateDir, '--format', 'json']);
      const entries = JSON.parse(history.stdout) as {
        revision: string;
        outcome: string;
        reason: string | null;
      }[];
      const entry = entries.find((e) => e.revision === revision);
      assert.equal(entry?.outcome, 'failed', what);
      assert.match(entry?.reason ?? '', /secret .*\/db key password \(db\.yaml\)/, what);
    }
    // Back to a good commit: it applies again.
    await commit({ ...good, greeting: 'bonjour', otherGreeting: 'salut' }, 'back to good');
    const again = await apply();
    assert.equal(again.code, 0, again.stdout + again.stderr);
  });

  test('secrets are decrypted only for what starts: without a key, a change to another service still applies', async () => {
    const app = await onlyReplica('app');
    await commit({ otherGreeting: 'hola' }, 'only other changes');
    const result = await apply({ BERTH_AGE_KEY_FILE: '' });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.deepEqual(await onlyReplica('app'), app);
    const other = await onlyReplica('other');
    assert.equal((await dockerExec(other.name, ['sh', '-c', 'echo "$OTHER_GREETING"'])).output, 'hola\n');
  });

  test('secret files are removed from the node when no container uses them any more', async () => {
    await commit({ mountSecrets: false }, 'app no longer needs the secret');
    const result = await apply();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.deepEqual(await readdir(join(stateDir, 'agent', 'secrets')), []);
    const app = await onlyReplica('app');
    assert.equal((await dockerExec(app.name, ['ls', '/run/secrets'])).exitCode, 1);
  });

  test('the plaintext is nowhere: logs, plans, history, state dir, labels, inspect, the engine`s container files, git', async () => {
    // Bring the secret back so a container holding it is inspected too.
    await commit({ mountSecrets: true }, 'mount the secret again');
    assert.equal((await apply()).code, 0);
    for (const format of ['text', 'json'])
      await berth(['history', '--state-dir', stateDir, '--format', format]);
    await berth(['status', '--state-dir', stateDir, '--node', node]);
    const search = needles();
    assert.ok(search.length >= 8);

    const leaksIn = (text: string): boolean =>
      search.some((needle) => text.includes(needle.toString('latin1')));
    assert.ok(transcript.includes('"level":20'), 'debug logs were captured');
    assert.equal(leaksIn(transcript), false, 'plaintext in command output or logs');

    const gitLog = (await run('git', ['log', '-p', '--all'], { cwd: repo.dir, maxBuffer: 64 << 20 })).stdout;
    assert.equal(leaksIn(gitLog), false, 'plaintext in git');

    // The state dir holds the agent's files too; only its tmpfs may (and does) hold the plaintext.
    const tmpfs = join(stateDir, 'agent', 'secrets');
    assert.deepEqual(await filesContaining(stateDir, search, [tmpfs]), []);
    assert.notDeepEqual(await filesContaining(tmpfs, search), [], 'the search does find the tmpfs copy');

    const dataRoot = (await dockerCli(['info', '-f', '{{.DockerRootDir}}'])).trim();
    for (const service of ['app', 'other']) {
      const { id } = await onlyReplica(service);
      const inspect = await dockerCli(['inspect', id]);
      assert.equal(leaksIn(inspect), false, `plaintext in docker inspect of ${service}`);
      const info = (JSON.parse(inspect) as { GraphDriver: { Data: Record<string, string> | null } }[])[0]!;
      assert.deepEqual(await filesContaining(join(dataRoot, 'containers', id), search), [], service);
      const upper = info.GraphDriver.Data?.['UpperDir'];
      if (upper !== undefined) assert.deepEqual(await filesContaining(upper, search), [], service);
    }
  });
});
