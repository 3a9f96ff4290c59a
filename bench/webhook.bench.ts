/**
 * npm run bench:webhook — from a signed GitHub push webhook to the first new container.
 *
 * Runs the real `berth run` (watch off, a cron that never fires: only the webhook can start a
 * reconcile) on the local engine. Each round commits a new version of a 2-replica service, POSTs
 * a signed push delivery, and measures the time until the engine lists a container labelled with
 * the new commit. Target (PRODUCT.md): under 1 s.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { createTestRepo } from '../test/helpers/git-repo.js';
import { githubDelivery, postDelivery, webhookFixture } from '../test/helpers/webhook-deliveries.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 5);
const NS = `benchhook${Date.now().toString(36)}`;
const SECRET = randomUUID();
const docker = new Docker();

function manifest(version: number): Record<string, string> {
  return {
    'deploy/all.yaml': `apiVersion: berth/v1
kind: Namespace
metadata: { name: ${NS} }
---
apiVersion: berth/v1
kind: Service
metadata: { name: web, namespace: ${NS} }
spec:
  image: berth-test/web:v1
  env: { VERSION: "${version}" }
  replicas: 2
  ports: [{ target: 8080 }]
  healthcheck: { http: { port: 8080 }, interval: 1s }
  update: { parallelism: 2, monitor: 0s }
  stopGracePeriod: 1s
  init: true
`,
  };
}

async function revisions(): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`berth.namespace=${NS}`] } });
  return list.map((c) => c.Labels['berth.revision'] ?? '');
}

async function until(condition: () => Promise<boolean>, everyMs: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const repo = await createTestRepo(manifest(0));
const stateDir = await mkdtemp(join(tmpdir(), 'berth-bench-hook-'));
await writeFile(join(stateDir, 'secret'), SECRET);
const entry = fileURLToPath(new URL('../test/helpers/berth-entry.ts', import.meta.url));
const child = spawn(
  process.execPath,
  [
    ...['--import', 'tsx', entry, 'run', '--repo', repo.dir, '--path', 'deploy'],
    ...['--state-dir', stateDir, '--node', `bench-${NS}`, '--no-watch', '--schedule', '0 0 1 1 *'],
    ...['--listen', '127.0.0.1:0', '--webhook-secret-file', join(stateDir, 'secret')],
  ],
  { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BERTH_LOG_LEVEL: 'info' } },
);
try {
  let stderr = '';
  const base = await new Promise<string>((resolve) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /"address":"(http:\/\/[^"]+)"/.exec(stderr);
      if (match) resolve(match[1]!);
    });
  });
  const first = await repo.head();
  await until(async () => (await revisions()).filter((r) => r === first).length === 2, 100);

  const times: number[] = [];
  for (let round = 1; round <= ROUNDS; round += 1) {
    const commit = await repo.commit(manifest(round), `round ${round}`);
    const started = performance.now();
    const answer = await postDelivery(
      `${base}/webhooks/github`,
      githubDelivery(SECRET, webhookFixture('github-push.json')),
    );
    if (answer.status !== 202) throw new Error(`webhook answered ${answer.status}: ${answer.body.message}`);
    await until(async () => (await revisions()).includes(commit), 10);
    times.push(performance.now() - started);
    // Let the rollout finish before the next round.
    await until(async () => (await revisions()).every((r) => r === commit), 100);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  console.log(
    `webhook -> first new container, ${ROUNDS} rounds: ${times.map((t) => t.toFixed(0)).join(' ')} ms`,
  );
  console.log(
    `median=${median.toFixed(0)}ms max=${sorted.at(-1)!.toFixed(0)}ms target<1000ms ${median < 1000 ? 'ok' : 'MISSED'}`,
  );
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  const list = await docker.listContainers({ all: true, filters: { label: [`berth.namespace=${NS}`] } });
  await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  await repo.cleanup();
  await rm(stateDir, { recursive: true, force: true });
}
