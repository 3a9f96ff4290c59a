/**
 * The operator's age identity: the text `age-keygen` writes (comment lines and one or more
 * `AGE-SECRET-KEY-1...` lines), read from the file named by BERTH_AGE_KEY_FILE or taken from the
 * value of BERTH_AGE_KEY. Identities are never logged and never appear in an error message.
 */
import { readFile } from 'node:fs/promises';
import { identityToRecipient } from 'age-encryption';
import { BerthError } from '../core/errors.js';

export interface AgeIdentities {
  /** `AGE-SECRET-KEY-1...` (or `AGE-SECRET-KEY-PQ-1...`) strings, as the age library takes them. */
  identities: string[];
  /** The matching public keys (`age1...`), to encrypt for this operator. */
  recipients: string[];
  /** Where they came from, for messages: `BERTH_AGE_KEY` or `BERTH_AGE_KEY_FILE (path)`. */
  origin: string;
}

const IDENTITY_PREFIX = /^AGE-SECRET-KEY-(PQ-)?1/i;

/** Parses identity text; every non-comment line must be an identity. Throws ERR_SECRET_UNREADABLE. */
export async function parseAgeIdentities(text: string, origin: string): Promise<AgeIdentities> {
  const identities: string[] = [];
  const recipients: string[] = [];
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    // The line is a private key (or garbage next to one): say where, never what.
    const where = `line ${index + 1} of ${origin}`;
    if (!IDENTITY_PREFIX.test(line)) {
      throw new BerthError(
        'ERR_SECRET_UNREADABLE',
        `${where} is not an age identity (expected AGE-SECRET-KEY-1..., as age-keygen writes it)`,
      );
    }
    const identity = line.toUpperCase();
    try {
      recipients.push(await identityToRecipient(identity));
    } catch {
      throw new BerthError('ERR_SECRET_UNREADABLE', `${where} is not a valid age identity`);
    }
    identities.push(identity);
  }
  if (identities.length === 0) {
    throw new BerthError('ERR_SECRET_UNREADABLE', `${origin} holds no age identity (AGE-SECRET-KEY-1...)`);
  }
  return { identities, recipients, origin };
}

/**
 * The identities configured in `env`, or null when neither BERTH_AGE_KEY_FILE nor BERTH_AGE_KEY
 * is set. A configured but unreadable or malformed key is an error, not "no key".
 */
export async function loadAgeIdentities(env: NodeJS.ProcessEnv): Promise<AgeIdentities | null> {
  const file = env['BERTH_AGE_KEY_FILE'];
  if (file !== undefined && file !== '') {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new BerthError(
        'ERR_SECRET_UNREADABLE',
        `cannot read the age key file ${file} (BERTH_AGE_KEY_FILE): ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      );
    }
    return parseAgeIdentities(text, `BERTH_AGE_KEY_FILE (${file})`);
  }
  const value = env['BERTH_AGE_KEY'];
  if (value !== undefined && value.trim() !== '') return parseAgeIdentities(value, 'BERTH_AGE_KEY');
  return null;
}
