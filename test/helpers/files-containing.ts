import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Every regular file under `root` that contains one of `needles`, not looking below the paths in
 * `skip`: where a secret's plaintext leaked to.
 */
export async function filesContaining(
  root: string,
  needles: (Buffer | string)[],
  skip: string[] = [],
): Promise<string[]> {
  const found: string[] = [];
  const visit = async (path: string): Promise<void> => {
    if (skip.includes(path)) return;
    const info = await lstat(path).catch(() => null);
    if (info === null) return;
    if (info.isDirectory()) {
      for (const entry of await readdir(path).catch(() => [])) await visit(join(path, entry));
    } else if (info.isFile()) {
      const content = await readFile(path).catch(() => null);
      if (content && needles.some((needle) => content.includes(needle))) found.push(path);
    }
  };
  await visit(root);
  return found;
}
