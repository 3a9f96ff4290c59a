import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { BerthError } from '../core/errors.js';
import { loadAgeIdentities, parseAgeIdentities, type AgeIdentities } from './age-identity.js';
import { decryptArmor, encryptToArmor } from './age-payload.js';
import { createSecretReader } from './secret-reader.js';

const run = promisify(execFile);

/** Runs a command with `input` on stdin and returns stdout as bytes (the real age CLI). */
function pipe(command: string, args: string[], input: Uint8Array | string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${command} exited ${code}: ${err}`)),
    );
    child.stdin.end(input);
  });
}

/** A fresh identity made by the real `age-keygen`, and its recipient. */
async function keygen(dir: string, name: string): Promise<{ file: string; recipient: string; text: string }> {
  const file = join(dir, name);
  await run('age-keygen', ['-o', file]);
  const text = await readFile(file, 'utf8');
  const { stdout } = await run('age-keygen', ['-y', file]);
  return { file, recipient: stdout.trim(), text };
}

const errorCode = (error: unknown): string => (error instanceof BerthError ? error.code : String(error));

void describe('age payloads, interoperable with the age CLI', () => {
  let dir: string;
  let alice: { file: string; recipient: string; text: string };
  let bob: { file: string; recipient: string; text: string };
  let aliceKeys: AgeIdentities;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-age-'));
    alice = await keygen(dir, 'alice.txt');
    bob = await keygen(dir, 'bob.txt');
    aliceKeys = await parseAgeIdentities(alice.text, 'alice.txt');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void test('parses what age-keygen writes and derives its recipient', () => {
    assert.equal(aliceKeys.identities.length, 1);
    assert.deepEqual(aliceKeys.recipients, [alice.recipient]);
  });

  void test('`age -r -a` output decrypts to the exact bytes, binary and trailing newlines included', async () => {
    const plaintext = Buffer.concat([randomBytes(300), Buffer.from('\n\n'), Buffer.from([0, 255, 10])]);
    const armored = (await pipe('age', ['-r', alice.recipient, '-a'], plaintext)).toString('utf8');
    const decrypted = await decryptArmor(armored, aliceKeys.identities);
    assert.deepEqual(Buffer.from(decrypted), plaintext);
    // As pasted in a YAML block scalar: indentation stripped, one trailing newline, maybe CRLF.
    const crlf = armored.replace(/\n/g, '\r\n');
    assert.deepEqual(Buffer.from(await decryptArmor(crlf, aliceKeys.identities)), plaintext);
  });

  void test('what berth encrypts, `age -d -i` decrypts, for every recipient', async () => {
    const plaintext = Buffer.from(`pw-${randomBytes(16).toString('hex')}\n`);
    const armored = await encryptToArmor(plaintext, [alice.recipient, bob.recipient]);
    assert.match(
      armored,
      /^-----BEGIN AGE ENCRYPTED FILE-----\n[\s\S]+\n-----END AGE ENCRYPTED FILE-----\n$/,
    );
    for (const key of [alice, bob]) {
      assert.deepEqual(await pipe('age', ['-d', '-i', key.file], armored), plaintext);
    }
  });

  void test('a payload for another key is refused as such, without leaking anything', async () => {
    const armored = (await pipe('age', ['-r', bob.recipient, '-a'], 'for bob only')).toString('utf8');
    const error = await decryptArmor(armored, aliceKeys.identities).catch((e: unknown) => e);
    assert.equal(errorCode(error), 'ERR_SECRET_UNREADABLE');
    assert.match((error as Error).message, /not encrypted for the operator's age key/);
  });

  void test('damaged payloads and broken armor are refused', async () => {
    const armored = (await pipe('age', ['-r', alice.recipient, '-a'], 'x'.repeat(100))).toString('utf8');
    const lines = armored.trimEnd().split('\n');
    // Flip one base64 character in the last body line (the payload, after the header MAC).
    const last = lines.length - 2;
    const line = lines[last]!;
    lines[last] = (line.startsWith('A') ? 'B' : 'A') + line.slice(1);
    const damaged = `${lines.join('\n')}\n`;
    const error = await decryptArmor(damaged, aliceKeys.identities).catch((e: unknown) => e);
    assert.equal(errorCode(error), 'ERR_SECRET_UNREADABLE');
    assert.match((error as Error).message, /damaged|armor/);

    const truncated = armored.replace('-----END AGE ENCRYPTED FILE-----', '');
    const broken = await decryptArmor(truncated, aliceKeys.identities).catch((e: unknown) => e);
    assert.match((broken as Error).message, /not a valid age ASCII armor/);
  });

  void test('the secret reader names the secret and its file on failure', async () => {
    const armored = (await pipe('age', ['-r', bob.recipient, '-a'], 'nope')).toString('utf8');
    const read = createSecretReader(aliceKeys);
    const secret = {
      kind: 'Secret' as const,
      name: 'db',
      namespace: 'shop',
      data: { password: armored },
      file: 'db.yaml',
    };
    const error = await read(secret, 'password').catch((e: unknown) => e);
    assert.match((error as Error).message, /^secret shop\/db key password \(db\.yaml\) cannot be decrypted/);
    const good = {
      ...secret,
      data: { password: await encryptToArmor(Buffer.from('yes'), aliceKeys.recipients) },
    };
    assert.equal(Buffer.from(await read(good, 'password')).toString(), 'yes');
  });

  void test('keys come from BERTH_AGE_KEY_FILE or BERTH_AGE_KEY; several identities; bad keys say where', async () => {
    assert.equal(await loadAgeIdentities({}), null);
    const fromFile = await loadAgeIdentities({ BERTH_AGE_KEY_FILE: alice.file });
    assert.deepEqual(fromFile?.recipients, [alice.recipient]);
    const both = await loadAgeIdentities({ BERTH_AGE_KEY: `${alice.text}\n${bob.text}` });
    assert.deepEqual(both?.recipients, [alice.recipient, bob.recipient]);
    const armored = (await pipe('age', ['-r', bob.recipient, '-a'], 'for bob')).toString('utf8');
    assert.equal(Buffer.from(await decryptArmor(armored, both.identities)).toString(), 'for bob');

    const missing = await loadAgeIdentities({ BERTH_AGE_KEY_FILE: join(dir, 'nope.txt') }).catch(
      (e: unknown) => e,
    );
    assert.match((missing as Error).message, /cannot read the age key file .*nope\.txt/);
    const garbage = join(dir, 'garbage.txt');
    await writeFile(garbage, '# a comment\nAGE-SECRET-KEY-1NOTAKEY\n');
    const bad = await loadAgeIdentities({ BERTH_AGE_KEY_FILE: garbage }).catch((e: unknown) => e);
    assert.match(
      (bad as Error).message,
      /line 2 of BERTH_AGE_KEY_FILE \(.*garbage\.txt\) is not a valid age identity/,
    );
    assert.doesNotMatch((bad as Error).message, /NOTAKEY/);
    const empty = await loadAgeIdentities({ BERTH_AGE_KEY: '# only a comment\n' }).catch((e: unknown) => e);
    assert.match((empty as Error).message, /BERTH_AGE_KEY holds no age identity/);
  });
});
