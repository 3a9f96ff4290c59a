/**
 * Which files are manifests, and reading them from a plain directory. The git source reads the same
 * set of files from a commit and hands them to loadManifests the same way.
 */
import { open, readdir, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { BerthError } from '../core/errors.js';
import { MANIFEST_EXTENSIONS, MAX_MANIFEST_FILE_BYTES } from './defaults.js';
import type { ManifestProblem } from './types.js';

export interface ManifestFile {
  /** Relative to the manifest root, with "/" separators; this is what problems print. */
  path: string;
  content: Uint8Array;
}

/** Directories never read: VCS metadata, dependencies, and anything hidden (.github, .berth ...). */
const SKIPPED_DIRECTORIES = new Set(['node_modules']);

/**
 * A .yaml/.yml file outside hidden and dependency directories. Hidden files are skipped too: they are
 * other tools' configuration (.gitlab-ci.yml, .pre-commit-config.yaml), never berth manifests.
 */
export function isManifestPath(path: string): boolean {
  const segments = path.split('/');
  if (segments.some((segment) => segment.startsWith('.') || SKIPPED_DIRECTORIES.has(segment))) return false;
  const lower = path.toLowerCase();
  return MANIFEST_EXTENSIONS.some((extension) => lower.endsWith(extension));
}

export interface ReadManifestFilesOptions {
  /** Files larger than this are read only up to it (plus one byte), so loading reports them. */
  maxFileBytes?: number;
  /**
   * Called for each symbolic link that is refused (leading outside the root, or nowhere). Without it,
   * such links make the whole read fail with ERR_MANIFEST_INVALID listing them.
   */
  onProblem?: (problem: ManifestProblem) => void;
}

/**
 * Every manifest file under `dir`, sorted by path. Symbolic links are followed only while they stay
 * inside `dir`: a link out of the repository could otherwise make berth read (and deploy, or print in
 * an error) any file on the machine.
 */
export async function readManifestFilesFromDir(
  dir: string,
  options: ReadManifestFilesOptions = {},
): Promise<ManifestFile[]> {
  const maxFileBytes = options.maxFileBytes ?? MAX_MANIFEST_FILE_BYTES;
  const root = await realpath(dir);
  const files: ManifestFile[] = [];
  const problems: ManifestProblem[] = [];
  const visited = new Set<string>([root]);
  const refuse = (path: string, message: string): void => {
    const problem = { file: path, line: 1, col: 1, message };
    if (options.onProblem) options.onProblem(problem);
    else problems.push(problem);
  };

  const walk = async (absoluteDir: string, relativeDir: string): Promise<void> => {
    const entries = await readdir(absoluteDir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith('.') || SKIPPED_DIRECTORIES.has(entry.name)) continue;
      const path = relativeDir === '' ? entry.name : `${relativeDir}/${entry.name}`;
      let absolute = join(absoluteDir, entry.name);
      let isDirectory = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        let target: string;
        try {
          target = await realpath(absolute);
        } catch {
          if (isManifestPath(path)) refuse(path, 'symbolic link to a file that does not exist');
          continue;
        }
        const targetStat = await stat(target);
        if (!isInside(root, target)) {
          if (targetStat.isDirectory() || isManifestPath(path)) {
            refuse(path, 'symbolic link leads outside the manifest directory; refused');
          }
          continue;
        }
        absolute = target;
        isDirectory = targetStat.isDirectory();
        isFile = targetStat.isFile();
      }
      if (isDirectory) {
        if (visited.has(absolute)) continue;
        visited.add(absolute);
        await walk(absolute, path);
      } else if (isFile && isManifestPath(path)) {
        files.push({ path, content: await readAtMost(absolute, maxFileBytes + 1) });
      }
    }
  };

  await walk(root, '');
  if (problems.length > 0) {
    const list = problems.map((problem) => `${problem.file}: ${problem.message}`).join('; ');
    throw new BerthError('ERR_MANIFEST_INVALID', `cannot read manifests under ${dir}: ${list}`, {
      data: { problems },
    });
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function isInside(root: string, path: string): boolean {
  const fromRoot = relative(root, path);
  return (
    fromRoot === '' || (!fromRoot.startsWith(`..${sep}`) && fromRoot !== '..' && !fromRoot.startsWith(sep))
  );
}

/** Reads a file but never more than `limit` bytes: an oversized file is refused, not loaded. */
export async function readAtMost(path: string, limit: number): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const size = (await handle.stat()).size;
    const buffer = Buffer.alloc(Math.min(size, limit));
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return new Uint8Array(buffer.buffer, buffer.byteOffset, filled);
  } finally {
    await handle.close();
  }
}
