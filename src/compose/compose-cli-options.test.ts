/**
 * `berth import compose` as docker compose reads a project: --env-file, -p/--project-name,
 * top-level include: and service extends:, on the fixtures in test/fixtures/compose-cli.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BerthError } from '../core/errors.js';
import { importCompose, type ComposeImport, type ComposeImportOptions } from './import-compose.js';

const fixtures = fileURLToPath(new URL('../../test/fixtures/compose-cli/', import.meta.url));

function run(
  file: string,
  extra: Partial<ComposeImportOptions> = {},
  env: NodeJS.ProcessEnv = {},
): Promise<ComposeImport> {
  return importCompose({ files: [`${fixtures}${file}`], recipients: [], env, ...extra });
}

function specOf(result: ComposeImport, name: string): Record<string, unknown> {
  const found = result.manifests.find(
    (m) => m.manifest.kind === 'Service' && m.manifest.metadata.name === name,
  );
  assert.ok(found && 'spec' in found.manifest, `no Service ${name}`);
  return found.manifest.spec;
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(error instanceof BerthError, 'refused');
  return error.message;
}

describe('--env-file', () => {
  test('the named files replace .env, later ones winning, the environment over all', async () => {
    const result = await run(
      'env-files/compose.yaml',
      { envFiles: [`${fixtures}env-files/base.env`, `${fixtures}env-files/prod.env`] },
      { REGION: 'eu' },
    );
    assert.equal(result.errors, 0, result.messages.join('\n'));
    assert.deepEqual(specOf(result, 'web'), {
      image: 'shop/web:prod-base',
      env: { GREETING: 'hello from base', REGION: 'eu' },
    });
  });

  test('without it .env next to the first file is read', async () => {
    const result = await run('env-files/compose.yaml');
    assert.deepEqual(specOf(result, 'web')['env'], { GREETING: 'from dotenv', REGION: 'dotenv' });
    assert.equal(specOf(result, 'web')['image'], 'shop/web:from-dotenv');
  });

  test('a named file that is missing is an error', async () => {
    const message = await refusal(
      run('env-files/compose.yaml', { envFiles: [`${fixtures}env-files/absent.env`] }),
    );
    assert.match(message, /cannot read .*absent\.env/);
  });
});

describe('-p/--project-name', () => {
  test('names the images of build: services and is the namespace', async () => {
    const result = await run(
      'env-files/compose.yaml',
      { projectName: 'shop_2' },
      { COMPOSE_PROJECT_NAME: 'other' },
    );
    assert.equal(result.project, 'shop_2');
    assert.equal(specOf(result, 'api')['image'], 'shop_2-api');
    assert.deepEqual(
      result.manifests.map((m) => [
        m.manifest.kind,
        m.manifest.metadata.name,
        'namespace' in m.manifest.metadata ? m.manifest.metadata.namespace : null,
      ]),
      [
        ['Namespace', 'shop-2', null],
        ['Service', 'web', 'shop-2'],
        ['Service', 'api', 'shop-2'],
      ],
    );
    assert.match(
      result.messages.join('\n'),
      /compose\.yaml:9: services\.api\.build: .*named shop_2-api as docker compose would/,
    );
  });

  test('--namespace still wins for the namespace; without -p the directory names the project', async () => {
    const named = await run('env-files/compose.yaml', { projectName: 'shop', namespace: 'web-team' });
    assert.equal(named.manifests[0]?.manifest.metadata.name, 'web-team');
    const unnamed = await run('env-files/compose.yaml');
    assert.equal(specOf(unnamed, 'api')['image'], 'env-files-api');
    assert.ok(unnamed.manifests.every((m) => m.manifest.kind !== 'Namespace'));
  });

  test('a name docker compose would refuse is refused', async () => {
    assert.match(
      await refusal(run('env-files/compose.yaml', { projectName: 'Shop!' })),
      /-p Shop!: a project name is/,
    );
  });
});

describe('include:', () => {
  test('each included project brings its services, its own variables and its own relative paths', async () => {
    const result = await run('include/compose.yaml');
    assert.equal(result.errors, 0, result.messages.join('\n'));
    assert.deepEqual(specOf(result, 'cache'), { image: 'redis:7.2', env: { MAXMEMORY: '64mb' } });
    assert.deepEqual(specOf(result, 'db'), {
      image: 'postgres:16',
      volumes: [{ name: 'db-data', target: '/var/lib/postgresql/data' }],
    });
    assert.equal(specOf(result, 'web')['image'], 'store/web:1');
    assert.equal(result.project, 'store', 'the including file names the project');
  });

  test('what an included file does not convert is reported at its own file and line', async () => {
    const result = await run('include/compose.yaml');
    assert.deepEqual(
      result.messages.map((m) => m.replace(fixtures, '')),
      [
        'include/db/compose.yaml:6: services.db.privileged: not converted: privileged containers are never run: it hands the host to whoever can commit to the repository, so berth has no such field',
      ],
    );
  });

  test('a service defined by the including and the included file is an error', async () => {
    const message = await refusal(run('include-conflict/compose.yaml'));
    assert.equal(
      message.replaceAll(fixtures, ''),
      'include-conflict/compose.yaml:2: include[0]: services.web is defined by ./other.yaml and by include-conflict/compose.yaml',
    );
  });
});

describe('extends:', () => {
  test('a service extends one of another file and one of its own file, its own fields winning', async () => {
    const result = await run('extends/compose.yaml');
    assert.equal(result.errors, 0, result.messages.join('\n'));
    assert.deepEqual(specOf(result, 'web'), {
      image: 'shop/web:2',
      // env_file of the base, relative to the base's file.
      env: { APP_MODE: 'production', LOG_LEVEL: 'info', ROLE: 'web' },
      stopGracePeriod: '20s',
    });
    assert.deepEqual(specOf(result, 'worker'), {
      image: 'shop/web:2',
      args: ['worker', '--queue', 'default'],
      env: { APP_MODE: 'production', LOG_LEVEL: 'info', ROLE: 'worker' },
      stopGracePeriod: '20s',
    });
  });

  test('a cycle is an error at each service in it', async () => {
    const message = await refusal(run('extends/loop.yaml'));
    assert.deepEqual(message.replaceAll(fixtures, '').split('\n'), [
      'extends/loop.yaml:4: services.a.extends: a cycle: a -> b -> a',
      'extends/loop.yaml:7: services.b.extends: a cycle: b -> a -> b',
    ]);
  });
});
