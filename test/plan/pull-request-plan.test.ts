import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runBerth } from '../helpers/berth-cli.js';
import { ageEncrypt } from '../helpers/age.js';
import { startForgeApi } from '../helpers/forge-api.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import {
  configManifest,
  manifestFile,
  namespaceManifest,
  secretManifest,
  sleeperService,
  webService,
} from '../helpers/manifests.js';

// The public key of the test identity in test/fixtures/age (its private key is public too).
const recipient = 'age1rkhnr78uupwcjsrfy4ewydj09cpy3tzlrswj2qgr8nvkt3wna5fq4qmctl';

async function manifests(v: {
  image: string;
  replicas: number;
  greeting: string;
  page: string;
  password: string;
  worker: boolean;
  api: boolean;
}): Promise<Record<string, string | null>> {
  const sleeper = (name: string, replicas?: number): string =>
    sleeperService({ name, namespace: 'shop', ...(replicas === undefined ? {} : { replicas }) });
  return {
    'deploy/web.yaml': manifestFile(
      webService({
        namespace: 'shop',
        image: v.image,
        env: { GREETING: v.greeting },
        replicas: v.replicas,
        configs: [{ source: 'web-content', key: 'index.html', target: '/www/index.html' }],
        secrets: [{ source: 'db', key: 'password', target: '/run/secrets/db-password' }],
      }),
      namespaceManifest('shop'),
      configManifest({ name: 'web-content', namespace: 'shop', data: { 'index.html': v.page } }),
      secretManifest({
        name: 'db',
        namespace: 'shop',
        data: { password: await ageEncrypt(recipient, v.password) },
      }),
    ),
    'deploy/worker.yaml': v.worker ? sleeper('worker') : null,
    'deploy/api.yaml': v.api ? sleeper('api', 2) : null,
  };
}

const mainState = {
  image: 'berth-test/web:v1',
  replicas: 3,
  greeting: 'hello',
  page: '<h1>v1</h1>',
  password: 'main-db-password-3f1a',
  worker: true,
  api: false,
};

