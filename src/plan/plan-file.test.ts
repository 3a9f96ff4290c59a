import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import { BerthError } from '../core/errors.js';
import type { DesiredState, ServiceSpec } from '../manifests/types.js';
import { encryptToArmor } from '../secrets/age-payload.js';
import { fingerprintCluster } from './cluster-fingerprint.js';
import { computePlan } from './compute-plan.js';
import { parsePlanFile, renderPlanFile, type PlanFile } from './plan-file.js';
import { renderPlanJson } from './render-plan.js';

const policy = {
  parallelism: 1,
  delayMs: 0,
  order: 'start-first' as const,
  monitorMs: 0,
  failureAction: 'rollback' as const,
  maxFailureRatio: 0,
  progressDeadlineMs: 60_000,
};

function service(): ServiceSpec {
  return {
    kind: 'Service',
    name: 'web',
    namespace: 'default',
    labels: {},
    image: 'web:v1',
    command: ['httpd'],
    args: null,
    env: { GREETING: 'hello' },
    envFrom: [],
    mode: 'replicated',
    replicas: 2,
    ports: [{ target: 8080, published: 8080, protocol: 'tcp', appProtocol: 'tcp' }],
    configs: [{ source: 'content', key: 'index.html', target: '/www/index.html', mode: 0o444 }],
    secrets: [{ source: 'db', key: 'password', target: '/run/secrets/db', mode: 0o400, uid: 0, gid: 0 }],
    healthcheck: null,
    resources: { limits: { nanoCpus: 0, memoryBytes: 0 }, reservations: { nanoCpus: 0, memoryBytes: 0 } },
    placement: { constraints: [], spread: null, maxPerNode: 0 },
    update: policy,
    rollback: policy,
    restart: { condition: 'any', maxAttempts: 0 },
    stopGracePeriodMs: 1000,
    user: null,
    readOnlyRootFilesystem: false,
    capabilities: { drop: [], add: [] },
    workingDir: null,
    init: false,
    volumes: [],
    tmpfs: [],
    volumeReclaim: 'retain',
  };
}

const PLAINTEXT = 'pw-4f1c9e6a2b7d4e8f9a0b1c2d3e4f5a6b';

async function savedPlan(
  repo = '/srv/deploy',
): Promise<{ text: string; content: Omit<PlanFile, 'format' | 'version'> }> {
  const recipient = await identityToRecipient(await generateIdentity());
  const desired: DesiredState = {
    revision: 'a'.repeat(40),
    services: [service()],
    configs: [
      { kind: 'Config', name: 'content', namespace: 'default', data: { 'index.html': '<h1>hi</h1>' } },
    ],
    secrets: [
      {
        kind: 'Secret',
        name: 'db',
        namespace: 'default',
        data: { password: await encryptToArmor(new TextEncoder().encode(PLAINTEXT), [recipient]) },
      },
    ],
    namespaces: [],
  };
  const observed = {
    nodes: [
      {
        name: 'n1',
        address: '127.0.0.1',
        labels: {},
        capacity: { nanoCpus: 2e9, memoryBytes: 2 ** 30 },
        engineVersion: '27',
        status: 'ready' as const,
        images: [],
        replicas: [],
      },
    ],
  };
  const content = {
    createdAt: '2026-12-03T09:00:00.000Z',
    source: { repo, path: 'deploy', ref: 'main', revision: desired.revision },
    observed: fingerprintCluster(observed),
    plan: computePlan(desired, observed),
  };
  return { text: renderPlanFile(content), content };
}

function refusal(text: string): RegExp {
  return new RegExp(`plan\\.json is not a usable berth plan: ${text}`);
}

