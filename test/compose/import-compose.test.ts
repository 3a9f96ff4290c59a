/**
 * `berth import compose` as users run it (the real CLI): a corpus of compose stacks in the style
 * of docker's awesome-compose converts; what it writes passes `berth validate`; every field that
 * does not convert is named with its file and line; secrets come out age-encrypted. No Docker here:
 * compose-deploy.test.ts deploys a converted stack on a real engine.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { decryptArmor } from '../../src/secrets/age-payload.js';
import { runBerth } from '../helpers/berth-cli.js';
import { uniqueTestId } from '../helpers/docker.js';

const corpus = fileURLToPath(new URL('../fixtures/compose/', import.meta.url));
const ageKeyFile = fileURLToPath(new URL('../fixtures/age/key.txt', import.meta.url));
const RECIPIENT = 'age1rkhnr78uupwcjsrfy4ewydj09cpy3tzlrswj2qgr8nvkt3wna5fq4qmctl';
/** Variables some stacks require (`${API_VERSION:?...}`, a secret from the environment). */
const STACK_ENV = { API_VERSION: '3.1.0', MYSQL_ROOT_PASSWORD: 'root-from-env' };

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'berth-compose-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

type Manifest = {
  kind: string;
  metadata: { name: string };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
};

async function importStack(stack: string, args: string[] = [], env: NodeJS.ProcessEnv = STACK_ENV) {
  const out = join(work, `${stack}-${uniqueTestId()}`);
  const result = await runBerth(
    ['import', 'compose', join(corpus, stack, 'compose.yaml'), '-o', out, ...args],
    {
      env,
      cwd: corpus,
    },
  );
  return { ...result, out };
}

async function manifestsIn(dir: string): Promise<Manifest[]> {
  const files = (await readdir(dir)).sort();
  const texts = await Promise.all(files.map((file) => readFile(join(dir, file), 'utf8')));
  return texts.flatMap((text) => parseAllDocuments(text).map((doc) => doc.toJS() as Manifest));
}

const serviceOf = (manifests: Manifest[], name: string): Record<string, unknown> => {
  const found = manifests.find((m) => m.kind === 'Service' && m.metadata.name === name);
  assert.ok(found?.spec, `no Service ${name}`);
  return found.spec;
};

