import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import type { DesiredState, ServiceSpec } from '../manifests/types.js';
import { computePlan } from '../plan/compute-plan.js';
import { parsePlanFile, renderPlanFile } from '../plan/plan-file.js';
import type { Plan } from '../plan/types.js';
import { encryptToArmor } from '../secrets/age-payload.js';
import { createSecretReader } from '../secrets/secret-reader.js';
import { resolveReplicaRequest, undeliverablePlannedSecrets } from './planned-secrets.js';

const PLAINTEXT = 'pw-0d1e2f3a4b5c6d7e8f9a\n';

function service(): ServiceSpec {
  const policy = {
    parallelism: 1,
    delayMs: 0,
    order: 'start-first' as const,
    monitorMs: 0,
    failureAction: 'rollback' as const,
    maxFailureRatio: 0,
    progressDeadlineMs: 60_000,
  };
  return {
    kind: 'Service',
    name: 'app',
    namespace: 'shop',
    labels: {},
    image: 'app:v1',
    command: null,
    args: null,
    env: {},
    envFrom: [],
    mode: 'replicated',
    replicas: 1,
    ports: [],
    configs: [],
    secrets: [{ source: 'db', key: 'password', target: '/run/secrets/db', mode: 0o400, uid: 1000, gid: 0 }],
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

/** A plan with one secret-mounting replica, saved and read back as `berth apply --plan` does. */
async function savedPlan() {
  const identity = await generateIdentity();
  const armored = await encryptToArmor(new TextEncoder().encode(PLAINTEXT), [
    await identityToRecipient(identity),
  ]);
  const desired: DesiredState = {
    revision: 'c'.repeat(40),
    services: [service()],
    configs: [],
    secrets: [
      { kind: 'Secret', name: 'db', namespace: 'shop', data: { password: armored }, file: 'db.yaml' },
    ],
    namespaces: [],
  };
  const node = {
    name: 'n1',
    address: '127.0.0.1',
    labels: {},
    capacity: { nanoCpus: 1e9, memoryBytes: 2 ** 30 },
    engineVersion: '27',
    status: 'ready' as const,
    images: [],
    replicas: [],
  };
  const text = renderPlanFile({
    createdAt: '2026-12-03T09:00:00.000Z',
    source: { repo: '/srv/repo', path: '.', ref: 'main', revision: desired.revision },
    observed: { nodes: [] },
    plan: computePlan(desired, { nodes: [node] }),
  });
  const plan = parsePlanFile(text, 'plan.json').plan;
  const reader = createSecretReader({ identities: [identity], recipients: [], origin: 'test key' });
  return { plan, reader, text };
}

function firstRequest(plan: Plan) {
  const step = plan.services[0]!.batches[0]![0]!;
  assert.ok(step.action !== 'remove');
  return step.request;
}

describe('secrets of a saved plan', () => {
  test('are resolved to their plaintext only when the request is sent', async () => {
    const { plan, reader, text } = await savedPlan();
    assert.ok(!text.includes(PLAINTEXT.trim()));
    const request = await resolveReplicaRequest(firstRequest(plan), plan.secretCiphertexts, reader);
    assert.deepEqual(request.files, [
      {
        target: '/run/secrets/db',
        mode: 0o400,
        uid: 1000,
        gid: 0,
        secret: true,
        contentBase64: Buffer.from(PLAINTEXT).toString('base64'),
      },
    ]);
    assert.deepEqual(await undeliverablePlannedSecrets(plan, reader), []);
  });

  test('a ciphertext that does not match its reference is never delivered', async () => {
    const { plan, reader } = await savedPlan();
    const [digest] = Object.keys(plan.secretCiphertexts);
    const tampered = { [digest!]: `${plan.secretCiphertexts[digest!]!}\n` };
    await assert.rejects(
      resolveReplicaRequest(firstRequest(plan), tampered, reader),
      /secret shop\/db key password \(db\.yaml\): the plan does not carry its ciphertext/,
    );
    const problems = await undeliverablePlannedSecrets({ ...plan, secretCiphertexts: tampered }, reader);
    assert.equal(problems.length, 1);
  });

  test('without a key the plan is refused before anything starts, naming the secret', async () => {
    const { plan } = await savedPlan();
    const problems = await undeliverablePlannedSecrets(plan, null);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /service shop\/app mounts secret db, but the operator has no age identity/);
  });
});
