/**
 * Which files are manifests, and reading them from a plain directory. The git source reads the same
 * set of files from a commit and hands them to loadManifests the same way.
 */
import { open, readdir, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { BerthError } from '../core/errors.js';
import { MANIFEST_EXTENSIONS, MAX_MANIFEST_FILE_BYTES } from './defaults.js';
import { formatByteCount } from './parse.js';
import type { ManifestProblem } from './types.js';

export interface ManifestFile {
  /** Relative to the manifest root, with "/" separators; this is what problems print. */
  path: string;
  content: Uint8Array;
  /**
   * The file's full size, set when it was refused unread (content then empty or cut short): over
   * the per-file limit, or past the revision's total (see `refused`).
   */
  size?: number;
  /** Why a file within the per-file limit was not read. */
  refused?: string;
}

/**
 * Bytes of manifest files read for one revision at most (8 MiB, some thousands of services): bounds
 * what one revision can make berth hold and parse, whatever its number of files. Files past it, in
 * path order, are reported unread and the revision is invalid.
 */
export const MAX_MANIFEST_REVISION_BYTES = 8 * 1024 * 1024;

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
  /** Files larger than this are not read; they come back with their size, so loading reports them. */
  maxFileBytes?: number;
  /** Bytes read in all at most (default MAX_MANIFEST_REVISION_BYTES); later files come back unread. */
  maxTotalBytes?: number;
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
  let budget = options.maxTotalBytes ?? MAX_MANIFEST_REVISION_BYTES;
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
        const size = (await stat(absolute)).size;
        if (size > maxFileBytes) {
          files.push({ path, content: new Uint8Array(0), size });
        } else if (size > budget) {
          files.push({ path, content: new Uint8Array(0), size, refused: revisionTotalExceeded(options) });
        } else {
          const content = await readAtMost(absolute, maxFileBytes + 1);
          budget -= content.byteLength;
          files.push(
            content.byteLength > maxFileBytes
              ? { path, content, size: content.byteLength }
              : { path, content },
          );
        }
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

function revisionTotalExceeded(options: ReadManifestFilesOptions): string {
  return describeRevisionTotalExceeded(options.maxTotalBytes ?? MAX_MANIFEST_REVISION_BYTES);
}

/** The problem reported for each file past a revision's total (same words for git and directories). */
export function describeRevisionTotalExceeded(limit: number): string {
  return `not read: the manifest files add up to more than ${formatByteCount(limit)}, the limit for one revision`;
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
