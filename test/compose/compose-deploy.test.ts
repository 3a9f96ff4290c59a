/**
 * A compose stack of the offline test images, converted by `berth import compose` and deployed
 * with `berth apply` on a real engine: its command, environment, config file and health check hold.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runBerth } from '../helpers/berth-cli.js';
import { dockerExec, requireTestImages, testDocker, uniqueTestId } from '../helpers/docker.js';
import { createTestRepo } from '../helpers/git-repo.js';
import { removeNamespace } from '../operator/cluster-probe.js';

const stack = fileURLToPath(new URL('../fixtures/compose/local-web/compose.yaml', import.meta.url));

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'berth-compose-deploy-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function importStack(args: string[], env: NodeJS.ProcessEnv) {
  const out = join(work, 'manifests');
  const result = await runBerth(['import', 'compose', stack, '-o', out, ...args], { env });
  return { ...result, out };
}

describe('berth import compose: a converted stack deploys on a real engine', () => {
  const ns = uniqueTestId('cmp');
  after(async () => {
    await removeNamespace(ns);
  });

  test('the local stack runs with its command, environment, config and health check', async () => {
    await requireTestImages();
    const imported = await importStack(['--namespace', ns], {
      GREETING: 'hello from the shell',
    });
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stderr, /services\.worker\.depends_on: berth starts services without order/);
    const files: Record<string, string> = {};
    for (const file of await readdir(imported.out))
      files[`deploy/${file}`] = await readFile(join(imported.out, file), 'utf8');
    const repo = await createTestRepo(files);
    try {
      const state = join(work, `state-${ns}`);
      const applied = await runBerth([
        'apply',
        '--repo',
        repo.dir,
        '--path',
        'deploy',
        '--state-dir',
        state,
        '--node',
        `test-${ns}`,
      ]);
      assert.equal(applied.code, 0, applied.stdout + applied.stderr);
      const containers = await testDocker().listContainers({ filters: { label: [`berth.namespace=${ns}`] } });
      const of = (service: string) => containers.filter((c) => c.Labels['berth.service'] === service);
      assert.equal(of('worker').length, 2);
      const [web] = of('web');
      assert.ok(web, 'a running web replica');
      const name = (web.Names[0] ?? '').replace(/^\//, '');
      const greeting = await dockerExec(name, ['wget', '-q', '-O-', 'http://127.0.0.1:8080/greeting']);
      assert.equal(greeting.output, 'greetings from a compose config\n');
      const env = (await testDocker().getContainer(web.Id).inspect()).Config.Env;
      assert.ok(env.includes('GREETING=hello from the shell'), env.join(' '));
    } finally {
      await repo.cleanup();
    }
  });
});
