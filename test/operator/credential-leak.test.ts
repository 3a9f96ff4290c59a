/**
 * A credential written into `--repo` (`http://user:token@host/repo.git`) is used for the
 * Authorization header and nowhere else: not in a log line at the most verbose level, not in any
 * CLI output, not in any byte under the state dir (state.json, history, conditions, the git cache
 * with its folder names and config), not in the process's command line once it runs; also when the
 * server refuses it and when the server cannot be reached.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually, runBerth, startBerth, targetArgs, type CliResult } from '../helpers/berth-cli.js';
import { filesContaining } from '../helpers/files-containing.js';
import { startGitHttpServer, type GitHttpServer } from '../helpers/git-http-server.js';
import { createBareRemote, createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import { bodies, removeNamespace } from './cluster-probe.js';

const ns = `cred${Date.now().toString(36)}`;
const node = `test-${ns}`;
const USER = 'alice';
// `=` is percent-encoded in a URL's userinfo: the token has a raw and an encoded form.
const TOKEN = `s3cr3t=TOKEN-${Math.random().toString(36).slice(2, 10)}`;
// Contains the token: a leak of the wrong password is caught as a leak of the token.
const WRONG = `${TOKEN}-wrong`;
const ENV = { BERTH_LOG_LEVEL: 'trace' };

/** Every form the token could take in text or bytes. */
const NEEDLES = [
  TOKEN,
  encodeURIComponent(TOKEN),
  `${USER}:${TOKEN}`,
  Buffer.from(`${USER}:${TOKEN}`).toString('base64'),
  Buffer.from(`${USER}:${WRONG}`).toString('base64'),
  Buffer.from(TOKEN).toString('base64'),
];

function withCredential(url: string, password: string): string {
  return url.replace('http://', `http://${USER}:${encodeURIComponent(password)}@`);
}

