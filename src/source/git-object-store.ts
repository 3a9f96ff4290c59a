import fs from 'node:fs';

import git, { type TreeObject } from 'isomorphic-git';
import pLimit, { type LimitFunction } from 'p-limit';

import { BerthError } from '../core/errors.js';
import { GitObjectSizes } from './git-object-size.js';
import { isAbbreviatedCommitId, normalizeAbbreviatedId, shortRevision } from './revision.js';

/** A file read from a git tree. */
export interface RepoFile {
  /** Relative to the directory that was read, POSIX separators. */
  path: string;
  /** Empty when the file was not read for its size (see `size`). */
  content: Uint8Array;
  /**
   * Set when the file was refused unread: its size in bytes, over the per-file limit or past the
   * revision's total. The manifest loader reports it with its path.
   */
  size?: number;
  /** Why an unread file was refused when its own size is within the per-file limit. */
  refused?: string;
}

export interface CommitInfo {
  oid: string;
  message: string;
  author: { name: string; email: string; timestamp: number };
  committer: { name: string; email: string; timestamp: number };
  parents: string[];
}

export interface ReadFilesOptions {
  /**
   * Only files whose name ends with one of these (case-insensitive) are returned; an empty list
   * returns every file. Default `['.yaml', '.yml']`.
   */
  extensions?: readonly string[];
  /** Largest file read (default 1 MiB); larger ones come back unread, with their size. */
  maxFileBytes?: number;
  /** Bytes read for one call at most (default 8 MiB); files past it come back unread. */
  maxTotalBytes?: number;
}

export const DEFAULT_MANIFEST_EXTENSIONS: readonly string[] = ['.yaml', '.yml'];

const MODE_TREE = '040000';
const MODE_SYMLINK = '120000';
const MODE_SUBMODULE = '160000';

/** Blob reads in flight at once: enough to overlap I/O, few enough to stay clear of EMFILE. */
const BLOB_READ_CONCURRENCY = 32;

/** Tag objects can point at tags; git itself gives up peeling well before this. */
const MAX_TAG_CHAIN = 16;

/**
 * Largest commit or tag object read (1 MiB) and largest tree (16 MiB, some 300,000 entries):
 * isomorphic-git inflates an object whole, so a crafted one (a message of 2 GB of zeros packs to
 * a few MB) is refused by the size in its header first.
 */
const MAX_COMMIT_BYTES = 1024 * 1024;

/**
 * The manifest loader's limits (MAX_MANIFEST_FILE_BYTES, MAX_MANIFEST_REVISION_BYTES; the source
 * layer may not import manifests, and a test checks the two agree): a file is refused here, unread,
 * for the same size the loader would refuse it.
 */
export const DEFAULT_MAX_FILE_BYTES = 1024 * 1024;
export const DEFAULT_MAX_TOTAL_BYTES = 8 * 1024 * 1024;
const MAX_TREE_BYTES = 16 * 1024 * 1024;

/**
 * Read access to the objects and refs of one git dir, without a working tree: every read goes
 * through the object database, so what is read is exactly what was committed (a dirty checkout or
 * an unfinished `git pull` cannot leak into a deployment).
 */
export class GitObjectStore {
  /** isomorphic-git keeps parsed pack indexes here; without it every read re-parses them. */
  private readonly objectCache = {};
  private readonly sizes: GitObjectSizes;

  constructor(
    readonly gitdir: string,
    /** The repository as shown to people (credentials removed), for error messages. */
    private readonly repoLabel: string,
  ) {
    this.sizes = new GitObjectSizes(gitdir);
  }

  async hasCommit(oid: string): Promise<boolean> {
    try {
      await this.checkSize(oid, MAX_COMMIT_BYTES, 'commit');
      await git.readCommit({ fs, gitdir: this.gitdir, oid, cache: this.objectCache });
      return true;
    } catch (error) {
      if (isGitErrorCode(error, 'NotFoundError') || isGitErrorCode(error, 'ObjectTypeError')) return false;
      throw error;
    }
  }

  /** The object a ref name points at (`main`, `v1`, `refs/heads/x`, `HEAD`), or undefined. */
  async resolveRefName(ref: string): Promise<string | undefined> {
    try {
      return await git.resolveRef({ fs, gitdir: this.gitdir, ref });
    } catch (error) {
      if (isGitErrorCode(error, 'NotFoundError')) return undefined;
      throw error;
    }
  }

