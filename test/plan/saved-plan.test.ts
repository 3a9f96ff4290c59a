/**
 * `berth plan --out FILE` then `berth apply --plan FILE` on a real Docker engine: the saved plan
 * is exactly what runs; a plan made stale by a new commit or by a change in the cluster is
 * refused (exit 1, naming what moved) and nothing on the cluster changes; a saved plan holds no
 * secret plaintext, yet the applied container still reads its secret file.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import { isTmpfsMountPoint } from '../../src/agent/file-store.js';
import { parsePlanFile } from '../../src/plan/plan-file.js';
import type { Plan } from '../../src/plan/types.js';
import { encryptToArmor } from '../../src/secrets/age-payload.js';
import { runBerth } from '../helpers/berth-cli.js';
import { dockerExec, requireTestImages, testDocker } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { removeContainer, removeNamespace } from '../operator/cluster-probe.js';

const run = promisify(execFile);
const ns = `saved${Date.now().toString(36)}`;
// A node of its own: the embedded agent sees only this suite's containers.
const node = `test-${ns}`;
const PASSWORD = `pw-${Date.now().toString(36)}-7c1f0e9d4b2a`;

function manifests(webImage: string, armoredPassword: string, dependsOn?: string): Record<string, string> {
  const indented = armoredPassword
    .trimEnd()
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
  return {
    'deploy/namespace.yaml': `apiVersion: berth/v1\nkind: Namespace\nmetadata: { name: ${ns} }\n`,
    'deploy/web.yaml': `apiVersion: berth/v1
kind: Service
metadata: { name: web, namespace: ${ns} }
spec:
  image: ${webImage}
  replicas: 2
  ports: [{ target: 8080 }]
  healthcheck: { http: { port: 8080, path: / }, interval: 1s, timeout: 1s, retries: 2 }
  update: { parallelism: 1, order: start-first, monitor: 0s, progressDeadline: 30s }
  stopGracePeriod: 1s
  init: true
${dependsOn ? `  dependsOn: [{ job: ${dependsOn} }]\n` : ''}`,
    'deploy/app.yaml': `apiVersion: berth/v1
kind: Service
metadata: { name: app, namespace: ${ns} }
spec:
  image: busybox:1.36
  command: ["sh", "-c", "exec sleep 3600"]
  init: true
  stopGracePeriod: 1s
  update: { monitor: 0s, progressDeadline: 30s }
  secrets:
    - { source: db, key: password }
---
apiVersion: berth/v1
kind: Secret
metadata: { name: db, namespace: ${ns} }
data:
  password: |
${indented}
`,
  };
}

/** A Job that exits with `code` (backoffLimit 0: one attempt). */
function migrateJob(code: number): string {
  return `apiVersion: berth/v1
kind: Job
metadata: { name: migrate, namespace: ${ns} }
spec:
  image: busybox:1.36
  command: ["sh", "-c", "echo migrating; exit ${code}"]
  backoffLimit: 0
  init: true
  stopGracePeriod: 1s
`;
}

/** The exit codes of the runs of the Job, from their containers. */
async function migrateRuns(): Promise<number[]> {
  const list = await testDocker().listContainers({
    all: true,
    filters: { label: [`berth.namespace=${ns}`, 'berth.job=migrate'] },
  });
  const inspected = await Promise.all(list.map((c) => testDocker().getContainer(c.Id).inspect()));
  return inspected.map((c) => c.State.ExitCode).sort();
}

/** Every container of the suite's namespace, as the engine has it: the ground truth. */
async function containers(): Promise<string[]> {
  const list = await testDocker().listContainers({
    all: true,
    filters: { label: [`berth.namespace=${ns}`] },
  });
  return list.map((c) => `${(c.Names[0] ?? '').replace(/^\//, '')} ${c.Id} ${c.State}`).sort();
}

