import { createHash } from 'node:crypto';
import type { ReplicaFile, ReplicaRequest } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import type { SecretSpec } from '../manifests/types.js';
import type { Plan, PlannedFile, PlannedReplicaRequest, SecretEntryRef } from '../plan/types.js';
import { describeSecretEntry, type SecretReader } from '../secrets/secret-reader.js';

type SecretFile = Extract<PlannedFile, { secret: true }>;

/** The one-entry Secret a SecretReader decrypts, from the ciphertext the plan carries. */
function secretOf(ref: SecretEntryRef, ciphertexts: Readonly<Record<string, string>>): SecretSpec {
  const armored = ciphertexts[ref.digest];
  const secret: SecretSpec = {
    kind: 'Secret',
    name: ref.name,
    namespace: ref.namespace,
    data: {},
    ...(ref.file === undefined ? {} : { file: ref.file }),
  };
  // A plan edited by hand (or cut short) must not deliver some other ciphertext under this name.
  if (armored === undefined || createHash('sha256').update(armored).digest('hex') !== ref.digest) {
    throw new BerthError(
      'ERR_SECRET_UNREADABLE',
      `${describeSecretEntry(secret, ref.key)}: the plan does not carry its ciphertext (digest ${ref.digest.slice(0, 12)})`,
    );
  }
  secret.data[ref.key] = armored;
  return secret;
}

function noKey(request: PlannedReplicaRequest, ref: SecretEntryRef): BerthError {
  return new BerthError(
    'ERR_NOT_SUPPORTED',
    `service ${request.namespace}/${request.service} mounts secret ${ref.name}, but the operator has no age identity (set BERTH_AGE_KEY_FILE or BERTH_AGE_KEY)`,
  );
}

/**
 * The request as the agent gets it: every secret reference decrypted, at send time, by the
 * operator's reader. The plaintext lives only in the returned request, on its way to the node.
 */
export async function resolveReplicaRequest(
  request: PlannedReplicaRequest,
  ciphertexts: Readonly<Record<string, string>>,
  readSecret: SecretReader | null,
): Promise<ReplicaRequest> {
  const files: ReplicaFile[] = [];
  for (const file of request.files) {
    if (!file.secret) {
      files.push(file);
      continue;
    }
    const { ref, ...rest } = file;
    if (!readSecret) throw noKey(request, ref);
    const plaintext = await readSecret(secretOf(ref, ciphertexts), ref.key);
    files.push({ ...rest, contentBase64: Buffer.from(plaintext).toString('base64') });
  }
  return { ...request, files };
}

/**
 * Every secret entry a plan will deliver must decrypt before anything starts, so a missing key
 * or a damaged ciphertext refuses the plan as a whole instead of failing it half-way. The
 * plaintext is dropped at once: delivery decrypts again, per replica.
 */
export async function undeliverablePlannedSecrets(
  plan: Plan,
  readSecret: SecretReader | null,
): Promise<string[]> {
  const problems: string[] = [];
  const checked = new Set<string>();
  for (const step of plan.services.flatMap((s) => s.batches.flat())) {
    if (step.action === 'remove') continue;
    for (const file of step.request.files.filter((f): f is SecretFile => f.secret)) {
      const entry = `${file.ref.namespace}/${file.ref.name}/${file.ref.key}@${file.ref.digest}`;
      if (checked.has(entry)) continue;
      checked.add(entry);
      try {
        if (!readSecret) throw noKey(step.request, file.ref);
        const plaintext = await readSecret(secretOf(file.ref, plan.secretCiphertexts), file.ref.key);
        plaintext.fill(0);
      } catch (error) {
        problems.push(error instanceof Error ? error.message : String(error));
      }
    }
  }
  return problems;
}