describe('berth import compose: the corpus', () => {
  // Stacks without volumes: their output must pass berth validate as it is.
  for (const stack of ['prometheus-grafana', 'traefik', 'web-redis']) {
    test(`${stack} converts and validates`, async () => {
      const imported = await importStack(stack, ['--namespace', 'demo']);
      assert.equal(imported.code, 0, imported.stderr);
      const validated = await runBerth(['validate', imported.out]);
      assert.equal(validated.code, 0, validated.stdout + validated.stderr);
      assert.match(validated.stdout, /manifests valid/);
    });
  }

  // Stacks with named volumes: the volumes field arrives with its own change; the shape is checked.
  test('stateful stacks convert, with named volumes and tmpfs on their services', async () => {
    const expected: Record<string, Record<string, unknown[]>> = {
      'web-postgres': { db: [{ name: 'db-data', target: '/var/lib/postgresql/data' }] },
      'web-mysql': { db: [{ name: 'db-data', target: '/var/lib/mysql' }] },
      'web-mongo': { mongo: [{ name: 'mongo-data', target: '/data/db' }] },
      'wordpress-mysql': {
        db: [{ name: 'db-data', target: '/var/lib/mysql' }],
        wordpress: [{ name: 'wp-data', target: '/var/www/html' }],
      },
    };
    for (const [stack, services] of Object.entries(expected)) {
      const imported = await importStack(stack, ['-r', RECIPIENT]);
      assert.equal(imported.code, 0, `${stack}: ${imported.stderr}`);
      const manifests = await manifestsIn(imported.out);
      for (const [service, volumes] of Object.entries(services)) {
        assert.deepEqual(serviceOf(manifests, service)['volumes'], volumes, `${stack}/${service}`);
      }
    }
    const mongo = serviceOf(await manifestsIn((await importStack('web-mongo')).out), 'mongo');
    assert.deepEqual(mongo['tmpfs'], [{ target: '/tmp', size: '64Mi' }]);
  });

  test('what does not convert is named as file:line: field: why', async () => {
    const traefik = await importStack('traefik');
    const file = join(corpus, 'traefik', 'compose.yaml');
    assert.match(
      traefik.stderr,
      new RegExp(
        `^${file}:13: services\\.traefik\\.volumes\\[0\\]: host bind mount /var/run/docker\\.sock not converted`,
        'm',
      ),
    );
    assert.match(
      traefik.stderr,
      new RegExp(`^${file}:11: services\\.traefik\\.ports\\[1\\]: host IP 127\\.0\\.0\\.1 ignored`, 'm'),
    );
    assert.match(
      traefik.stderr,
      new RegExp(`^${file}:26: services\\.whoami\\.deploy\\.placement\\.constraints\\[0\\]: `, 'm'),
    );
    assert.match(traefik.stderr, new RegExp(`^${file}:33: networks\\.proxy: `, 'm'));
    const whoami = serviceOf(await manifestsIn(traefik.out), 'whoami');
    assert.deepEqual(whoami['placement'], {
      constraints: ['node.labels.zone == edge'],
      spread: 'node.labels.rack',
    });

    const redis = await importStack('web-redis');
    const redisFile = join(corpus, 'web-redis', 'compose.yaml');
    assert.match(
      redis.stderr,
      new RegExp(`^${redisFile}:32: services\\.redis\\.network_mode: not converted: host networking`, 'm'),
    );
    assert.match(redis.stderr, new RegExp(`^${redisFile}:16: services\\.web\\.logging: not converted`, 'm'));
    assert.match(
      redis.stderr,
      new RegExp(
        `^${redisFile}:9: services\\.web\\.build: berth does not build images: .* named visits-web`,
        'm',
      ),
    );

    const mysql = await importStack('web-mysql', ['-r', RECIPIENT]);
    const mysqlFile = join(corpus, 'web-mysql', 'compose.yaml');
    assert.match(
      mysql.stderr,
      new RegExp(`^${mysqlFile}:45: services\\.db\\.volumes\\[1\\]: host bind mount \\./initdb`, 'm'),
    );
    assert.match(
      mysql.stderr,
      new RegExp(`^${mysqlFile}:47: services\\.db\\.cap_add\\[0\\]: berth never adds SYS_NICE`, 'm'),
    );
    assert.match(
      mysql.stderr,
      new RegExp(
        `^${mysqlFile}:19: services\\.backend\\.depends_on: berth starts services without order`,
        'm',
      ),
    );
  });

  test('interpolation: .env next to the file, the process environment winning, required variables', async () => {
    const fromDotEnv = serviceOf(await manifestsIn((await importStack('web-redis')).out), 'web');
    assert.deepEqual(fromDotEnv['ports'], [{ target: 8000, published: 8081 }]);
    assert.deepEqual(
      fromDotEnv['env'],
      { REDIS_HOST: 'redis', GREETING: 'Hello ${USER}' },
      '$$ is a literal $',
    );
    const fromProcess = await importStack('web-redis', [], { WEB_PORT: '9000' });
    assert.deepEqual(serviceOf(await manifestsIn(fromProcess.out), 'web')['ports'], [
      { target: 8000, published: 9000 },
    ]);

    const missing = await importStack('web-mongo', [], {});
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /compose\.yaml:12: services\.api\.image: required variable API_VERSION is missing a value: set API_VERSION to the release to deploy/,
    );
    await assert.rejects(readdir(missing.out), 'nothing is written');

    const mysql = serviceOf(
      await manifestsIn((await importStack('web-mysql', ['-r', RECIPIENT])).out),
      'backend',
    );
    assert.deepEqual(mysql['env'], {
      LOG_LEVEL: 'info',
      GREETING: 'hello world',
      MYSQL_HOST: 'db',
      MYSQL_DATABASE: 'example',
      NODE_ENV: 'production',
    });
  });

  test('a secret is age-encrypted for the recipients, never written in plaintext; without -r it is refused', async () => {
    const plaintext = await readFile(join(corpus, 'web-postgres', 'db', 'password.txt'), 'utf8');
    const imported = await importStack('web-postgres', ['-r', RECIPIENT]);
    assert.equal(imported.code, 0, imported.stderr);
    for (const file of await readdir(imported.out)) {
      assert.ok(
        !(await readFile(join(imported.out, file), 'utf8')).includes(plaintext),
        `${file} holds the plaintext`,
      );
    }
    assert.ok(!imported.stderr.includes(plaintext));
    const manifests = await manifestsIn(imported.out);
    const secret = manifests.find((m) => m.kind === 'Secret');
    assert.equal(secret?.metadata.name, 'db-password');
    const armored = secret.data?.['password.txt'] ?? '';
    const identity = (await readFile(ageKeyFile, 'utf8'))
      .split('\n')
      .find((line) => line.startsWith('AGE-SECRET-KEY-'));
    assert.ok(identity);
    assert.equal(Buffer.from(await decryptArmor(armored, [identity])).toString('utf8'), plaintext);
    assert.deepEqual(serviceOf(manifests, 'db')['secrets'], [
      { source: 'db-password', key: 'password.txt', target: '/run/secrets/db-password' },
    ]);

    const refused = await importStack('web-postgres');
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /compose\.yaml:\d+: secrets\.db-password: error: a secret needs an age recipient: pass -r/,
    );
    assert.ok(!refused.stdout.includes(plaintext) && !refused.stderr.includes(plaintext));
    await assert.rejects(readdir(refused.out), 'nothing is written');
  });

  test('to stdout: one multi-document YAML', async () => {
    const result = await runBerth(['import', 'compose', join(corpus, 'prometheus-grafana', 'compose.yaml')]);
    assert.equal(result.code, 0, result.stderr);
    const kinds = parseAllDocuments(result.stdout).map((doc) => (doc.toJS() as Manifest).kind);
    assert.deepEqual(kinds, ['Service', 'Service', 'Config', 'Config']);
    const file = join(work, 'all.yaml');
    await writeFile(file, result.stdout);
    const validated = await runBerth(['validate', file]);
    assert.equal(validated.code, 0, validated.stdout);
  });

  test('--env-file, -p, include: and extends: as docker compose reads them; the output validates', async () => {
    const features = fileURLToPath(new URL('../fixtures/compose-cli/', import.meta.url));
    const out = join(work, `features-${uniqueTestId()}`);
    const result = await runBerth(
      [
        ...['import', 'compose', 'compose.yaml', '-o', out],
        ...['--env-file', 'base.env', '--env-file', 'prod.env', '-p', 'shop'],
      ],
      { cwd: join(features, 'env-files'), env: {} },
    );
    assert.equal(result.code, 0, result.stderr);
    const manifests = await manifestsIn(out);
    assert.equal(serviceOf(manifests, 'web')['image'], 'shop/web:prod-base');
    assert.equal(serviceOf(manifests, 'api')['image'], 'shop-api');
    assert.ok(manifests.some((m) => m.kind === 'Namespace' && m.metadata.name === 'shop'));
    for (const stack of ['include', 'extends']) {
      const dir = join(work, `${stack}-${uniqueTestId()}`);
      const imported = await runBerth([
        'import',
        'compose',
        join(features, stack, 'compose.yaml'),
        '-o',
        dir,
      ]);
      assert.equal(imported.code, 0, imported.stderr);
      const validated = await runBerth(['validate', dir]);
      assert.equal(validated.code, 0, validated.stdout + validated.stderr);
    }
    const conflict = await runBerth([
      'import',
      'compose',
      join(features, 'include-conflict', 'compose.yaml'),
    ]);
    assert.equal(conflict.code, 1);
    assert.match(
      conflict.stderr,
      /compose\.yaml:2: include\[0\]: services\.web is defined by \.\/other\.yaml and by /,
    );
  });
});