  /**
   * The full id for an abbreviated one present in this store, or undefined. Throws when the
   * prefix matches several objects, listing them, as `git rev-parse` does.
   */
  async expandAbbreviated(prefix: string): Promise<string | undefined> {
    if (!isAbbreviatedCommitId(prefix)) return undefined;
    try {
      return await git.expandOid({
        fs,
        gitdir: this.gitdir,
        oid: normalizeAbbreviatedId(prefix),
        cache: this.objectCache,
      });
    } catch (error) {
      if (isGitErrorCode(error, 'NotFoundError')) return undefined;
      if (isGitErrorCode(error, 'AmbiguousError')) {
        throw new BerthError(
          'ERR_GIT_REF_NOT_FOUND',
          `commit id ${prefix} is ambiguous in ${this.repoLabel}; give more digits`,
          { data: { repo: this.repoLabel, ref: prefix }, cause: error },
        );
      }
      throw error;
    }
  }

  /** Follows annotated tags down to the commit; `ref` names the input in the error message. */
  async peelToCommit(oid: string, ref: string): Promise<string> {
    let current = oid;
    for (let step = 0; step < MAX_TAG_CHAIN; step++) {
      await this.checkSize(current, MAX_COMMIT_BYTES, 'commit or tag');
      const { type, object } = await git.readObject({
        fs,
        gitdir: this.gitdir,
        oid: current,
        format: 'parsed',
        cache: this.objectCache,
      });
      if (type === 'commit') return current;
      if (type === 'tag') {
        current = (object as { object: string }).object;
        continue;
      }
      throw new BerthError(
        'ERR_GIT_REF_NOT_FOUND',
        `"${ref}" in ${this.repoLabel} names a ${type}, not a commit`,
        {
          data: { repo: this.repoLabel, ref },
        },
      );
    }
    throw new BerthError(
      'ERR_GIT_REF_NOT_FOUND',
      `"${ref}" in ${this.repoLabel} is a chain of too many tags`,
      {
        data: { repo: this.repoLabel, ref },
      },
    );
  }

  async commitInfo(oid: string): Promise<CommitInfo> {
    await this.checkSize(oid, MAX_COMMIT_BYTES, 'commit');
    const { commit } = await git.readCommit({ fs, gitdir: this.gitdir, oid, cache: this.objectCache });
    return {
      oid,
      message: commit.message,
      author: { name: commit.author.name, email: commit.author.email, timestamp: commit.author.timestamp },
      committer: {
        name: commit.committer.name,
        email: commit.committer.email,
        timestamp: commit.committer.timestamp,
      },
      parents: [...commit.parent],
    };
  }

  /**
   * Every file under `subPath` in the tree of `commit`, read from the object database (no
   * checkout), sorted by path. Only trees and blobs under `subPath` are read.
   *
   * Skipped on purpose:
   * - symlinks (mode 120000): the blob is the link's target path, not content; following it
   *   could leave `subPath` or the repository, and it would mean something different on every
   *   checkout. Manifests must be regular files.
   * - submodules (mode 160000): the entry is a commit of another repository, whose objects are
   *   not in this one.
   *
   * Sizes are checked from object headers before any blob is inflated: a file over `maxFileBytes`,
   * or past `maxTotalBytes` for the whole call (in path order), comes back unread with its `size`,
   * for the manifest loader to report with its path.
   */
  async readFiles(commit: string, subPath = '', options: ReadFilesOptions = {}): Promise<RepoFile[]> {
    const extensions = (options.extensions ?? DEFAULT_MANIFEST_EXTENSIONS).map((extension) =>
      extension.toLowerCase(),
    );
    const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    const maxTotalBytes = options.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES;
    const treeOid = await this.subTree(commit, splitSubPath(subPath));
    const limit = pLimit(BLOB_READ_CONCURRENCY);
    const entries: { path: string; oid: string }[] = [];
    await this.collectBlobs(treeOid, '', extensions, entries, limit);
    entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const sizes = await Promise.all(entries.map((entry) => limit(() => this.blobSize(entry.oid))));

    let total = 0;
    return Promise.all(
      entries.map(async (entry, index): Promise<RepoFile> => {
        const size = sizes[index] ?? 0;
        if (size > maxFileBytes) return { path: entry.path, content: new Uint8Array(0), size };
        if (total + size > maxTotalBytes) {
          const refused = `not read: the manifest files add up to more than ${formatMiB(maxTotalBytes)}, the limit for one revision`;
          return { path: entry.path, content: new Uint8Array(0), size, refused };
        }
        total += size;
        return limit(async () => {
          const { blob } = await git.readBlob({
            fs,
            gitdir: this.gitdir,
            oid: entry.oid,
            cache: this.objectCache,
          });
          return { path: entry.path, content: blob };
        });
      }),
    );
  }

