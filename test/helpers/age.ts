/** The real `age` CLI, for tests that commit encrypted Secrets and check what decrypts them. */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Makes a new identity in `file` (age-keygen); returns its recipient (`age1...`). */
export async function createAgeIdentity(file: string): Promise<string> {
  await run('age-keygen', ['-o', file]);
  return (await run('age-keygen', ['-y', file])).stdout.trim();
}

/** `plaintext` encrypted for `recipient` by `age -r RECIPIENT -a`: an ASCII-armored payload. */
export function ageEncrypt(recipient: string, plaintext: Uint8Array | string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('age', ['-r', recipient, '-a'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`age exited ${code}: ${err}`)),
    );
    child.stdin.end(plaintext);
  });
}