describe('plan file', () => {
  test('round trip: what is read is the plan that was written, with every replica request', async () => {
    const { text, content } = await savedPlan();
    const file = parsePlanFile(text, 'plan.json');
    assert.equal(file.format, 'berth-plan');
    assert.equal(file.version, 1);
    assert.deepEqual(file.source, content.source);
    assert.deepEqual(file.observed, content.observed);
    assert.deepEqual(file.plan, content.plan);
    const starts = file.plan.services[0]!.batches.flat();
    assert.equal(starts.length, 2);
    for (const step of starts) {
      assert.ok(step.action === 'create');
      assert.equal(step.request.name, step.name);
      assert.equal(step.request.image, 'web:v1');
      assert.deepEqual(step.request.env, { GREETING: 'hello' });
      const [config, secret] = step.request.files;
      assert.ok(config && !config.secret);
      assert.equal(Buffer.from(config.contentBase64, 'base64').toString(), '<h1>hi</h1>');
      assert.ok(secret?.secret);
      assert.deepEqual(
        { namespace: secret.ref.namespace, name: secret.ref.name, key: secret.ref.key },
        { namespace: 'default', name: 'db', key: 'password' },
      );
      assert.match(file.plan.secretCiphertexts[secret.ref.digest] ?? '', /BEGIN AGE ENCRYPTED FILE/);
    }
  });

  test('holds no secret plaintext, in any encoding', async () => {
    const { text } = await savedPlan();
    assert.ok(!text.includes(PLAINTEXT));
    assert.ok(!text.includes(Buffer.from(PLAINTEXT).toString('base64').slice(0, 24)));
    assert.ok(!text.includes(Buffer.from(PLAINTEXT).toString('hex').slice(0, 24)));
  });

  test("berth plan's own reports stay as they were: the requests are for the plan file only", async () => {
    const { content } = await savedPlan();
    const json = renderPlanJson({
      revision: content.source.revision,
      against: null,
      plan: content.plan,
      problems: [],
    });
    assert.doesNotMatch(json, /"request"|contentBase64|stopGracePeriodMs|secretCiphertexts|AGE ENCRYPTED/);
    assert.match(json, /"action": "create"/);
  });

  test('holds no credential of the repository URL', async () => {
    const { text } = await savedPlan('https://ci-bot:ghp_s3cr3tT0ken@git.example.com/ops/deploy.git');
    assert.doesNotMatch(text, /ghp_s3cr3tT0ken|ci-bot/);
    assert.equal(parsePlanFile(text, 'plan.json').source.repo, 'https://git.example.com/ops/deploy.git');
  });

  const broken: { name: string; edit: (file: Record<string, unknown>) => unknown; refused: RegExp }[] = [
    {
      name: 'another version',
      edit: (f) => ({ ...f, version: 2 }),
      refused: refusal('it is version 2, this berth reads version 1'),
    },
    {
      name: 'no version',
      edit: (f) => ({ ...f, version: undefined }),
      refused: refusal('it is version undefined'),
    },
    {
      name: 'another format',
      edit: (f) => ({ ...f, format: 'terraform' }),
      refused: refusal('it has no "format": "berth-plan"'),
    },
    { name: 'not an object', edit: () => [1, 2], refused: refusal('it has no "format"') },
    { name: 'no source', edit: (f) => ({ ...f, source: { repo: 'x' } }), refused: refusal('its source') },
    {
      name: 'no observed cluster',
      edit: (f) => ({ ...f, observed: null }),
      refused: refusal('its observed cluster is missing'),
    },
    {
      name: 'a plan of another revision',
      edit: (f) => ({ ...f, plan: { ...(f['plan'] as object), revision: 'b'.repeat(40) } }),
      refused: refusal('its plan and its source name different revisions'),
    },
    {
      name: 'a step without its request',
      edit: (f) => {
        const plan = f['plan'] as { services: { batches: Record<string, unknown>[][] }[] };
        delete plan.services[0]!.batches[0]![0]!['request'];
        return f;
      },
      refused: refusal('step berth.default.web.1.\\w+ of its plan carries no replica request'),
    },
  ];
  for (const c of broken) {
    test(`refuses a file with ${c.name}`, async () => {
      const { text } = await savedPlan();
      const edited = JSON.stringify(c.edit(JSON.parse(text) as Record<string, unknown>));
      assert.throws(
        () => parsePlanFile(edited, 'plan.json'),
        (error: unknown) => error instanceof BerthError && c.refused.test(error.message),
      );
    });
  }

  test('refuses a file that is not JSON', () => {
    assert.throws(() => parsePlanFile('{"format": "berth-plan", ', 'plan.json'), refusal('it is not JSON'));
  });
});
