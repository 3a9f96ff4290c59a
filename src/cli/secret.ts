/**
 * `berth secret encrypt`: encrypts a value with age for one or more recipients and prints the
 * ASCII armor to paste into a Secret manifest, or a whole Secret manifest. The output is exactly
 * what `age -r <recipient> -a` writes, so either tool decrypts what the other encrypted. The
 * plaintext is read from stdin, a file or the command line, and is never written anywhere.
 */
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { BerthError } from '../core/errors.js';
import { loadManifests } from '../manifests/load.js';
import { loadAgeIdentities } from '../secrets/age-identity.js';
import { encryptToArmor } from '../secrets/age-payload.js';

interface EncryptOptions {
  recipient?: string[];
  recipientsFile?: string[];
  file?: string;
  fromLiteral?: string;
  name?: string;
  key?: string;
  namespace?: string;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function registerSecretCommand(program: Command): void {
  const secret = new Command('secret').description('work with age-encrypted Secret values');
  secret
    .command('encrypt')
    .description(
      'encrypt a value (stdin, --file or --from-literal) with age and print the ASCII armor, or with --name and --key a whole Secret manifest',
    )
    .option('-r, --recipient <age1...>', 'encrypt for this age recipient (repeatable)', collect)
    .option(
      '-R, --recipients-file <file>',
      'encrypt for every recipient in this file, one per line, as age -R reads it (repeatable)',
      collect,
    )
    .option('--file <path>', 'read the value from this file (byte for byte) instead of stdin')
    .option('--from-literal <value>', 'the value itself (visible in your shell history and ps: prefer stdin)')
    .option('--name <name>', 'print a Secret manifest with this name (needs --key)')
    .option('--key <key>', 'the data key of the value in the Secret manifest')
    .option('--namespace <namespace>', 'namespace of the Secret manifest')
    .addHelpText(
      'after',
      `
Without -r or -R, the value is encrypted for the operator's own key, derived from
BERTH_AGE_KEY_FILE or BERTH_AGE_KEY.

Examples:
  printf '%s' "$DB_PASSWORD" | berth secret encrypt -r age1...
  berth secret encrypt -R recipients.txt --file tls.key --name tls --key tls.key > deploy/tls-secret.yaml`,
    )
    .action(async (options: EncryptOptions) => {
      const recipients = await recipientsOf(options);
      const plaintext = await plaintextOf(options);
      const armored = await encryptToArmor(plaintext, recipients);
      plaintext.fill(0);
      process.stdout.write(
        options.name === undefined ? armored : secretManifest(options.name, options, armored),
      );
    });
  program.addCommand(secret);
}

async function recipientsOf(options: EncryptOptions): Promise<string[]> {
  const recipients = [...(options.recipient ?? [])];
  for (const file of options.recipientsFile ?? []) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `cannot read recipients file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      );
    }
    for (const line of text.split(/\r?\n/)) {
      const trimmed = line.trim();
      if (trimmed !== '' && !trimmed.startsWith('#')) recipients.push(trimmed);
    }
  }
  if (recipients.length > 0) return recipients;
  const own = await loadAgeIdentities(process.env);
  if (own === null) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      'no recipient: pass -r age1... or -R FILE, or set BERTH_AGE_KEY_FILE or BERTH_AGE_KEY to encrypt for that key',
    );
  }
  return own.recipients;
}

async function plaintextOf(options: EncryptOptions): Promise<Uint8Array> {
  if (options.file !== undefined && options.fromLiteral !== undefined) {
    throw new BerthError('ERR_BAD_REQUEST', '--file and --from-literal cannot be used together');
  }
  if (options.fromLiteral !== undefined) return Buffer.from(options.fromLiteral, 'utf8');
  if (options.file !== undefined) {
    try {
      return await readFile(options.file);
    } catch (error) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `cannot read ${options.file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      );
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A Secret manifest, checked against the schema before it is printed. */
function secretManifest(name: string, options: EncryptOptions, armored: string): string {
  if (options.key === undefined) throw new BerthError('ERR_BAD_REQUEST', '--name needs --key');
  const indented = armored
    .trimEnd()
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
  const metadata =
    options.namespace === undefined
      ? `  name: ${JSON.stringify(name)}\n`
      : `  name: ${JSON.stringify(name)}\n  namespace: ${JSON.stringify(options.namespace)}\n`;
  const manifest = `apiVersion: berth/v1\nkind: Secret\nmetadata:\n${metadata}data:\n  ${JSON.stringify(options.key)}: |\n${indented}\n`;
  // Checked alone, except that its namespace is taken to exist: that is the repository's business.
  const files = [{ path: 'secret.yaml', content: Buffer.from(manifest) }];
  if (options.namespace !== undefined) {
    const namespace = `apiVersion: berth/v1\nkind: Namespace\nmetadata: { name: ${JSON.stringify(options.namespace)} }\n`;
    files.push({ path: 'namespace.yaml', content: Buffer.from(namespace) });
  }
  const checked = loadManifests(files, { revision: 'secret-encrypt' });
  if (!checked.ok) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `not a valid Secret: ${checked.problems.map((p) => p.message).join('; ')}`,
    );
  }
  return manifest;
}
