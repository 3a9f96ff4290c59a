/**
 * `berth run` refuses a revision that publishes the port its own --listen serves on: the routing
 * mesh would serve that port on every node, where berth's API already is.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  eventually,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import { removeNamespace, replicasOf } from './cluster-probe.js';

const ns = `ports${Date.now().toString(36)}`;
const node = `test-${ns}`;

/** A port nothing listens on right now, for the operator to take. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("berth run: berth's own ports cannot be published", () => {
  let repo: TestRepo | null = null;
  let stateDir = '';
  let operator: BerthProcess | null = null;

  after(async () => {
    await operator?.stop('SIGKILL');
    await removeNamespace(ns);
    await repo?.cleanup();
    if (stateDir !== '') await rm(stateDir, { recursive: true, force: true });
  });

  test('a revision publishing the --listen port is invalid, with the reason; nothing starts', async () => {
    const port = await freePort();
    repo = await createTestRepo({
      'deploy/all.yaml': manifestFile(
        namespaceManifest(ns),
        webService({ namespace: ns, ports: [{ target: 8080, published: port }] }),
      ),
    });
    stateDir = await mkdtemp(join(tmpdir(), 'berth-ports-'));
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node }),
      ...SCHEDULE_NEVER,
      ...['--listen', `127.0.0.1:${port}`],
    ]);
    const base = operator.url!;
    const stalled = await eventually('Stalled', async () => {
      const response = await fetch(`${base}/readyz`);
      const body = (await response.json()) as {
        conditions: { type: string; status: string; reason: string; message: string }[];
      };
      return body.conditions.find((c) => c.type === 'Stalled' && c.status === 'True') ?? null;
    });
    assert.equal(stalled.reason, 'RevisionInvalid');
    assert.match(
      stalled.message,
      new RegExp(
        `service ${ns}/web: spec\\.ports\\[0\\]\\.published: port ${port} is this operator's API port \\(berth run --listen\\)`,
      ),
    );
    assert.deepEqual(await replicasOf(ns, 'web'), []);
  });
});
