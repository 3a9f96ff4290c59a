import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));

/** The installed `berth` command: bin/berth.js over the build that `npm ci` makes (prepare). */
async function berth(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['bin/berth.js', ...args], {
      cwd: root,
      env: { ...process.env, NO_COLOR: '1' },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('the berth bin, as npm ci builds it', () => {
  test('validates the sample repository', async () => {
    const result = await berth('validate', 'sample-repo');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^sample-repo: \d+ manifests valid/);
  });

  test('every command has --help', async () => {
    for (const command of [
      'validate',
      'plan',
      'apply',
      'run',
      'status',
      'history',
      'rollback',
      'agent',
      'token',
      'node',
      'secret',
    ]) {
      const result = await berth(command, '--help');
      assert.equal(result.code, 0, `${command}: ${result.stderr}`);
      assert.match(result.stdout, new RegExp(`^Usage: berth ${command}`), command);
    }
  });

  test('an unknown command fails with exit 1 and says so', async () => {
    const result = await berth('deploy');
    assert.equal(result.code, 1);
    assert.match(result.stderr, /unknown command 'deploy'/);
  });

  test('a bad --service-addresses range is refused before anything starts, with the reason', async () => {
    const misaligned = await berth('agent', '--token', 't', '--service-addresses', '10.234.1.0/16');
    assert.equal(misaligned.code, 1);
    assert.match(misaligned.stderr, /not the start of its range \(did you mean 10\.234\.0\.0\/16\?\)/);
    const garbage = await berth('run', '--repo', '.', '--service-addresses', 'everything');
    assert.equal(garbage.code, 1);
    assert.match(garbage.stderr, /must be an IPv4 range from \/8 to \/30/);
  });
});