function leaksIn(text: string): string[] {
  return NEEDLES.filter((needle) => text.includes(needle));
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('a git credential in --repo never leaves the process', () => {
  let repo: TestRepo;
  let dir: string;
  let stateDir: string;
  let server: GitHttpServer | null = null;
  // Read by the server on every request: changing the password rotates the credential.
  const auth = { username: USER, password: TOKEN };
  /** Every output of every berth process of this test, searched at the end. */
  const outputs: { what: string; text: string }[] = [];

  const berth = async (what: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> => {
    const result = await runBerth(args, { env: { ...ENV, ...env } });
    outputs.push({ what, text: result.stdout + result.stderr });
    return result;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-cred-'));
    stateDir = join(dir, 'state');
    repo = await createTestRepo({
      'deploy/app.yaml': manifestFile(
        namespaceManifest(ns),
        webService({ namespace: ns, replicas: 1, update: { monitor: '500ms' } }),
      ),
    });
    await createBareRemote(repo, dir, 'deploy.git');
    server = await startGitHttpServer({ root: dir, auth });
  });

  after(async () => {
    await server?.close();
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('deploy, status, history, plan, refused and unreachable servers: the token is nowhere', async () => {
    assert.ok(server);
    const cleanUrl = `${server.url}/deploy.git`;
    const repoUrl = withCredential(cleanUrl, TOKEN);
    const target = (url: string): string[] => targetArgs({ repo: url, path: 'deploy', stateDir, node });

    // The operator deploys with the credential and keeps polling with it.
    const operator = await startBerth('run', [...target(repoUrl), '--schedule', '* * * * * *'], {
      env: ENV,
      keep: Infinity,
    });
    try {
      const commandLine = await readFile(`/proc/${operator.child.pid}/cmdline`);
      assert.deepEqual(leaksIn(commandLine.toString('latin1')), [], 'the command line shown by ps');
      await eventually('the web service serving v1', async () => (await bodies(ns, 'web')).join() === 'v1');
      const polled = server.requests.length;
      await eventually('two more polls', async () => server!.requests.length >= polled + 2);
      // The server takes the token away: every poll is refused, the operator says so.
      auth.password = `rotated-${TOKEN.length}`;
      await eventually('the refusal recorded in conditions.json', async () =>
        /authentication failed \(HTTP 401\)/.test(await readFile(join(stateDir, 'conditions.json'), 'utf8')),
      );
      auth.password = TOKEN;
    } finally {
      await operator.stop();
      outputs.push({ what: 'berth run', text: operator.output() });
    }
    assert.match(
      operator.stderr(),
      /"level":20,/,
      'debug lines were logged (trace is on; berth has no trace lines)',
    );
    assert.match(operator.stderr(), /authentication failed \(HTTP 401\)/);
    const state = JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8')) as {
      source: { repo: string };
      lastGood: { revision: string } | null;
    };
    assert.equal(state.source.repo, cleanUrl);
    assert.ok(state.lastGood, 'a revision was recorded as deployed');

    // Reads with the credential in the URL, in every format.
    for (const format of ['text', 'json']) {
      const status = await berth(`status ${format}`, ['status', ...target(repoUrl), '--format', format]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, format === 'json' ? /"converged": true/ : /Repository/);
      assert.ok(status.stdout.includes(cleanUrl), status.stdout);
      const history = await berth(`history ${format}`, [
        'history',
        '--state-dir',
        stateDir,
        '--format',
        format,
      ]);
      assert.equal(history.code, 0, history.stderr);
      assert.match(history.stdout, /succeeded/);
    }
    for (const format of ['text', 'json', 'markdown']) {
      const plan = await berth(`plan ${format}`, ['plan', ...target(repoUrl), '--format', format]);
      assert.equal(plan.code, 0, plan.stdout + plan.stderr);
    }
    const saved = await berth('plan --out', [
      'plan',
      ...target(repoUrl),
      '--out',
      join(stateDir, 'plan.json'),
    ]);
    assert.equal(saved.code, 0, saved.stderr);

    // Without --repo, the remembered (credential-free) URL with the token from a file.
    const tokenFile = join(dir, 'git-token');
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const fromFile = await berth(
      'status with BERTH_GIT_PASSWORD_FILE',
      ['status', '--state-dir', stateDir, '--node', node, '--format', 'json'],
      { BERTH_GIT_USERNAME: USER, BERTH_GIT_PASSWORD_FILE: tokenFile },
    );
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.match(fromFile.stdout, /"converged": true/);
    assert.match(fromFile.stdout, /"sourceError": null/);

    // The server refuses a wrong password.
    const wrongUrl = withCredential(cleanUrl, WRONG);
    const refusedRun = await berth('run, wrong password', ['run', ...target(wrongUrl)]);
    assert.equal(refusedRun.code, 1);
    assert.match(refusedRun.stderr, /authentication failed \(HTTP 401\)/);
    const refusedPlan = await berth('plan, wrong password', [
      'plan',
      ...target(wrongUrl),
      '--format',
      'json',
    ]);
    assert.equal(refusedPlan.code, 1);
    assert.match(refusedPlan.stderr, /authentication failed/);
    const refusedStatus = await berth('status, wrong password', [
      'status',
      ...target(wrongUrl),
      '--format',
      'json',
    ]);
    assert.match(refusedStatus.stdout, /"sourceError": ".*authentication failed/);

    // Nothing listens there.
    const unreachableUrl = withCredential(`http://127.0.0.1:${await closedPort()}/deploy.git`, TOKEN);
    const unreachableRun = await berth('run, unreachable', ['run', ...target(unreachableUrl)]);
    assert.equal(unreachableRun.code, 1);
    assert.match(unreachableRun.stderr, /cannot reach the server \(ECONNREFUSED\)/);
    const unreachableStatus = await berth('status, unreachable', ['status', ...target(unreachableUrl)]);
    assert.match(unreachableStatus.stdout, /cannot reach the server/);
    const unreachablePlan = await berth('plan, unreachable', ['plan', ...target(unreachableUrl)]);
    assert.equal(unreachablePlan.code, 1);

    // The deploy really happened, so that nothing below can pass for want of anything written.
    assert.deepEqual(await bodies(ns, 'web'), ['v1']);
    const caches = await filesContaining(join(stateDir, 'git-cache'), [`url = ${cleanUrl}`]);
    assert.equal(caches.length, 1, 'the git cache of the server has its config');

    const leaks = outputs.flatMap(({ what, text }) => leaksIn(text).map((needle) => `${what}: ${needle}`));
    assert.deepEqual(leaks, [], 'credential forms found in outputs');
    assert.deepEqual(
      await filesContaining(stateDir, NEEDLES),
      [],
      'credential forms found under the state dir',
    );
    // Folder and file names too (the cache folder is named after the URL).
    const names = await readdir(stateDir, { recursive: true });
    assert.deepEqual(leaksIn(names.join('\n')), []);
  });
});