  /** The object's size from its header (undefined when absent), without inflating it. */
  async objectSize(oid: string): Promise<number | undefined> {
    return (await this.sizes.headerOf(oid))?.size;
  }

  /** Whether the object is present, without reading it. */
  async hasObject(oid: string): Promise<boolean> {
    return (await this.sizes.headerOf(oid)) !== undefined;
  }

  private async subTree(commit: string, segments: string[]): Promise<string> {
    await this.checkSize(commit, MAX_COMMIT_BYTES, 'commit');
    const { commit: commitObject } = await git.readCommit({
      fs,
      gitdir: this.gitdir,
      oid: commit,
      cache: this.objectCache,
    });
    let treeOid = commitObject.tree;
    for (const [index, segment] of segments.entries()) {
      const tree = await this.readTree(treeOid);
      const entry = tree.find((candidate) => candidate.path === segment);
      const walked = segments.slice(0, index + 1).join('/');
      if (entry === undefined) {
        throw new BerthError(
          'ERR_GIT_REF_NOT_FOUND',
          `path "${segments.join('/')}" does not exist at commit ${shortRevision(commit)} of ${this.repoLabel}` +
            (walked === segments.join('/') ? '' : ` (no "${walked}")`),
          { data: { repo: this.repoLabel, commit, path: segments.join('/') } },
        );
      }
      if (entry.mode !== MODE_TREE) {
        throw new BerthError(
          'ERR_GIT_REF_NOT_FOUND',
          `path "${walked}" at commit ${shortRevision(commit)} of ${this.repoLabel} is not a directory`,
          { data: { repo: this.repoLabel, commit, path: segments.join('/') } },
        );
      }
      treeOid = entry.oid;
    }
    return treeOid;
  }

  private async collectBlobs(
    treeOid: string,
    prefix: string,
    extensions: string[],
    into: { path: string; oid: string }[],
    limit: LimitFunction,
  ): Promise<void> {
    const tree = await limit(() => this.readTree(treeOid));
    await Promise.all(
      tree.map(async (entry) => {
        const path = prefix === '' ? entry.path : `${prefix}/${entry.path}`;
        if (entry.mode === MODE_TREE) return this.collectBlobs(entry.oid, path, extensions, into, limit);
        if (entry.mode === MODE_SYMLINK || entry.mode === MODE_SUBMODULE || entry.type !== 'blob') return;
        const name = entry.path.toLowerCase();
        if (extensions.length > 0 && !extensions.some((extension) => name.endsWith(extension))) return;
        into.push({ path, oid: entry.oid });
      }),
    );
  }

  private async readTree(oid: string): Promise<TreeObject> {
    await this.checkSize(oid, MAX_TREE_BYTES, 'tree');
    return (await git.readTree({ fs, gitdir: this.gitdir, oid, cache: this.objectCache })).tree;
  }

  private async blobSize(oid: string): Promise<number> {
    const header = await this.sizes.headerOf(oid);
    if (header === undefined) {
      throw new BerthError(
        'ERR_GIT_SOURCE',
        `object ${shortRevision(oid)} is missing from ${this.repoLabel}`,
        {
          data: { repo: this.repoLabel, oid },
        },
      );
    }
    return header.size;
  }

  /** Refuses an object whose header says it is larger than `limit`, before it is inflated. */
  private async checkSize(oid: string, limit: number, kind: string): Promise<void> {
    const header = await this.sizes.headerOf(oid);
    if (header === undefined || header.size <= limit) return;
    throw new BerthError(
      'ERR_GIT_SOURCE',
      `${kind} ${shortRevision(oid)} of ${this.repoLabel} is ${header.size} bytes, over the ${limit}-byte limit of a ${kind}; refused unread`,
      { data: { repo: this.repoLabel, oid, size: header.size } },
    );
  }
}

/** `./deploy/prod/` → ['deploy', 'prod']; '' or '.' → [] (the repository root). */
export function splitSubPath(subPath: string): string[] {
  const segments = subPath.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) {
    throw new BerthError('ERR_BAD_REQUEST', `path "${subPath}" must stay inside the repository (no "..")`, {
      data: { path: subPath },
    });
  }
  return segments;
}

function formatMiB(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}

/** isomorphic-git errors carry a string `code` equal to their class name. */
export function isGitErrorCode(error: unknown, code: string): boolean {
  return error !== null && typeof error === 'object' && (error as { code?: unknown }).code === code;
}
