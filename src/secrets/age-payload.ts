/**
 * age encryption in ASCII armor, byte-for-byte interoperable with the `age` command-line tool:
 * `age -r <recipient> -a` output decrypts here, and what encryptToArmor writes decrypts with
 * `age -d -i <key file>`.
 */
import { Decrypter, Encrypter, armor } from 'age-encryption';
import { BerthError } from '../core/errors.js';

export async function encryptToArmor(plaintext: Uint8Array, recipients: readonly string[]): Promise<string> {
  if (recipients.length === 0) throw new BerthError('ERR_BAD_REQUEST', 'no recipient to encrypt for');
  const encrypter = new Encrypter();
  for (const recipient of recipients) {
    try {
      encrypter.addRecipient(recipient);
    } catch {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `${JSON.stringify(recipient)} is not an age recipient (expected age1...)`,
      );
    }
  }
  return armor.encode(await encrypter.encrypt(plaintext));
}

/**
 * Decrypts an armored payload with any of `identities`. The error says why (not armored, not
 * for this key, damaged) and never carries any of the payload or the plaintext.
 */
export async function decryptArmor(armored: string, identities: readonly string[]): Promise<Uint8Array> {
  let ciphertext: Uint8Array;
  try {
    ciphertext = armor.decode(armored);
  } catch (error) {
    throw new BerthError('ERR_SECRET_UNREADABLE', `not a valid age ASCII armor (${messageOf(error)})`);
  }
  const decrypter = new Decrypter();
  for (const identity of identities) decrypter.addIdentity(identity);
  try {
    return await decrypter.decrypt(ciphertext);
  } catch (error) {
    const message = messageOf(error);
    throw new BerthError(
      'ERR_SECRET_UNREADABLE',
      /no identity matched/.test(message)
        ? "not encrypted for the operator's age key (no identity matches its recipients)"
        : `the age payload is damaged (${message})`,
    );
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