async function runningNames(): Promise<string[]> {
  const list = await testDocker().listContainers({ filters: { label: [`berth.namespace=${ns}`] } });
  return list.map((c) => (c.Names[0] ?? '').replace(/^\//, '')).sort();
}

/** The replicas a plan ends with: the ones it keeps and the ones it starts. */
function replicasAfter(plan: Plan): string[] {
  return plan.services
    .flatMap((s) => [
      ...s.keep.map((r) => r.name),
      ...s.batches.flat().flatMap((step) => (step.action === 'remove' ? [] : [step.name])),
    ])
    .sort();
}

describe('saved plans: berth plan --out, berth apply --plan', () => {
  let repo: TestRepo;
  let work: string;
  let armored: string;
  let env: NodeJS.ProcessEnv;
  const where = (): string[] => ['--state-dir', join(work, 'state'), '--node', node];
  const planOut = (file: string) =>
    runBerth(['plan', '--repo', repo.dir, '--path', 'deploy', ...where(), '--out', file], { env });
  const applyPlan = (file: string) => runBerth(['apply', '--plan', file, ...where()], { env });

  before(async () => {
    await requireTestImages();
    work = await mkdtemp(join(tmpdir(), 'berth-saved-plan-'));
    const identity = await generateIdentity();
    await writeFile(join(work, 'age.key'), `${identity}\n`, { mode: 0o600 });
    env = { BERTH_AGE_KEY_FILE: join(work, 'age.key'), BERTH_AGE_KEY: '' };
    armored = await encryptToArmor(new TextEncoder().encode(PASSWORD), [await identityToRecipient(identity)]);
    repo = await createTestRepo(manifests('berth-test/web:v1', armored));
  });
  after(async () => {
    await removeNamespace(ns);
    // The embedded agent keeps secret files on a tmpfs of its own under the state dir.
    const secrets = join(work, 'state', 'agent', 'secrets');
    if (await isTmpfsMountPoint(secrets).catch(() => false)) await run('umount', [secrets]);
    await repo.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  test('apply --plan converges exactly the saved plan; the file holds no secret plaintext', async () => {
    const file = join(work, 'first.json');
    const plan = await planOut(file);
    assert.equal(plan.code, 2, plan.stdout + plan.stderr);
    const text = await readFile(file, 'utf8');
    assert.ok(!text.includes(PASSWORD), 'plaintext in the plan file');
    assert.ok(!text.includes(Buffer.from(PASSWORD).toString('base64').slice(0, 20)), 'base64 plaintext');
    const saved = parsePlanFile(text, file);
    assert.equal(saved.source.revision, await repo.head());
    assert.equal(saved.source.repo, repo.dir);

    const applied = await applyPlan(file);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.match(applied.stdout, /Converged on/);
    assert.deepEqual(await runningNames(), replicasAfter(saved.plan));
    assert.equal(replicasAfter(saved.plan).length, 3);

    const app = replicasAfter(saved.plan).find((name) => name.includes('.app.'))!;
    const secret = await dockerExec(app, ['cat', '/run/secrets/db/password']);
    assert.equal(secret.exitCode, 0, secret.output);
    assert.equal(secret.output, PASSWORD);
  });

  test('a plan made stale by a new commit is refused, naming the revisions, and nothing changes', async () => {
    await repo.commit(manifests('berth-test/web:v2', armored), 'web v2');
    const planned = await repo.head();
    const file = join(work, 'stale-revision.json');
    assert.equal((await planOut(file)).code, 2);
    await repo.commit({ 'deploy/README': 'notes\n' }, 'a newer commit');
    const now = await repo.head();
    const before = await containers();

    const applied = await applyPlan(file);
    assert.equal(applied.code, 1, applied.stdout + applied.stderr);
    assert.match(
      applied.stderr,
      new RegExp(
        `the plan was computed at revision ${planned.slice(0, 12)} but main is now ${now.slice(0, 12)}`,
      ),
    );
    assert.deepEqual(await containers(), before);
  });

  test('a plan made stale by a replica removed by hand is refused, naming it, and nothing changes', async () => {
    const file = join(work, 'stale-cluster.json');
    assert.equal((await planOut(file)).code, 2);
    const web = (await runningNames()).find((name) => name.includes('.web.'))!;
    await removeContainer(web);
    const before = await containers();

    const applied = await applyPlan(file);
    assert.equal(applied.code, 1, applied.stdout + applied.stderr);
    assert.match(applied.stderr, /the cluster changed since the plan was computed/);
    assert.match(
      applied.stderr,
      new RegExp(`node ${node}: replica ${web.replaceAll('.', '\\.')} \\(.*\\) is gone`),
    );
    assert.deepEqual(await containers(), before);
  });

  test('a fresh plan of the same revision then converges', async () => {
    const file = join(work, 'fresh.json');
    assert.equal((await planOut(file)).code, 2);
    const saved = parsePlanFile(await readFile(file, 'utf8'), file);
    const applied = await applyPlan(file);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.deepEqual(await runningNames(), replicasAfter(saved.plan));
  });

  test('a saved plan whose rollout fails exits 1 and the cluster returns to the last good revision', async () => {
    const before = await runningNames();
    await repo.commit(manifests('berth-test/crash:v1', armored), 'web crashes');
    const file = join(work, 'crash.json');
    assert.equal((await planOut(file)).code, 2);
    const applied = await applyPlan(file);
    assert.equal(applied.code, 1, applied.stdout + applied.stderr);
    assert.match(applied.stdout, /The saved plan failed and was rolled back/);
    assert.deepEqual(await runningNames(), before);
  });

  test("apply --plan runs the revision's Jobs first: a failed migration rolls nothing, a fixed one lets its Service roll", async () => {
    const before = await runningNames();
    await repo.commit(
      { ...manifests('berth-test/web:v2', armored, 'migrate'), 'deploy/migrate.yaml': migrateJob(3) },
      'web v2 after a migration that fails',
    );
    const failing = join(work, 'migrate-fails.json');
    assert.equal((await planOut(failing)).code, 2);
    const refused = await applyPlan(failing);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.deepEqual(await migrateRuns(), [3]);
    assert.deepEqual(await runningNames(), before, 'web did not roll');

    await repo.commit(
      { ...manifests('berth-test/web:v2', armored, 'migrate'), 'deploy/migrate.yaml': migrateJob(0) },
      'the migration fixed',
    );
    const fixed = join(work, 'migrate-fixed.json');
    assert.equal((await planOut(fixed)).code, 2);
    const saved = parsePlanFile(await readFile(fixed, 'utf8'), fixed);
    const applied = await applyPlan(fixed);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.ok((await migrateRuns()).includes(0), 'the fixed migration ran');
    assert.deepEqual(await runningNames(), replicasAfter(saved.plan));
    assert.ok(replicasAfter(saved.plan).some((name) => name.includes('.web.')));
  });

  test('a file that is not a plan of this version is refused', async () => {
    const file = join(work, 'old.json');
    await writeFile(file, JSON.stringify({ format: 'berth-plan', version: 99 }));
    const applied = await applyPlan(file);
    assert.equal(applied.code, 1);
    assert.match(applied.stderr, /is not a usable berth plan: it is version 99, this berth reads version 1/);
  });
});
