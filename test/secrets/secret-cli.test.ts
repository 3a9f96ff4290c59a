import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { runBerth } from '../helpers/berth-cli.js';

const run = promisify(execFile);

/** Runs a command with `input` on stdin; resolves with its exit code and output as bytes. */
function pipe(
  command: string,
  args: string[],
  input: Uint8Array | string,
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
    child.stdin.end(input);
  });
}

// No key from the developer's environment: each test says which key berth has.
const berth = (args: string[], input: Uint8Array | string = '', env: NodeJS.ProcessEnv = {}) =>
  runBerth(args, { input, env: { BERTH_AGE_KEY: '', BERTH_AGE_KEY_FILE: '', ...env } });

void describe('berth secret encrypt', () => {
  let dir: string;
  const keys: { file: string; recipient: string }[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-secret-cli-'));
    for (const name of ['ops.txt', 'dev.txt']) {
      const file = join(dir, name);
      await run('age-keygen', ['-o', file]);
      keys.push({ file, recipient: (await run('age-keygen', ['-y', file])).stdout.trim() });
    }
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void test('stdin, for two recipients: the real age CLI decrypts the exact bytes with either key', async () => {
    const plaintext = Buffer.concat([randomBytes(64), Buffer.from('\r\n\n')]);
    const recipientsFile = join(dir, 'recipients.txt');
    await writeFile(recipientsFile, `# the dev team\n${keys[1]!.recipient}\n`);
    const result = await berth(
      ['secret', 'encrypt', '-r', keys[0]!.recipient, '-R', recipientsFile],
      plaintext,
    );
    assert.equal(result.code, 0, result.stderr);
    const armored = result.stdout.toString();
    assert.match(armored, /^-----BEGIN AGE ENCRYPTED FILE-----\n/);
    for (const key of keys) {
      const decrypted = await pipe('age', ['-d', '-i', key.file], armored);
      assert.deepEqual(decrypted.stdout, plaintext);
    }
  });

  void test('--name/--key print a Secret manifest that validates; its value is what --file held', async () => {
    const valueFile = join(dir, 'value.bin');
    const plaintext = randomBytes(200);
    await writeFile(valueFile, plaintext);
    const result = await berth(
      ['secret', 'encrypt', '--file', valueFile, '--name', 'db', '--key', 'password'],
      '',
      { BERTH_AGE_KEY_FILE: keys[0]!.file },
    );
    assert.equal(result.code, 0, result.stderr);
    const manifestDir = join(dir, 'deploy');
    await run('mkdir', ['-p', manifestDir]);
    await writeFile(join(manifestDir, 'db.yaml'), result.stdout);
    const validate = await berth(['validate', manifestDir]);
    assert.equal(validate.code, 0, validate.stdout.toString() + validate.stderr);
    const manifest = parse(result.stdout.toString()) as { data: Record<string, string> };
    const decrypted = await pipe('age', ['-d', '-i', keys[0]!.file], manifest.data['password']!);
    assert.deepEqual(decrypted.stdout, plaintext);
  });

  void test('--from-literal; and without any recipient or key it says what to do', async () => {
    const result = await berth([
      'secret',
      'encrypt',
      '-r',
      keys[1]!.recipient,
      '--from-literal',
      'lit-value',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      (await pipe('age', ['-d', '-i', keys[1]!.file], result.stdout)).stdout.toString(),
      'lit-value',
    );

    const none = await berth(['secret', 'encrypt'], 'x');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no recipient: pass -r age1\.\.\. or -R FILE, or set BERTH_AGE_KEY_FILE/);
    const bad = await berth(['secret', 'encrypt', '-r', 'age1nope'], 'x');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /"age1nope" is not an age recipient/);
  });

  void test('without -r, the key given as the value of BERTH_AGE_KEY is the recipient', async () => {
    const text = await readFile(keys[0]!.file, 'utf8');
    const result = await berth(['secret', 'encrypt', '--from-literal', 'both ways'], '', {
      BERTH_AGE_KEY: text,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      (await pipe('age', ['-d', '-i', keys[0]!.file], result.stdout)).stdout.toString(),
      'both ways',
    );
  });

  void test('--help', async () => {
    for (const args of [
      ['secret', '--help'],
      ['secret', 'encrypt', '--help'],
    ]) {
      const help = await berth(args);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout.toString(), /Usage: berth secret/);
    }
  });
});
