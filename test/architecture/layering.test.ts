import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';

const root = resolve(import.meta.dirname, '../..');

/** Runs the project's layering check (as `npm run lint:layers` does) on a copy of the tree. */
function cruise(dir: string): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [
        join(root, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs'),
        'src',
        '--config',
        '.dependency-cruiser.cjs',
      ],
      { cwd: dir, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        done({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

describe('the layering of src/ is enforced by lint', () => {
  let copy: string;

  before(async () => {
    copy = await mkdtemp(join(tmpdir(), 'berth-layers-'));
    await cp(join(root, 'src'), join(copy, 'src'), { recursive: true });
    for (const file of ['.dependency-cruiser.cjs', 'tsconfig.json', 'package.json']) {
      await cp(join(root, file), join(copy, file));
    }
    await symlink(join(root, 'node_modules'), join(copy, 'node_modules'));
  });

  after(async () => {
    await rm(copy, { recursive: true, force: true });
  });

  test('the tree as it is passes', async () => {
    const { code, output } = await cruise(copy);
    assert.equal(code, 0, output);
  });

  test('an upward import (plan -> operator) fails, naming the rule and the files', async () => {
    const file = join(copy, 'src/plan/field-diff.ts');
    const original = await readFile(file, 'utf8');
    try {
      await writeFile(
        file,
        `${original}\nexport type { ReconcileResult } from '../operator/reconcile.js';\n`,
      );
      const { code, output } = await cruise(copy);
      assert.notEqual(code, 0, output);
      assert.match(output, /layer-plan: src\/plan\/field-diff\.ts → src\/operator\/reconcile\.ts/);
    } finally {
      await writeFile(file, original);
    }
  });

  test('a sideways import (agent -> cluster) and commander outside the CLI fail', async () => {
    const file = join(copy, 'src/agent/health-state.ts');
    const original = await readFile(file, 'utf8');
    try {
      await writeFile(
        file,
        `${original}\nexport type { JoinToken } from '../cluster/join-token.js';\nexport { Command } from 'commander';\n`,
      );
      const { code, output } = await cruise(copy);
      assert.notEqual(code, 0, output);
      assert.match(output, /layer-agent: src\/agent\/health-state\.ts → src\/cluster\/join-token\.ts/);
      assert.match(output, /commander-only-in-cli: src\/agent\/health-state\.ts/);
    } finally {
      await writeFile(file, original);
    }
  });
});
