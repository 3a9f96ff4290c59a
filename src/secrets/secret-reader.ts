import { BerthError } from '../core/errors.js';
import type { SecretSpec } from '../manifests/types.js';
import { loadAgeIdentities, type AgeIdentities } from './age-identity.js';
import { decryptArmor } from './age-payload.js';

/**
 * Decrypts one entry of a Secret of the desired state, for delivery to the node that runs the
 * container needing it. Supplied by the operator, which holds the key; the plaintext is never
 * kept, logged or cached. Throws ERR_SECRET_UNREADABLE naming the secret and its file.
 */
export type SecretReader = (secret: SecretSpec, key: string) => Promise<Uint8Array>;

/** `secret shop/db key password (db-secret.yaml)`: names what failed without any of its value. */
export function describeSecretEntry(secret: SecretSpec, key: string): string {
  return `secret ${secret.namespace}/${secret.name} key ${key}${secret.file === undefined ? '' : ` (${secret.file})`}`;
}

/** Decrypts Secret entries on demand with the operator's identities; nothing is cached. */
export function createSecretReader(keys: AgeIdentities): SecretReader {
  return async (secret, key) => {
    const armored = secret.data[key];
    if (armored === undefined) {
      throw new BerthError('ERR_SECRET_UNREADABLE', `${describeSecretEntry(secret, key)} does not exist`);
    }
    try {
      return await decryptArmor(armored, keys.identities);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new BerthError(
        'ERR_SECRET_UNREADABLE',
        `${describeSecretEntry(secret, key)} cannot be decrypted with the key from ${keys.origin}: ${reason}`,
      );
    }
  };
}

/**
 * The operator's secret reader: null when no key is configured (services that mount secrets are
 * then refused, naming the secret), an error when a configured key cannot be read.
 */
export async function openSecretReader(env: NodeJS.ProcessEnv = process.env): Promise<SecretReader | null> {
  const keys = await loadAgeIdentities(env);
  return keys === null ? null : createSecretReader(keys);
}