describe('berth plan for pull requests, offline (--against)', () => {
  let repo: TestRepo;
  let stateDir: string;
  const planIn = (env: NodeJS.ProcessEnv, ...args: string[]) =>
    runBerth(['plan', '--repo', repo.dir, '--path', 'deploy', '--state-dir', stateDir, ...args], { env });
  const plan = (...args: string[]) => planIn(process.env, ...args);

  before(async () => {
    repo = await createTestRepo({ 'README.md': 'deploy repo\n' });
    await repo.commit(await manifests(mainState), 'main');
    await repo.git('checkout', '-q', '-b', 'feature');
    await repo.commit(
      await manifests({
        image: 'berth-test/web:v2',
        replicas: 5,
        greeting: 'bonjour',
        page: '<h1>v2</h1>',
        password: 'feature-db-password-77b2',
        worker: false,
        api: true,
      }),
      'feature: web v2, api, no worker',
    );
    await repo.git('checkout', '-q', '-b', 'broken');
    await repo.commit(
      {
        'deploy/api.yaml':
          'apiVersion: berth/v1\nkind: Service\nmetadata: { name: api, namespace: shop }\nspec: { imag: busybox }\n',
      },
      'broken api',
    );
    await repo.git('checkout', '-q', 'main');
    stateDir = await mkdtemp(join(tmpdir(), 'berth-prplan-'));
  });
  after(async () => {
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('markdown names every changed field, new and removed services, and hides secret values', async () => {
    const result = await plan('--ref', 'feature', '--against', 'main', '--format', 'markdown');
    assert.equal(result.code, 2, result.stderr);
    const md = result.stdout;
    assert.match(md, /^<!-- berth-plan -->\n### berth plan: `[0-9a-f]{12}` against `?[0-9a-f]{12}/);
    assert.match(
      md,
      /\*\*Plan for [0-9a-f]{12} against [0-9a-f]{12}: 1 to create, 1 to update, 1 to remove; 0 unchanged\.\*\*/,
    );
    assert.match(md, /\| ~ \| `shop\/web` \| update \| 0 → 5 \| 2 \| 3 \| 0 \|/);
    assert.match(md, /#### ~ `shop\/web`: update/);
    assert.match(md, /\| `image` \| `berth-test\/web:v1` \| `berth-test\/web:v2` \|/);
    assert.match(md, /\| `replicas` \| `3` \| `5` \|/);
    assert.match(md, /\| `env\.GREETING` \| `hello` \| `bonjour` \|/);
    assert.match(md, /\| `configs\[0\]\.digest` \| `[0-9a-f]{16}` \| `[0-9a-f]{16}` \|/);
    assert.match(md, /\| `secrets\[0\]\.digest` \| `\(secret\)` \| `\(secret, changed\)` \|/);
    assert.match(md, /#### \+ `shop\/api`: create\n\nNew service: 2 replicas\./);
    assert.match(md, /#### - `shop\/worker`: remove/);
    assert.match(md, /<details><summary>5 replica steps in \d+ batch(es)?<\/summary>/);
    assert.doesNotMatch(md, /db-password-/);
    assert.doesNotMatch(md, /AGE ENCRYPTED|YWdl/);
  });

  test('json is the documented stable document', async () => {
    const result = await plan('--ref', 'feature', '--against', 'main', '--format', 'json');
    assert.equal(result.code, 2, result.stderr);
    const doc = JSON.parse(result.stdout) as {
      formatVersion: number;
      revision: string;
      against: string;
      valid: boolean;
      problems: unknown[];
      hasChanges: boolean;
      summary: Record<string, number>;
      services: {
        namespace: string;
        name: string;
        change: string;
        fieldChanges: { path: string; from: unknown; to: unknown }[];
      }[];
    };
    assert.equal(doc.formatVersion, 1);
    assert.equal(doc.revision, await repo.git('rev-parse', 'feature'));
    assert.equal(doc.against, await repo.git('rev-parse', 'main'));
    assert.equal(doc.valid, true);
    assert.deepEqual(doc.problems, []);
    assert.equal(doc.hasChanges, true);
    assert.deepEqual(doc.summary, { create: 1, update: 1, scale: 0, repair: 0, remove: 1, unchanged: 0 });
    const web = doc.services.find((s) => s.name === 'web')!;
    assert.deepEqual(
      web.fieldChanges.map((f) => f.path),
      ['configs[0].digest', 'env.GREETING', 'image', 'replicas', 'secrets[0].digest'],
    );
    assert.deepEqual(
      web.fieldChanges.find((f) => f.path === 'replicas'),
      { path: 'replicas', from: 3, to: 5 },
    );
    assert.doesNotMatch(result.stdout, /db-password-/);
  });

  test('a Config change shows as a unified diff naming the services it rolls; a Secret only which keys changed', async () => {
    const md = await plan('--ref', 'feature', '--against', 'feature~1', '--format', 'markdown');
    assert.equal(md.code, 2, md.stderr);
    assert.match(
      md.stdout,
      /#### ~ Config shop\/web-content: update \(rolls shop\/web\)\n\n- changed `index\.html`\n\n```diff\n--- a\/shop\/web-content\/index\.html\n\+\+\+ b\/shop\/web-content\/index\.html\n@@ -1(,1)? \+1(,1)? @@\n-<h1>v1<\/h1>\n(\\ No newline at end of file\n)?\+<h1>v2<\/h1>/,
    );
    assert.match(
      md.stdout,
      /#### ~ Secret shop\/db: update \(rolls shop\/web\)\n\n- changed `password` \(value not shown\)/,
    );
    assert.doesNotMatch(md.stdout, /db-password-|AGE ENCRYPTED|YWdl/);

    const text = await plan('--ref', 'feature', '--against', 'main');
    assert.match(
      text.stdout,
      /^~ Config shop\/web-content: update \(rolls shop\/web\)\n {4}~ index\.html\n {6}--- a\/shop\/web-content\/index\.html\n/m,
    );
    assert.match(text.stdout, /^ {6}-<h1>v1<\/h1>$/m);
    assert.match(text.stdout, /^ {6}\+<h1>v2<\/h1>$/m);
    assert.match(
      text.stdout,
      /^~ Secret shop\/db: update \(rolls shop\/web\)\n {4}~ password \(value not shown\)$/m,
    );

    const json = await plan('--ref', 'feature', '--against', 'main', '--format', 'json');
    const doc = JSON.parse(json.stdout) as {
      resources: {
        kind: string;
        name: string;
        change: string;
        keys: { key: string; change: string; diff?: string }[];
        rolls: string[];
      }[];
    };
    const config = doc.resources.find((r) => r.kind === 'Config')!;
    assert.deepEqual(
      { ...config, keys: config.keys.map(({ diff: _d, ...k }) => k) },
      {
        kind: 'Config',
        namespace: 'shop',
        name: 'web-content',
        change: 'update',
        keys: [{ key: 'index.html', change: 'changed' }],
        rolls: ['shop/web'],
      },
    );
    assert.match(config.keys[0]!.diff!, /^-<h1>v1<\/h1>$/m);
    const secret = doc.resources.find((r) => r.kind === 'Secret')!;
    assert.deepEqual(secret.keys, [{ key: 'password', change: 'changed' }]);
    assert.doesNotMatch(json.stdout, /db-password-|AGE ENCRYPTED/);
  });

  test('text shows the field changes too', async () => {
    const result = await plan('--ref', 'feature', '--against', 'main');
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stdout, /^ {4}image: berth-test\/web:v1 -> berth-test\/web:v2$/m);
    assert.match(result.stdout, /^ {4}replicas: 3 -> 5$/m);
  });

  test('a revision against itself has no changes: exit 0', async () => {
    const result = await plan('--ref', 'main', '--against', 'main');
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /^No changes: [0-9a-f]{12} matches [0-9a-f]{12}\./);
  });

  test('validation errors of the branch are rendered in every format, with exit 1', async () => {
    const md = await plan('--ref', 'broken', '--against', 'main', '--format', 'markdown');
    assert.equal(md.code, 1);
    assert.match(md.stdout, /### berth plan: `[0-9a-f]{12}` cannot be applied/);
    assert.match(md.stdout, /\| `api\.yaml` \| 4:\d+ \| .*imag/);
    const json = await plan('--ref', 'broken', '--against', 'main', '--format', 'json');
    assert.equal(json.code, 1);
    const doc = JSON.parse(json.stdout) as {
      valid: boolean;
      problems: { file: string; line: number }[];
      services: unknown[];
    };
    assert.equal(doc.valid, false);
    assert.equal(doc.problems[0]?.file, 'api.yaml');
    assert.equal(doc.problems[0]?.line, 4);
    assert.deepEqual(doc.services, []);
    const text = await plan('--ref', 'broken', '--against', 'main');
    assert.equal(text.code, 1);
    assert.match(text.stdout, /cannot be applied:\n {2}api\.yaml:4:\d+: /);
  });

  test('--against accepts a remote-tracking branch, as CI checkouts have', async () => {
    const bare = await mkdtemp(join(tmpdir(), 'berth-prplan-remote-'));
    try {
      await repo.git('clone', '-q', '--bare', repo.dir, join(bare, 'origin.git'));
      await repo.git('remote', 'add', 'origin', join(bare, 'origin.git'));
      await repo.git('fetch', '-q', 'origin');
      const result = await plan('--ref', 'feature', '--against', 'origin/main', '--format', 'json');
      assert.equal(result.code, 2, result.stderr);
      assert.equal(
        (JSON.parse(result.stdout) as { against: string }).against,
        await repo.git('rev-parse', 'main'),
      );
    } finally {
      await rm(bare, { recursive: true, force: true });
    }
  });

  test('--comment keeps one plan comment per pull request on GitHub (from the Actions job), GitLab and Gitea', async (t) => {
    const token = 'pr-comment-token-61f0';
    const github = await startForgeApi('github', token);
    const gitlab = await startForgeApi('gitlab', token);
    const gitea = await startForgeApi('gitea', token);
    const eventFile = join(stateDir, 'event.json');
    t.after(async () => {
      await github.close();
      await gitlab.close();
      await gitea.close();
    });
    // A reviewer's comment is never touched.
    github.comments.set(1, { number: 12, body: 'LGTM' });
    await writeFile(eventFile, JSON.stringify({ pull_request: { number: 12 } }));
    const actions = {
      ...process.env,
      GITHUB_ACTIONS: 'true',
      GITHUB_API_URL: github.url,
      GITHUB_REPOSITORY: 'team/deploy',
      GITHUB_EVENT_PATH: eventFile,
      BERTH_GIT_API_TOKEN: token,
    };
    const first = await planIn(actions, '--ref', 'feature', '--against', 'main', '--comment');
    assert.equal(first.code, 2, first.stderr);
    assert.match(first.stderr, /berth plan: comment created on github team\/deploy#12/);
    const again = await planIn(actions, '--ref', 'main', '--against', 'main', '--comment');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /comment updated on github team\/deploy#12/);
    assert.equal(github.comments.size, 2);
    assert.equal(github.comments.get(1)?.body, 'LGTM');
    const [, comment] = [...github.comments.values()];
    assert.equal(comment!.number, 12);
    assert.match(comment!.body, /^<!-- berth-plan -->\n### berth plan: .*\n\n\*\*No changes/);
    assert.deepEqual(
      github.requests.filter((r) => r.invalid !== null),
      [],
    );

    for (const [api, kind] of [
      [gitlab, 'gitlab'],
      [gitea, 'gitea'],
    ] as const) {
      for (let i = 0; i < 2; i++) {
        const result = await planIn(
          { ...process.env, BERTH_GIT_API_TOKEN: token },
          ...['--ref', 'feature', '--against', 'main', '--comment', '--git-host', kind, '--pr', '7'],
          ...['--git-api-url', api.url, '--git-api-repo', 'team/deploy'],
        );
        assert.equal(result.code, 2, result.stderr);
        assert.match(
          result.stderr,
          new RegExp(`comment ${i === 0 ? 'created' : 'updated'} on ${kind} team/deploy[!#]7`),
        );
      }
      assert.equal(api.comments.size, 1, kind);
      assert.match([...api.comments.values()][0]!.body, /Config shop\/web-content: update/);
      assert.deepEqual(
        api.requests.filter((r) => r.invalid !== null),
        [],
        kind,
      );
    }
    assert.doesNotMatch(JSON.stringify([...github.comments.values()]), /db-password-/);
  });

  test('--comment outside a pull-request job says what it cannot tell', async () => {
    const result = await planIn(
      { ...process.env, GITHUB_ACTIONS: '', GITLAB_CI: '', GITEA_ACTIONS: '' },
      '--ref',
      'feature',
      '--against',
      'main',
      '--comment',
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /--comment cannot tell the git host: give --git-host github\|gitlab\|gitea/);
  });
});
