import type { DesiredState } from '../manifests/types.js';
import { serviceKey } from '../plan/replica-name.js';
import type { Plan } from '../plan/types.js';
import type { SecretReader } from '../secrets/secret-reader.js';
import { describeSecretEntry } from '../secrets/secret-reader.js';

/**
 * Every secret entry that this plan will deliver (mounted by a service that starts replicas)
 * must decrypt before the rollout starts, so a missing key, a wrong key or a damaged ciphertext
 * refuses the revision as a whole instead of failing it half-way. The plaintext is dropped at
 * once: delivery decrypts again, per replica, on the way to its node.
 */
export async function unreadableSecrets(
  plan: Plan,
  desired: DesiredState,
  readSecret: SecretReader | null,
): Promise<string[]> {
  const starting = new Set(
    plan.services
      .filter((s) => s.batches.some((batch) => batch.some((step) => step.action !== 'remove')))
      .map((s) => serviceKey(s.namespace, s.name)),
  );
  const problems: string[] = [];
  const checked = new Set<string>();
  for (const service of desired.services) {
    if (!starting.has(serviceKey(service.namespace, service.name))) continue;
    for (const mount of service.secrets) {
      const secret = desired.secrets.find(
        (s) => s.name === mount.source && s.namespace === service.namespace,
      );
      if (secret === undefined) continue; // a dangling reference is a manifest problem, reported by validation
      const entry = describeSecretEntry(secret, mount.key);
      if (checked.has(entry)) continue;
      checked.add(entry);
      if (readSecret === null) {
        problems.push(
          `service ${service.namespace}/${service.name} mounts ${entry}, but the operator has no age key (set BERTH_AGE_KEY_FILE or BERTH_AGE_KEY)`,
        );
        continue;
      }
      try {
        const plaintext = await readSecret(secret, mount.key);
        plaintext.fill(0);
      } catch (error) {
        problems.push(error instanceof Error ? error.message : String(error));
      }
    }
  }
  return problems;
}
